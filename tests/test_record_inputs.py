"""Strict inputs of Recorder.update (issue 11 §7): logits that overflow float32, complex logits,
ids beyond int64, conflicting labels, tensors without values — and no NaN score from finite input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labeltrace import Recorder
from labeltrace.record import FIELDS
from labeltrace.score import trajectory as scores

F32_MAX = float(np.finfo(np.float32).max)


def one_epoch(ids, logits, labels, n=4, k=None):
    k = k or np.shape(logits)[1]
    rec = Recorder(n, k)
    rec.update(ids, logits, labels)
    rec.end_epoch()
    return rec.dynamics()


def test_float64_logits_beyond_float32_are_recorded_finite():
    # float64 logits of 1e39 are finite; they used to become inf (then NaN) in float32
    z = torch.tensor([[1e39, 0.0, -1e39], [1e39, 0.0, -1e39]], dtype=torch.float64)
    d = one_epoch([0, 1], z, [0, 2])
    np.testing.assert_array_equal(d.at("entropy", 0)[:2], [0.0, 0.0])
    np.testing.assert_array_equal(d.at("correct", 0)[:2], [1.0, 0.0])
    np.testing.assert_array_equal(d.at("p_given", 0)[:2], [1.0, 0.0])
    np.testing.assert_array_equal(d.at("loss", 0)[:2], [0.0, F32_MAX])  # 2e39 saturates
    np.testing.assert_array_equal(d.at("margin", 0)[:2], [F32_MAX, -F32_MAX])  # ±1e39 saturate


@pytest.mark.parametrize("as_torch", [False, True])
def test_float32_extremes_give_finite_entropy_and_margin(as_torch):
    z = np.array([[3e38, -3e38], [3e38, -3e38], [-3.4e38, 3.4e38]], dtype=np.float32)
    d = one_epoch([0, 1, 2], torch.from_numpy(z) if as_torch else z, [0, 1, 1])
    for f in FIELDS:
        assert np.isfinite(d.at(f, 0)[:3]).all(), f
    np.testing.assert_array_equal(d.at("entropy", 0)[:3], [0.0, 0.0, 0.0])
    se = d.at("signed_entropy", 0)[:3]  # sample 1 disagrees: negative, however small (its sign is the point)
    assert se[0] == 0.0 and se[2] == 0.0 and se[1] < 0.0 and se[1] == -np.finfo(np.float32).smallest_subnormal
    # 6e38 and 6.8e38 do not fit float32: saturated, with the right sign
    np.testing.assert_array_equal(d.at("margin", 0)[:3], [F32_MAX, -F32_MAX, F32_MAX])


def test_no_nan_score_from_finite_input():
    rng = np.random.default_rng(0)
    extremes = np.array([0.0, 1e-310, -1e-310, 1e38, -1e38, 3.4e38, -3.4e38, 1e39, -1e39, 1e300, -1.7e308, 1.7e308])
    n, k, T = 24, 3, 4
    labels = rng.integers(0, k, n)
    rec = Recorder(n, k)
    for _ in range(T):
        z = rng.choice(extremes, size=(n, k))
        for b in range(0, n, 5):
            rec.update(np.arange(b, min(b + 5, n)), z[b : b + 5], labels[b : b + 5])
        rec.end_epoch()
    d = rec.dynamics()
    for name in scores.available():
        s = scores.compute(name, d)
        assert np.isfinite(s).all(), name
    assert np.isfinite(d.posterior()).all() and np.isfinite(d.mean_posterior()).all()


@pytest.mark.parametrize(
    "logits",
    [
        np.array([[1 + 2j, 0], [0, 1]], dtype=np.complex64),
        torch.tensor([[1 + 2j, 0], [0, 1]], dtype=torch.complex128),
        [[1 + 0j, 0], [0, 1]],
    ],
    ids=["numpy", "torch", "list"],
)
def test_complex_logits_are_refused(logits):
    rec = Recorder(4, 2)
    with pytest.raises(ValueError, match="complex"):
        rec.update([0, 1], logits, [0, 1])
    assert not rec.epoch_in_progress


def test_logits_that_are_not_numbers_are_refused():
    rec = Recorder(4, 2)
    with pytest.raises(ValueError, match="bool"):
        rec.update([0, 1], np.array([[True, False], [False, True]]), [0, 1])
    with pytest.raises(ValueError, match=r"not real numbers.*sample ids \[3\]"):
        rec.update([0, 3], np.array([[1, 2], [10**400, 0]], dtype=object), [0, 1])
    with pytest.raises(ValueError, match="numbers"):
        rec.update([0, 1], np.array([["a", "b"], ["c", "d"]]), [0, 1])
    with pytest.raises(ValueError, match="could not be read"):
        rec.update([0, 1], [[1.0, 2.0], [3.0]], [0, 1])


def test_huge_unsigned_ids_are_named_as_given():
    rec = Recorder(4, 2)
    with pytest.raises(ValueError, match="out of range.*18446744073709551615"):
        rec.update(np.array([1, 2**64 - 1], dtype=np.uint64), np.zeros((2, 2)), [0, 0])
    with pytest.raises(ValueError, match="out of range.*100000000000000000000"):
        rec.update(np.array([1.0, 1e20]), np.zeros((2, 2)), [0, 0])


def test_one_batch_with_two_labels_for_a_sample_is_refused():
    rec = Recorder(4, 2)
    with pytest.raises(ValueError, match=r"different labels to sample ids \[2\]"):
        rec.update([2, 1, 2], np.zeros((3, 2)), [0, 1, 1])
    assert not rec.epoch_in_progress and (rec.labels == -1).all()


def test_tensors_without_values_are_refused():
    rec = Recorder(4, 2)
    with pytest.raises(ValueError, match="meta"):
        rec.update([0, 1], torch.zeros((2, 2), device="meta"), [0, 1])
    with pytest.raises(ValueError, match="meta"):
        rec.update(torch.zeros(2, dtype=torch.long, device="meta"), np.zeros((2, 2)), [0, 1])


def test_bfloat16_and_float16_logits_are_recorded():
    z = torch.tensor([[2.0, -1.0], [0.5, 0.25]])
    ref = one_epoch([0, 1], z.double(), [0, 1])
    for dt in (torch.bfloat16, torch.float16):
        d = one_epoch([0, 1], z.to(dt), [0, 1])  # these values are exact in both dtypes
        for f in FIELDS:
            np.testing.assert_array_equal(d.at(f, 0), ref.at(f, 0))


def test_float16_ids_that_cannot_tell_samples_apart_are_refused():
    """float16 holds 2048 but not 2049: ids of 2503 samples merged pairs of samples silently."""
    rec = Recorder(2503, 3, keep_probs=0)
    ids = torch.arange(2040, 2056)
    with pytest.raises(ValueError, match=r"dtype float16, which cannot tell apart every value below 2503 .*pass integer ids"):
        rec.update(ids.half(), torch.zeros(16, 3), torch.zeros(16, dtype=torch.long))
    rec.update(ids.float(), torch.zeros(16, 3), torch.zeros(16, dtype=torch.long))  # float32: exact to 2**24
    rec.end_epoch()
    assert rec.dynamics().n_seen[2040:2056].tolist() == [1] * 16
    small = Recorder(2048, 3)  # every id of 2048 samples is a float16
    small.update(torch.tensor([2047.0, 3.0]).half(), torch.zeros(2, 3), torch.tensor([1.0, 2.0]).half())


def test_bfloat16_ids_and_labels_past_256_are_refused():
    """bfloat16 holds 256 but not 257: widened to float32 before the check, ids 257, 259 recorded as
    256, 260 and labels of 1,000 classes misread, silently (an audit's finding)."""
    rec = Recorder(300, 3, keep_probs=0)
    with pytest.raises(ValueError, match=r"ids must be integers, got dtype bfloat16, which cannot tell apart every "
                                         r"value below 300 \(its integers are exact only up to 256\)"):
        rec.update(torch.arange(256, 260).to(torch.bfloat16), torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    wide = Recorder(4, 1000, keep_probs=0)
    with pytest.raises(ValueError, match=r"labels must be integers, got dtype bfloat16, .* below 1000"):
        wide.update(torch.arange(4), torch.zeros(4, 1000), torch.arange(300, 304).to(torch.bfloat16))
    small = Recorder(256, 256)  # every id and label below 256 is a bfloat16: read exactly
    small.update(torch.tensor([255.0, 3.0]).to(torch.bfloat16), torch.zeros(2, 256),
                 torch.tensor([255.0, 2.0]).to(torch.bfloat16))
    small.end_epoch()
    assert small.dynamics().n_seen[[3, 255]].tolist() == [1, 1]
    from labeltrace.train.loop import training_labels  # the trainer's reading of the labels alike

    with pytest.raises(ValueError, match=r"dtype bfloat16, .* below 1000 .*exact only up to 256"):
        training_labels(torch.arange(300, 304).to(torch.bfloat16), 4, 1000)
    assert training_labels(torch.tensor([255.0, 2.0]).to(torch.bfloat16), 2, 256).tolist() == [255, 2]


def test_fractional_labels_name_their_samples():
    rec = Recorder(8, 3)
    with pytest.raises(ValueError, match=r"fractional values at sample ids \[6\] \(labels \[1\.5\]\)"):
        rec.update([5, 6], torch.zeros(2, 3), [1.0, 1.5])


def test_a_model_output_passed_as_logits_says_to_pass_the_tensor():
    rec = Recorder(4, 3)
    for out, what in (({"logits": torch.zeros(2, 3)}, "dict"), ((torch.zeros(2, 3),), "tuple")):
        with pytest.raises(ValueError, match=f"from a {what}: pass the logits tensor itself"):
            rec.update([0, 1], out, [0, 1])


@pytest.mark.parametrize("shape", [(4,), (4, 1)])
def test_a_single_logit_binary_model_is_told_how_to_record(shape):
    rec = Recorder(8, 2)
    z = torch.randn(*shape)
    with pytest.raises(ValueError, match=r"got \(4,( 1)?\).*torch.cat\(\[torch.zeros_like\(z\), z\], 1\)"):
        rec.update(torch.arange(4), z, torch.zeros(4, dtype=torch.long))
    two = torch.cat([torch.zeros_like(z.reshape(4, 1)), z.reshape(4, 1)], 1)  # the advice, followed
    rec.update(torch.arange(4), two, torch.ones(4, dtype=torch.long))
    rec.end_epoch()
    p = torch.sigmoid(z.reshape(4)).double().numpy()
    np.testing.assert_allclose(rec.dynamics().epochs("p_given")[0, :4], p, rtol=1e-6)
    with pytest.raises(ValueError, match=r"got \(4, 3\)") as e:  # not a binary model's shape: no such advice
        rec.update(torch.arange(4), torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    assert "zeros_like" not in str(e.value)
