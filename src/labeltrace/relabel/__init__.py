"""Fixing labels under a budget: relabel priorities, campaigns, simulations on real votes.

One concept a module; imports run one way (top to bottom), nothing is imported from here::

    arrays      checked (N, K) / (N,) arrays, normalised entropy
    votes       the vote model: truth = majority, tempered initial noisy labels, seed streams
    priority    the registry of relabel rules; each declares what it needs (model or truth)
    annotator   the Annotator protocol; SimulatedAnnotator (draws from distributions)
    consensus   when votes settle a sample (agreeing votes, strict majority): one rule for all
    steps       what a campaign reports: one recorded vote (Step), a snapshot (CampaignLog)
    campaign    Campaign: the state with step() / record() / set_posterior(), and its log
    result      CampaignResult: a finished campaign measured against the truth (curves, AUC)
    stats       t-intervals over seeds, normalised gain, aggregates
    head        the model in the loop: a head trained on features (in-sample or cross-fitted)
    propagation the cheap refresh: corrected labels shift their neighbours' posteriors
    live        the refresh of an active loop (build_updater) and the review app's LiveQueue
    experiment  run_campaign, compare_selectors (selectors x seeds), run_simulation
    io          vote / feature readers; CSV, PNG, JSON writers; the text summary
    simulation  ``labeltrace simulate``: files in, files out
    preflight   what relabeling B samples of a queue is expected to fix
    earlier     the samples an earlier review round settled (a cleaned manifest scanned again)
    posterior   what a scan run's queue ranks by: its posterior (held-out or last epochs), its SEI
    queue       ``labeltrace queue``: a scan run's review queue (queue.parquet)
    reviews_sql the SQL of the decisions store (reviews.db): schema and statements
    reviewers   reviewer names in the store: one spelling per person
    store_file  the decisions file's binding to its run; its connections (read-only, never-create)
    decision_checks  one decision's own checks (ids, classes, kinds, reviewer names)
    decisions   the review app's decisions store (reviews.db): rows, votes, the stored rule
    runstore    a run's decisions store, bound to its classes, size and sample ids
    verdicts    the decisions resolved by consensus: final labels, the unresolved list
    order       the order the review app serves
    features    a run's features (embedding, frozen-feature cache, shrunk images)
"""
