"""Tests for labeltrace.queue: relabel priorities and the review queue."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from labeltrace.relabel import priority as lq
from labeltrace.relabel.queue import build_queue


def _h(p: list[float]) -> float:
    """Entropy in nats, written independently of the module."""
    return -sum(x * math.log(x) for x in p if x > 0)


# ----------------------------------------------------------------------------- hand-computed values


def test_cross_entropy_hand_values() -> None:
    post = np.array([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1]])
    counts = np.array([[0, 1, 0], [1, 1, 0]])
    got = lq.cross_entropy(post, counts)
    want0 = -math.log(0.2) / math.log(3)
    want1 = -(0.5 * math.log(0.7) + 0.5 * math.log(0.2)) / math.log(3)
    np.testing.assert_allclose(got, [want0, want1], rtol=1e-12)


def test_cross_entropy_clips_zero_probability() -> None:
    got = lq.cross_entropy(np.array([[1.0, 0.0]]), np.array([[0, 1]]))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, [-math.log(lq.EPS) / math.log(2)])


def test_joint_demotes_high_entropy_posterior() -> None:
    # both samples labelled 0 with p[0] = 0.1: identical cross-entropy, different ambiguity
    ambiguous = [0.1, 0.45, 0.45]
    confident = [0.1, 0.8, 0.1]
    post = np.array([ambiguous, confident])
    counts = np.array([[1, 0, 0], [1, 0, 0]])
    ce = lq.cross_entropy(post, counts)
    jt = lq.joint(post, counts, gamma=0.3)
    ce_hand = -math.log(0.1) / math.log(3)
    pen_a = _h(ambiguous) / math.log(3) - 0.3  # 0.56374
    pen_c = _h(confident) / math.log(3) - 0.3  # 0.2817...
    assert pen_a > pen_c > 0
    np.testing.assert_allclose(ce, [ce_hand, ce_hand], rtol=1e-12)
    np.testing.assert_allclose(jt, [ce_hand - pen_a, ce_hand - pen_c], rtol=1e-12)
    np.testing.assert_allclose(jt, [2.095903 - 0.563740, 2.095903 - 0.281672], atol=2e-6)
    assert ce[0] == ce[1] and jt[1] > jt[0]  # tie broken against the ambiguous image


def test_joint_equals_cross_entropy_below_gamma() -> None:
    post = np.array([[0.98, 0.01, 0.01]])  # H/log3 ≈ 0.10 < 0.3
    counts = np.array([[0, 1, 0]])
    assert _h([0.98, 0.01, 0.01]) / math.log(3) < 0.3
    np.testing.assert_allclose(lq.joint(post, counts), lq.cross_entropy(post, counts))


def test_joint_ranks_noisy_unambiguous_first() -> None:
    # sample 0: confident disagreement (clear error); 1: ambiguous disagreement; 2: agreement
    post = np.array([[0.02, 0.96, 0.02], [0.30, 0.36, 0.34], [0.96, 0.02, 0.02]])
    counts = np.eye(3)[[0, 0, 0]]
    assert np.argsort(-lq.joint(post, counts)).tolist() == [0, 1, 2]
    # gamma = 1 switches the penalty off
    np.testing.assert_allclose(lq.joint(post, counts, gamma=1.0), lq.cross_entropy(post, counts))


def test_oracle_hand_values() -> None:
    true = np.array([[8, 2, 0], [8, 2, 0], [5, 4, 1], [0, 0, 10]])
    counts = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0]])
    got = lq.oracle(counts, true)
    # 0 correct; 1 wrong with gap .8-.2; 2 wrong with gap .5-.4 (ambiguous); 3 wrong with gap 1
    np.testing.assert_allclose(got, [0.0, 1.6, 1.1, 2.0])
    assert np.argsort(-got, kind="stable").tolist() == [3, 1, 2, 0]


def test_sei_and_sei_joint() -> None:
    s = np.array([0.5, -1.0, 0.0, 2.0])
    np.testing.assert_array_equal(lq.sei(s), -s)
    # confident posteriors: no penalty, so sei_joint is the rank of -SEI scaled to [0, 1]
    post = np.full((4, 3), 0.005)
    post[:, 0] = 0.99
    np.testing.assert_allclose(lq.sei_joint(s, post), [1 / 3, 1.0, 2 / 3, 0.0])
    # an ambiguous posterior on the lowest-SEI sample demotes it below the next one
    post[1] = [0.34, 0.33, 0.33]
    pen = _h([0.34, 0.33, 0.33]) / math.log(3) - 0.3
    got = lq.sei_joint(s, post)
    np.testing.assert_allclose(got[1], 1.0 - pen)
    assert got[2] > got[1]
    # ties share the average rank
    sure = np.tile([0.99, 0.005, 0.005], (3, 1))
    np.testing.assert_allclose(lq.sei_joint(np.array([1.0, 1.0, 0.0]), sure), [0.25, 0.25, 1.0])


def test_random_seeded() -> None:
    a = lq.random(50, seed=3)
    assert a.shape == (50,) and ((a >= 0) & (a < 1)).all()
    np.testing.assert_array_equal(a, lq.random(50, seed=3))
    assert not np.array_equal(a, lq.random(50, seed=4))
    np.testing.assert_array_equal(a, np.random.default_rng(3).random(50))


# ----------------------------------------------------------------------------- properties


def _dist(n: int, k: int) -> st.SearchStrategy[np.ndarray]:
    return arrays(np.float64, (n, k), elements=st.floats(0.001, 1.0)).map(
        lambda a: a / a.sum(1, keepdims=True)
    )


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 6).flatmap(
        lambda k: st.tuples(
            _dist(5, k),
            arrays(np.int64, (5, k), elements=st.integers(0, 5)).map(
                lambda c: c + np.eye(k, dtype=np.int64)[0]
            ),
            st.floats(0.0, 1.0),
            st.integers(1, 7),
        )
    )
)
def test_priority_properties(args: tuple[np.ndarray, np.ndarray, float, int]) -> None:
    post, counts, gamma, scale = args
    ce = lq.cross_entropy(post, counts)
    jt = lq.joint(post, counts, gamma=gamma)
    h = lq.normalized_entropy(post)
    assert ce.shape == (5,) and (ce >= -1e-12).all()
    assert (jt <= ce + 1e-12).all()
    np.testing.assert_allclose(ce - jt, np.maximum(h - gamma, 0.0), atol=1e-12)
    # counts are normalised: scaling them changes nothing
    np.testing.assert_allclose(lq.cross_entropy(post, counts * scale), ce, rtol=1e-12)
    assert ((h >= 0) & (h <= 1 + 1e-12)).all()


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.integers(1, 30), elements=st.floats(-5, 5)))
def test_sei_joint_range(s: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    post = rng.dirichlet(np.ones(4), size=s.size)
    got = lq.sei_joint(s, post, gamma=0.3)
    assert got.shape == s.shape
    assert (got <= 1 + 1e-12).all() and (got >= 0.3 - 1 - 1e-12).all()
    # order among samples with the same posterior follows -SEI
    same = lq.sei_joint(s, np.full((s.size, 4), 0.25), gamma=0.3)
    assert np.all(np.diff(same[np.argsort(s, kind="stable")]) <= 1e-12)


# ------------------------------------------------------------------------ registry and validation


def test_registry_dispatch() -> None:
    rng = np.random.default_rng(0)
    post = rng.dirichlet(np.ones(3), size=6)
    counts = np.eye(3, dtype=np.int64)[rng.integers(0, 3, 6)]
    s = rng.normal(size=6)
    true = rng.integers(1, 10, size=(6, 3))
    assert lq.available() == ["cross_entropy", "joint", "oracle", "random", "sei", "sei_joint"]
    kw = dict(posterior=post, label_counts=counts, sei=s, true_dist=true, gamma=0.2, seed=5)
    np.testing.assert_allclose(lq.priority("cross_entropy", **kw), lq.cross_entropy(post, counts))
    np.testing.assert_allclose(lq.priority("joint", **kw), lq.joint(post, counts, gamma=0.2))
    np.testing.assert_allclose(lq.priority("sei", **kw), -s)
    np.testing.assert_allclose(lq.priority("sei_joint", **kw), lq.sei_joint(s, post, gamma=0.2))
    np.testing.assert_allclose(lq.priority("random", **kw), lq.random(6, seed=5))
    np.testing.assert_allclose(lq.priority("oracle", **kw), lq.oracle(counts, true))
    with pytest.raises(ValueError, match="unknown priority 'nope'"):
        lq.priority("nope", **kw)
    with pytest.raises(ValueError, match="needs true_dist"):
        lq.priority("oracle", label_counts=counts)
    with pytest.raises(ValueError, match="needs posterior"):
        lq.priority("joint", label_counts=counts)
    with pytest.raises(ValueError, match="needs sei"):
        lq.priority("sei", posterior=post)
    with pytest.raises(ValueError, match="needs one of posterior="):
        lq.priority("random")


def test_validation_names_ids() -> None:
    post = np.full((4, 2), 0.5)
    counts = np.eye(2)[[0, 1, 0, 1]]
    bad = post.copy()
    bad[2] = [np.nan, 0.5]
    with pytest.raises(ValueError, match=r"posterior has NaN.*\[2\]"):
        lq.cross_entropy(bad, counts)
    bad = post.copy()
    bad[3] = [0.9, 0.3]
    with pytest.raises(ValueError, match=r"sum to 1.*\[3\]"):
        lq.joint(bad, counts)
    zero = counts.copy()
    zero[1] = 0
    with pytest.raises(ValueError, match=r"all-zero rows at sample ids \[1\]"):
        lq.cross_entropy(post, zero)
    with pytest.raises(ValueError, match="4 rows, expected"):
        lq.cross_entropy(np.full((3, 2), 0.5), counts)
    with pytest.raises(ValueError, match="at least 2 classes"):
        lq.cross_entropy(np.ones((3, 1)), np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"sei has NaN.*\[1\]"):
        lq.sei(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="gamma"):
        lq.ambiguity_penalty(post, gamma=1.5)


# ----------------------------------------------------------------------------- build_queue


def test_build_queue_order_and_columns() -> None:
    pr = np.array([0.2, 0.9, 0.5, 0.9, -1.0])
    post = np.array(
        [[0.6, 0.4], [0.1, 0.9], [0.3, 0.7], [0.8, 0.2], [0.5, 0.5]],
    )
    q = build_queue(pr, post, classes=["cat", "dog"], labels=np.array([0, 0, 1, 1, 0]))
    assert q["id"].tolist() == [1, 3, 2, 0, 4]  # ties (0.9) by lower id
    assert q["rank"].tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(q["priority"], pr[[1, 3, 2, 0, 4]])
    assert q["suggested_label"].tolist() == [1, 0, 1, 0, 0]
    np.testing.assert_allclose(q["suggested_prob"], [0.9, 0.8, 0.7, 0.6, 0.5])
    assert q["suggested_class"].tolist() == ["dog", "cat", "dog", "cat", "cat"]
    assert q["label"].tolist() == [0, 1, 1, 0, 0]
    assert q["label_class"].tolist() == ["cat", "dog", "dog", "cat", "cat"]
    assert {len(v) for v in q.values()} == {5}


def test_build_queue_exclude_and_arrow() -> None:
    pa = pytest.importorskip("pyarrow")
    pr = np.array([3.0, 2.0, 1.0, 0.0])
    post = np.full((4, 3), 1 / 3)
    by_ids = build_queue(pr, post, exclude=[0, 2])
    by_mask = build_queue(pr, post, exclude=np.array([True, False, True, False]))
    assert by_ids["id"].tolist() == by_mask["id"].tolist() == [1, 3]
    assert by_ids["rank"].tolist() == [1, 2]
    table = pa.table(by_ids)
    assert table.num_rows == 2 and table.column_names[:3] == ["id", "priority", "rank"]
    empty = build_queue(pr, post, exclude=np.ones(4, dtype=bool))
    assert all(len(v) == 0 for v in empty.values())
    with pytest.raises(ValueError, match=r"outside 0..3.*\[7\]"):
        build_queue(pr, post, exclude=[7])
    with pytest.raises(ValueError, match=r"priorities has NaN.*\[2\]"):
        build_queue(np.array([1.0, 0.0, np.nan, 2.0]), post)
    with pytest.raises(ValueError, match="classes has 2 names"):
        build_queue(pr, post, classes=["a", "b"])
