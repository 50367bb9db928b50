"""Fixing labels under a budget: relabel priorities, campaigns, simulations on real votes.

One concept a module; imports run one way (top to bottom), nothing is imported from here::

    arrays      checked (N, K) / (N,) arrays, normalised entropy
    votes       the vote model: truth = majority, tempered initial noisy labels, seed streams
    priority    the registry of relabel rules; each declares what it needs (model or truth)
    annotator   the Annotator protocol; SimulatedAnnotator (draws from distributions)
    campaign    Campaign: the state with step() / record() / set_posterior(), and its log
    result      CampaignResult: a finished campaign measured against the truth (curves, AUC)
    stats       t-intervals over seeds, normalised gain, aggregates
    head        the model in the loop: a head trained on features (posterior + SEI)
    experiment  run_campaign, compare_selectors (selectors x seeds), run_simulation
    io          vote / feature readers; CSV, PNG, JSON writers; the text summary
    simulation  ``labeltrace simulate``: files in, files out
    queue       ``labeltrace queue``: a scan run's review queue (queue.parquet)
    decisions   the review app's decisions store (reviews.db) and final labels
    order       the order the review app serves
"""
