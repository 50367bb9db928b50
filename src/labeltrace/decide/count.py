"""How many labels are wrong, estimated without clean data: rules that return a count ``n̂``.

A detector flags its ``n̂`` lowest scores. The rules here read a held-out posterior (every row
predicted by a model that never trained on that sample) or a score vector:

* :func:`cl_count` — confident learning's count of label issues (off-diagonal of the confident
  joint, ``cleanlab.count.num_label_issues``);
* :func:`cl_rate_count` — the calibrated confident joint's noise rate times N (the same
  estimator's rate, which counts the samples below every class threshold too);
* :func:`implant_count` — mixture-proportion estimation against *virtual implanted errors*: every
  sample is given, in thought, a wrong label drawn from the classes its held-out posterior
  confuses it with (or uniformly); because a held-out prediction never depends on the sample's
  own label, its probability of that label is exactly what it would score had a human made that
  error. These known errors are a sample of the error score distribution ``F_err``; the data's
  distribution is ``F = (1 − π) F_clean + π F_err``, so ``π ≤ F(t) / F_err(t)`` at every ``t``
  (Blanchard et al. 2010; Scott 2015), tight where clean samples rarely score — the lowest
  quantiles. ``n̂ = π̂ N``.
* :func:`bimodal_count` — a two-component Gaussian mixture on the score, only when the BIC says
  two components fit better than one (a nearly clean dataset is not split in two).
"""

from __future__ import annotations

import numpy as np
from sklearn.mixture import GaussianMixture

from labeltrace.score import probs as P

__all__ = ["bimodal_count", "cl_count", "cl_rate_count", "conservative_count", "implant_count", "implant_weight", "virtual_implants"]


def cl_count(post: np.ndarray, labels: np.ndarray) -> int:
    """Confident learning's number of label issues on ``post`` (held out)."""
    return int(P.num_label_issues(post, labels))


def cl_rate_count(post: np.ndarray, labels: np.ndarray) -> int:
    """``round(N × noise rate)`` of the calibrated confident joint on ``post``."""
    return int(round(float(P.estimate_noise_rate(post, labels)) * len(labels)))


def conservative_count(held: np.ndarray, in_sample: np.ndarray | None, labels: np.ndarray) -> int:
    """The smallest of three estimates: confident learning's count and its calibrated rate × N on
    the held-out posterior, and twice its count on the mean of the held-out and in-sample
    posteriors (training on a label raises its in-sample probability, so that count alone is
    about half the truth — measured on the dev cells, benchmarks/SPLIT.md). Each over-counts in
    some regime (the held-out ones when a mediocre model's hard-but-clean samples look like errors);
    the minimum accuses least."""
    est = [cl_count(held, labels), cl_rate_count(held, labels)]
    if in_sample is not None:
        est.append(2 * cl_count((held + in_sample) / 2, labels))
    return min(est)


def virtual_implants(post: np.ndarray, labels: np.ndarray, *, mix: float, seed: int) -> np.ndarray:
    """(N,) probability each sample's held-out posterior gives a wrong label drawn for it: with
    weight ``1 − mix`` from the other classes in proportion to the posterior (the classes the
    model confuses it with), with weight ``mix`` uniformly."""
    n, k = post.shape
    rows = np.arange(n)
    other = post.astype(np.float64).copy()
    other[rows, labels] = 0.0
    tot = other.sum(1, keepdims=True)
    uniform = (1.0 - np.eye(k)[labels]) / (k - 1)
    conf = np.where(tot > 0, other / np.where(tot > 0, tot, 1.0), uniform)
    w = (1.0 - mix) * conf + mix * uniform
    u = np.random.default_rng(seed).random(n)
    c = np.minimum((w.cumsum(1) < u[:, None]).sum(1), k - 1)
    return post[rows, c]


def implant_weight(post: np.ndarray, other: np.ndarray, labels: np.ndarray, *, seed: int = 0, mix: float = 0.5,
                   w_max: float = 0.5, grid: int = 11) -> float:  # fmt: skip
    """The weight ``w`` of a second label-free signal in ``(1 − w)·post[i, c] + w·other[i, c]`` that
    best separates virtual implanted errors (a wrong label ``c`` drawn as in :func:`virtual_implants`)
    from the given labels, by AUROC — chosen per dataset without any clean label, in ``[0, w_max]``. ``post`` and
    ``other`` are (N, K) matrices whose row ``i`` does not depend on sample ``i``'s own label
    (a held-out posterior; the label shares of a sample's nearest neighbours)."""
    from sklearn.metrics import roc_auc_score

    n, k = post.shape
    rows = np.arange(n)
    w_oth = post.astype(np.float64).copy()
    w_oth[rows, labels] = 0.0
    tot = w_oth.sum(1, keepdims=True)
    uniform = (1.0 - np.eye(k)[labels]) / (k - 1)
    conf = np.where(tot > 0, w_oth / np.where(tot > 0, tot, 1.0), uniform)
    u = np.random.default_rng(seed).random(n)
    c = np.minimum((((1.0 - mix) * conf + mix * uniform).cumsum(1) < u[:, None]).sum(1), k - 1)
    truth = np.r_[np.zeros(n, bool), np.ones(n, bool)]
    best, best_w = -1.0, 0.0
    for w in np.linspace(0.0, w_max, grid):  # the posterior stays the main signal (and breaks ties)
        s = np.r_[(1 - w) * post[rows, labels] + w * other[rows, labels], (1 - w) * post[rows, c] + w * other[rows, c]]
        auc = roc_auc_score(truth, -s)
        if auc > best + 1e-9:
            best, best_w = auc, float(w)
    return best_w


def implant_count(post: np.ndarray, labels: np.ndarray, *, mix: float = 0.5, z: float = 1.0, seed: int = 0,
                  quantiles: np.ndarray | None = None) -> int:  # fmt: skip
    """``n̂ = N · min_q (F(t_q) + z·se) / q``: ``t_q`` the ``q``-quantile of the virtual implants'
    p(wrong label), ``F(t)`` the share of samples whose held-out p(given label) is ≤ ``t``, ``se``
    its binomial standard error (``z`` > 0 guards the estimate against the noise of the lowest
    quantiles). ``quantiles`` default 0.02, 0.04, …, 0.5."""
    n = len(labels)
    s = post[np.arange(n), labels]
    imp = virtual_implants(post, labels, mix=mix, seed=seed)
    qs = np.linspace(0.02, 0.5, 25) if quantiles is None else np.asarray(quantiles, dtype=np.float64)
    t = np.quantile(imp, qs)
    f = (s[None, :] <= t[:, None]).mean(1)
    ratio = (f + z * np.sqrt(f * (1 - f) / n)) / qs
    return int(round(float(np.clip(ratio.min(), 0.0, 1.0)) * n))


def bimodal_count(score: np.ndarray, *, seed: int = 0) -> int:
    """Samples in the low component of a two-component GMM on the finite scores (posterior > 0.5),
    or 0 when one component fits better by BIC."""
    s = np.asarray(score, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size < 10 or np.ptp(s) == 0:
        return 0
    z = ((s - s.mean()) / s.std()).reshape(-1, 1)
    one = GaussianMixture(1, random_state=seed).fit(z)
    two = GaussianMixture(2, random_state=seed).fit(z)
    if two.bic(z) >= one.bic(z):
        return 0
    low = int(np.argmin(two.means_.ravel()))
    return int((two.predict_proba(z)[:, low] > 0.5).sum())
