"""How many labels are wrong, estimated without clean data: rules that return a count ``n̂``.

A detector flags its ``n̂`` lowest scores. The rules here read a held-out posterior (every row
predicted by a model that never trained on that sample) or a score vector:

* :func:`cl_count` — confident learning's count of label issues (off-diagonal of the confident
  joint, ``cleanlab.count.num_label_issues``);
* :func:`cl_rate_count` — the calibrated confident joint's noise rate times N (the same
  estimator's rate, which counts the samples below every class threshold too);
* :func:`conservative_count` — the default detector's count: on large sets the smallest of the two
  above and 2.5 × the count on the mean of the held-out and in-sample posteriors, on small sets
  (memorised in sample) the geometric mean of the two above (chosen on the dev cells,
  ``benchmarks/SPLIT.md``);
* :func:`implant_weight` — not a count: the weight of a second label-free signal (the kNN label
  share) beside the held-out posterior, chosen per dataset by how well it separates *virtual
  implanted errors* — a wrong label drawn for a sample from the classes its held-out posterior
  confuses it with: a held-out prediction never depends on the sample's own label, so its
  probability of that label is what it would score had a human made that error;
* :func:`contradicted_count` — the one-training count on a small set: the samples whose given label
  the model contradicted (argmax ≠ label) in most of the epochs it saw them;
* :func:`bimodal_count` — a two-component Gaussian mixture on the score, only when the BIC says
  two components fit better than one (a nearly clean dataset is not split in two).
"""

from __future__ import annotations

import numpy as np

from labeltrace._checks import round_half_up
from labeltrace.score import confident

__all__ = ["IN_SAMPLE_FACTOR", "KNN_WEIGHT", "SINGLE_RATE_FACTOR", "bimodal_count", "cl_count",
           "cl_rate_count", "conservative_count", "contradicted_count", "implant_weight", "knn_mixed",
           "one_run_count"]


def cl_count(post: np.ndarray, labels: np.ndarray) -> int:
    """Confident learning's number of label issues on ``post`` (held out)."""
    return int(confident.num_label_issues(post, labels))


def cl_rate_count(post: np.ndarray, labels: np.ndarray) -> int:
    """``round(N × noise rate)`` of the calibrated confident joint on ``post``."""
    return int(round(float(confident.estimate_noise_rate(post, labels)) * len(labels)))


#: below this many samples the in-sample side is not used to count: a head or a small CNN memorises a
#: small set within its few epochs, and the mean-posterior count then collapses (dev cells: BreastMNIST
#: val, 78 images, flagged 0.7 of 16 errors; PneumoniaMNIST val, 524: 81 of 105) — chosen on the dev
#: cells of benchmarks/SPLIT.md (digits 1,797, PneumoniaMNIST val 524, BreastMNIST val 78 vs CIFAR-10N 50,000)
LARGE = 5000

#: a large set's third count is this many times CL's count on the mean of the held-out and in-sample
#: posteriors (training on a label raises its in-sample probability, so that count alone is 0.38–0.48
#: of the truth on the noisy dev cells). 2 until the dev study of the 224 px features
#: (``scripts/large_count_dev.py`` → ``benchmarks/results/dev-large-count.md``): past 2.5 the noisy
#: CIFAR-10N dev cells' F1 gains at most 0.0015 (at 3), for a fifth more flags on the clean cell
IN_SAMPLE_FACTOR = 2.5

#: the one-training count on a large set (``single``): the mixture's count, at most this many times
#: confident learning's rate × N on the run's trajectory-averaged posterior (memorised, so that rate
#: is 0.24–0.34 of the truth on the noisy dev cells). 3 until the dev study with 224 px features
#: (``scripts/single_count_dev.py`` → ``benchmarks/results/dev-single-counts.md``, the large cells):
#: mean noisy-label F1 at 3 / 3.5 / 4, 96 px 0.654 / 0.656 / 0.651, default resolution 0.671 / 0.687
#: / 0.691 (regenerated 2026-12-05; 0.653 / 0.656 / 0.651 and 0.671 / 0.687 / 0.692 when chosen); 3.5
#: rises at both
SINGLE_RATE_FACTOR = 3.5

#: on a small set (``N < LARGE``) whose model is a head on frozen features, the default detector's
#: held-out and in-sample posteriors are mixed with the label shares of each sample's k nearest
#: neighbours in those features, this much of the shares (ranking and count both read the mixture).
#: Chosen on the small dev cells (``scripts/knn_mix_dev.py`` → ``benchmarks/results/dev-knn-mix.md``):
#: over the 20 noisy frozen-feature cells, F1 +0.0076 [+0.0033, +0.0118] and AUROC +0.0043
#: [+0.0002, +0.0084] against no mixing, worst cell −0.006, and 169.6 flagged on the 6 clean cells
#: instead of 184.7 per cell and seed (0.3 ties on F1 with a wider AUROC interval; 0.1 / 0.2 gain
#: less). With a network's own embedding the shares follow the labels it was trained on: F1 −0.019
#: at this weight over the 10 small-CNN cells (the first fold model's embedding; −0.0095 [−0.032,
#: +0.013] in the fold models' common one, rerun since), so a network's posterior is not mixed. Large sets
#: keep the plain posterior: on the 50,000 CIFAR-10N dev images at 96 px (``scripts/knn_mix_large_dev.py``
#: → ``benchmarks/results/dev-knn-mix-large.md``) the mix gains 0.003 F1 but flags 2,444 of the
#: original (nearly clean) labels instead of 1,927.
KNN_WEIGHT = 0.25


def knn_mixed(held: np.ndarray, in_sample: np.ndarray | None, shares: np.ndarray,
              w: float = KNN_WEIGHT) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """The held-out and in-sample posteriors each mixed with the kNN label ``shares``:
    ``(1 - w) * posterior + w * shares`` (``in_sample`` None stays None)."""
    mix = (1 - w) * held + w * shares
    return mix, None if in_sample is None else (1 - w) * in_sample + w * shares


def conservative_count(held: np.ndarray, in_sample: np.ndarray | None, labels: np.ndarray) -> int:
    """The default detector's count, from two estimates on the held-out posterior: confident
    learning's count ``n`` and the calibrated rate × N ``r``.

    * On a small set (``N < LARGE``, or without an in-sample posterior): their geometric mean
      ``round(sqrt(n · r))``. ``n`` undercounts flips that follow the model's own confusions (it
      counts only the off-diagonal of the confident joint), ``r`` overcounts (it also counts samples
      below every class threshold); chosen on the first 36 noisy small dev cells
      (``scripts/count_rule_dev.py``): the crossfit ranking cut there had mean F1 0.684, against
      0.649 at ``n`` and 0.671 at ``r``. With the 12 cells added later (PneumoniaMNIST val,
      confusion 0.3 / 0.4) it ties ``r`` (0.660 vs 0.661 over 48 cells) and stays ahead of ``n``
      (0.607), and it flags fewer on the clean dev cells (7.8; ``r``: 9.3, ``n``: 6.7). Its weak
      spot, seen on the mid-size dev cells added last (2,000 CIFAR-10N images, frozen 96 px
      features, a held-out head that contradicts 45 % of the labels): it counts the hard-but-clean
      images too — 633–674 for 347–355 wrong labels, 430–442 of 2,000 on the original labels
      (54 cells: 0.648, ``r`` 0.645, arithmetic mean 0.650, ``n`` 0.602). The large-set rule
      counts those cells right (344–360; 150–160 on the clean one) but collapses where a head
      memorises a small set (BreastMNIST val: 0–2 for 16; 54 cells: 0.527), and no label-free
      switch between the two was found. Switching on the model (a head on frozen features of more
      than two classes: ``scripts/memorised_count_dev.py``) counted the noisy photos better on dev
      and on test, but failed its test gate on the near-clean photos (``cifar10h-2k``: 76 flagged
      instead of 293, 1 of 16 wrong labels found instead of 7; ``benchmarks/results/
      test-small-head-count.md``). A stronger model is the lever there: with 224 px
      features (what ``--resolution auto`` picks for such photos) the same cells flag 297 of the
      2,000 original labels instead of 436 (``benchmarks/results/dev-resolution.md``).
    * On a large set, the smallest of ``n``, ``r`` and :data:`IN_SAMPLE_FACTOR` (2.5) × the count
      on the mean of the held-out and in-sample posteriors (training on a label raises its
      in-sample probability, so that count alone is 0.38–0.48 of the truth on the noisy dev
      cells). A model that cannot memorise a large training set still fits its hard-but-clean
      samples in sample, so the mean posterior stops counting them: on nearly clean CIFAR-10
      (dev, 3 seeds) 1,900–1,950 of 50,000 flagged instead of ``n``'s 5,306–5,379 with 96 px
      features, 625–648 instead of 3,708–3,742 with 224 px ones.
    """
    n, r = cl_count(held, labels), cl_rate_count(held, labels)
    if in_sample is None or len(labels) < LARGE:
        return int(round(float(np.sqrt(n * r))))
    return min(n, r, round_half_up(IN_SAMPLE_FACTOR * cl_count((held + in_sample) / 2, labels)))


def contradicted_count(agreement: np.ndarray) -> int:
    """How many samples the model contradicted in most epochs: ``agreement`` is each sample's
    fraction of epochs in which the prediction was its given label (NaN: never seen, not counted).

    The one-training count on a small set (``N < LARGE``): a head or a small CNN memorises a few
    thousand labels within its epochs, so any count on the final or epoch-averaged posterior
    collapses (BreastMNIST val, frozen features: 0 flagged for 16 wrong), while a wrong label is
    contradicted for most of the training before it is memorised. On the 126 noisy small dev cells
    of ``benchmarks/results/dev-single-counts.md`` the one-run ranking cut there has mean F1 0.506
    against 0.388 for the previous rule (when chosen, 36 cells: 0.633 vs 0.584; 54: 0.597 vs
    0.548; 66: 0.573 vs 0.513), and it flags 39.5 (previous: 9.2) on the clean ones (133–138 of the
    2,000 CIFAR-10N original labels, where a head on 96 px features stays unsure of many clean
    photos). Not on large sets: on nearly clean CIFAR-10 (dev, 96 px) it accuses 2,643 of 50,000,
    the capped mixture 700.
    """
    a = np.asarray(agreement, dtype=np.float64)
    return int((a < 0.5).sum())


def one_run_count(agreement: np.ndarray, knn_shares: np.ndarray | None, labels: np.ndarray) -> tuple[int, str]:
    """The one-training count on a small set: (count, rule). :func:`contradicted_count` of the run,
    or, when larger, :func:`conservative_count` on ``knn_shares`` — the label shares of each
    sample's nearest neighbours in the features (the frozen backbone's, or the run's own
    embedding), a held-out posterior that costs no training; the detector reads, for a sample of a
    class smaller than its ``knn_k`` + 1, as many neighbours as the class has
    (:meth:`~labeltrace.decide.evidence.Evidence.knn_class_shares`).

    Why: a head on frozen features memorises a few hundred to two thousand labels within its
    epochs, so it contradicts only a small part of the wrong labels in most epochs, while its
    ranking stays nearly as good as the cross-fitted one. Chosen on the 90 noisy small dev cells
    (``scripts/single_knn_dev.py`` → ``benchmarks/results/dev-single-knn.md``): with the head, the
    `single` ranking cut here has mean F1 0.582 against 0.377 at the contradicted count and 0.591
    at the cross-fitted default's own count (60 cells); with the small CNN, whose own embedding
    follows the labels it was trained on so that the kNN count mostly stays below the
    contradicted one, 0.705 against 0.705 (30 cells). The price is on clean small sets of natural
    photos, where the kNN posterior, like the cross-fitted one, counts hard-but-clean images:
    212.9 flagged on the clean dev cells with the head (contradicted 47.7, the default 169.6;
    CIFAR-10's cats and dogs 319 of 2,000, 2,000 CIFAR-10 photos at 224 px 395), while on the
    medical ones it moves little (PneumoniaMNIST: 14–24 either way).
    """
    n = contradicted_count(agreement)
    if knn_shares is None:
        return n, "contradicted"
    k = conservative_count(np.asarray(knn_shares, dtype=np.float64), None, labels)
    return (k, "knn") if k > n else (n, "contradicted")


def implant_weight(post: np.ndarray, other: np.ndarray, labels: np.ndarray, *, seed: int = 0, mix: float = 0.5,
                   w_max: float = 0.5, grid: int = 11) -> float:  # fmt: skip
    """The weight ``w`` of a second label-free signal in ``(1 − w)·post[i, c] + w·other[i, c]`` that
    best separates virtual implanted errors (a wrong label ``c`` drawn as in :func:`virtual_implants`)
    from the given labels, by AUROC — chosen per dataset without any clean label, in ``[0, w_max]``. ``post`` and
    ``other`` are (N, K) matrices whose row ``i`` does not depend on sample ``i``'s own label
    (a held-out posterior; the label shares of a sample's nearest neighbours).

    The implants are one seeded draw per row: reordering the samples (or the classes) redraws them
    and can change the weight chosen, and with it the ``crossfit_knn`` score."""
    from sklearn.metrics import roc_auc_score

    n, k = post.shape
    rows = np.arange(n)
    w_oth = post.astype(np.float64).copy()
    w_oth[rows, labels] = 0.0
    tot = w_oth.sum(1, keepdims=True)
    uniform = (1.0 - np.eye(k)[labels]) / (k - 1)
    conf = np.where(tot > 0, w_oth / np.where(tot > 0, tot, 1.0), uniform)
    u = np.random.default_rng(seed).random(int(n))
    c = np.minimum((((1.0 - mix) * conf + mix * uniform).cumsum(1) < u[:, None]).sum(1), k - 1)
    truth = np.r_[np.zeros(n, bool), np.ones(n, bool)]
    best, best_w = -1.0, 0.0
    for w in np.linspace(0.0, w_max, grid):  # the posterior stays the main signal (and breaks ties)
        s = np.r_[(1 - w) * post[rows, labels] + w * other[rows, labels], (1 - w) * post[rows, c] + w * other[rows, c]]
        auc = roc_auc_score(truth, -s)
        if auc > best + 1e-9:
            best, best_w = auc, float(w)
    return best_w


def bimodal_count(score: np.ndarray, *, seed: int = 0) -> int:
    """Samples in the low component of a two-component GMM on the finite scores (posterior > 0.5),
    or 0 when one component fits better by BIC. (Skewed unimodal scores still favour two
    components; the one-training detectors cap this count, see ``decide.detectors``.) The fits start
    from k-means on the scores in their given order and stop at scikit-learn's tolerance (1e-3):
    reordering the samples can move the count by a few samples."""
    s = np.asarray(score, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size < 10 or np.ptp(s) == 0:
        return 0
    z = ((s - s.mean()) / s.std()).reshape(-1, 1)
    # imported here: the CLI's --help builds the detector table
    from sklearn.mixture import GaussianMixture

    one = GaussianMixture(1, random_state=seed).fit(z)
    two = GaussianMixture(2, random_state=seed).fit(z)
    if two.bic(z) >= one.bic(z):
        return 0
    low = int(np.argmin(two.means_.ravel()))
    return int((two.predict_proba(z)[:, low] > 0.5).sum())
