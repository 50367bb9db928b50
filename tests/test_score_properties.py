"""Properties of the trajectory scores on random recordings (from the review's fuzz): each score
equals an independent float64 reference written here from the definitions (missing epochs left
out, exact ties agreeing), does not depend on the sample ids or the class order, is finite for
any finite logits, streaming equals full mode, and SEI's sign follows agreement."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labeltrace.record import Recorder
from labeltrace.record.dynamics import Dynamics
from labeltrace.score import trajectory as T

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
NAMES = ("sei", "ei", "se_at", "aum", "loss", "forgetting", "confidence", "variability")
Run = tuple[np.ndarray, np.ndarray, np.ndarray]  # logits (T, N, K), labels (N,), seen (T, N)


@st.composite
def runs(draw: st.DrawFn, big: bool = False) -> Run:
    n, k, t = draw(st.integers(1, 12)), draw(st.integers(2, 5)), draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    scale = draw(st.sampled_from([0.0, 1.0, 10.0, 1e3, 1e30] if big else [0.0, 0.5, 3.0, 20.0]))
    z = rng.normal(size=(t, n, k)) * scale
    if draw(st.booleans()):
        z = np.round(z)  # exact ties
    seen = rng.random((t, n)) < draw(st.sampled_from([1.0, 0.7]))
    return z, rng.integers(0, k, n), seen


def record(r: Run, perm: np.ndarray | None = None, mode: str = "full") -> Dynamics:
    """The run recorded epoch by epoch, sample ``i`` under id ``perm[i]`` (in a shuffled order)."""
    z, y, seen = r
    t, n, k = z.shape
    rec = Recorder(num_samples=n, num_classes=k, mode=mode)  # type: ignore[arg-type]
    for e in range(t):
        idx = np.flatnonzero(seen[e])
        if perm is not None:
            idx = idx[np.random.default_rng(e).permutation(idx.size)]
        if idx.size:
            rec.update(idx if perm is None else perm[idx], z[e, idx], y[idx])
        rec.end_epoch()
    return rec.dynamics()


def reference(r: Run) -> dict[str, np.ndarray]:
    z, y, seen = r
    t, n, _ = z.shape
    m = z.max(2, keepdims=True)
    e = np.exp(z - m)
    p = e / e.sum(2, keepdims=True)
    logp = (z - m) - np.log(e.sum(2, keepdims=True))
    h = -np.where(p > 0, p * logp, 0).sum(2)
    zg = z[:, np.arange(n), y]
    zo = z.copy()
    zo[:, np.arange(n), y] = -np.inf
    agree = zg >= zo.max(2)  # an exact tie agrees (the SEI paper's code)
    cnt = seen.sum(0)

    def mean(v: np.ndarray) -> np.ndarray:
        return np.where(cnt > 0, np.where(seen, v, 0).sum(0) / np.maximum(cnt, 1), np.nan)

    pg = p[:, np.arange(n), y]
    out = {"sei": mean(np.where(agree, h, -h)), "ei": -mean(h), "aum": mean(zg - zo.max(2)),
           "confidence": mean(pg), "loss": mean(logp[:, np.arange(n), y])}  # fmt: skip
    out["variability"] = -np.sqrt(np.maximum(mean(pg**2) - out["confidence"] ** 2, 0))
    out["se_at"] = np.where(seen[-1], np.where(agree, h, -h)[-1], np.nan)
    forgot, ever, prev = np.zeros(n), np.zeros(n, bool), np.full(n, -1)
    for ep in range(t):
        c = np.where(seen[ep], agree[ep].astype(int), -1)
        forgot += (prev == 1) & (c == 0)
        ever |= c == 1
        prev = np.where(seen[ep], c, prev)
    out["forgetting"] = np.where(cnt == 0, np.nan, np.where(ever, -forgot, -(t + 1.0)))
    return out


@SETTINGS
@given(runs())
def test_every_score_equals_its_reference(r: Run) -> None:
    d, want, seen = record(r), reference(r), r[2]
    for name in NAMES:
        got = T.compute(name, d)
        np.testing.assert_allclose(got, want[name], rtol=2e-6, atol=2e-6, equal_nan=True, err_msg=name)
        scored = seen[-1] if name == "se_at" else seen.any(0)
        assert np.isfinite(got[scored]).all() and np.isnan(got[~scored]).all(), name


@SETTINGS
@given(runs(), st.integers(0, 2**31))
def test_scores_follow_the_sample_not_its_id_or_the_class_order(r: Run, seed: int) -> None:
    z, y, seen = r
    rng = np.random.default_rng(seed)
    perm, pi = rng.permutation(y.size), rng.permutation(z.shape[2])
    z2 = np.empty_like(z)
    z2[..., pi] = z
    d0, d1, d2 = record(r), record(r, perm=perm), record((z2, pi[y], seen))
    for name in NAMES:
        a = T.compute(name, d0)
        np.testing.assert_array_equal(T.compute(name, d1)[perm], a, err_msg=name)
        np.testing.assert_allclose(T.compute(name, d2), a, rtol=1e-6, atol=1e-6, equal_nan=True, err_msg=name)


@SETTINGS
@given(runs(big=True))
def test_finite_at_any_scale_and_streaming_equals_full(r: Run) -> None:
    d, ds, seen = record(r), record(r, mode="streaming"), r[2]
    for name in NAMES:
        a = T.compute(name, d)
        assert np.isfinite(a[seen[-1] if name == "se_at" else seen.any(0)]).all(), name
        np.testing.assert_array_equal(a, T.compute(name, ds), err_msg=name)


@SETTINGS
@given(runs(big=True))
def test_sei_is_negative_exactly_where_the_model_always_disagrees(r: Run) -> None:
    """Confidently wrong at a logit gap past ~110, the entropy underflowed and SEI read -0.0."""
    d = record(r)
    s, c, scored = T.compute("sei", d), d.mean("correct"), r[2].any(0)
    assert (s[scored & (c == 1)] >= 0).all() and (s[scored & (c == 0)] < 0).all()
