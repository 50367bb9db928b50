"""Property-based fuzz of Recorder.update inputs (issue 11, "Must show").

Every input — ids, logits and labels of any dtype (int8..uint64, bool, float16/32/64, bfloat16,
complex, object), shape, extreme value (±huge, denormal, NaN, Inf), container (numpy, torch,
list, non-contiguous) and device (cpu; meta; cuda when present) — is either recorded exactly,
as a float64 numpy/scipy reference computes it from the values the input holds, or refused with
a ``ValueError`` whose message names one of the problems the input really has. Never another
exception type, never a silently different value, and a refused batch leaves no trace.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from scipy.special import log_softmax

from labeltrace import Recorder
from labeltrace.record import FIELDS

N = 8
F32_MAX = float(np.finfo(np.float32).max)
DEVICES = ["cpu", "meta"] + (["cuda"] if torch.cuda.is_available() else [])

INDEX_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                "float16", "float32", "float64"]  # fmt: skip
BAD_INDEX_DTYPES = ["bool", "complex64"]
LOGIT_DTYPES = ["float16", "float32", "float64", "bfloat16", "int32", "int64", "uint64"]
BAD_LOGIT_DTYPES = ["bool", "complex64", "complex128"]
TORCH = {
    "int8": torch.int8, "int16": torch.int16, "int32": torch.int32, "int64": torch.int64,
    "uint8": torch.uint8, "uint16": torch.uint16, "uint32": torch.uint32, "uint64": torch.uint64,
    "bool": torch.bool, "float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
    "float64": torch.float64, "complex64": torch.complex64, "complex128": torch.complex128,
}  # fmt: skip
FINITE_EXTREMES = [0.0, -0.0, 5e-324, -2.2e-308, 1e-40, 65504.0, 7e4, 1e38, -3.4e38, 3.4028235e38,
                   1e39, -1e39, 1e300, -1.7e308, 1.7e308]  # fmt: skip


@dataclass
class Built:
    obj: Any  # what is passed to update
    values: np.ndarray | None  # the values the object holds (float64 / int), None if unreadable
    problems: list[str] = field(default_factory=list)  # regexes of what is wrong with it


def _held_values(obj: Any) -> np.ndarray | None:
    """The numbers an input holds, read independently of the recorder."""
    if isinstance(obj, torch.Tensor):
        if obj.device.type == "meta" or obj.is_complex():
            return None
        return obj.detach().to("cpu", torch.float64 if obj.is_floating_point() else obj.dtype).numpy()
    try:
        return np.asarray(obj)
    except ValueError:
        return None


def build(kind: str, vals: np.ndarray, dtype: str, container: str, device: str, layout: str) -> Built:
    """``vals`` (float64) cast to ``dtype`` in a container; records what is wrong with it."""
    if container == "list":
        device = "cpu"
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if dtype == "bool":
            arr = vals != 0
        elif dtype.startswith("complex"):
            arr = (vals + 1j).astype(dtype)
        elif dtype.startswith(("int", "uint")):
            arr = np.nan_to_num(vals, nan=0, posinf=2**62, neginf=-(2**62)).clip(-(2**62), 2**62)
            arr = arr.astype(np.int64).astype(dtype)  # wraps like a cast in user code
        elif dtype == "bfloat16":
            arr = torch.tensor(vals, dtype=torch.float64).to(torch.bfloat16).to(torch.float64).numpy()
        else:
            arr = vals.astype(dtype)
        if container == "list":
            obj: Any = arr.tolist()
        elif container == "torch" or dtype == "bfloat16" or device != "cpu":
            t = torch.from_numpy(np.ascontiguousarray(arr)).to(TORCH[dtype] if dtype != "bool" else torch.bool)
            if layout == "strided" and t.ndim == 2:
                t = t.t().contiguous().t()
            obj = t.to(device) if device != "cpu" else t
        else:
            obj = np.asfortranarray(arr) if layout == "strided" else arr
    b = Built(obj, None if device == "meta" else _held_values(obj))
    if device == "meta":
        b.problems.append("meta")
    # the dtype the object holds (a list holds Python numbers: [] or [[]] hold floats)
    held = obj.dtype if isinstance(obj, torch.Tensor) else np.asarray(obj).dtype
    if held.is_complex if isinstance(held, torch.dtype) else held.kind == "c":
        b.problems.append("complex" if kind == "logits" else "integers|complex")
    if held == torch.bool or held == np.bool_:
        b.problems.append("bool" if kind == "logits" else "integers")
    return b


@st.composite
def batches(draw):
    """Mostly valid batches, each with a small chance of each kind of defect."""
    B = draw(st.integers(0, 6))
    K = draw(st.integers(2, 4))

    def rarely(p=0.08):
        n = round(1 / p)
        return draw(st.sampled_from([False] * (n - 1) + [True]))  # False first: what shrinking keeps

    ids_shape = draw(st.sampled_from(["2d", "scalar"])) if rarely() else "ok"
    logit_shape = draw(st.sampled_from(["k+1", "b+1", "1d", "ragged"])) if rarely() else "ok"
    label_shape = "short" if rarely(0.05) else "ok"
    ids = np.array(draw(st.lists(st.integers(0, N - 1), min_size=B, max_size=B)), dtype=np.float64)
    table = np.array(draw(st.lists(st.integers(0, K - 1), min_size=N, max_size=N)))  # one label per sample
    labels = table[ids.astype(int)].astype(np.float64)
    if rarely(0.1):  # repeated ids may get different labels
        labels = np.array(draw(st.lists(st.integers(0, K - 1), min_size=B, max_size=B)), dtype=np.float64)
    if B and rarely():
        ids[draw(st.integers(0, B - 1))] = draw(st.sampled_from([-1, N, N + 5, 2**40, 2**63 - 1]))
    if B and rarely(0.05):
        ids[draw(st.integers(0, B - 1))] += 0.5  # fractional
    if B and rarely():
        labels[draw(st.integers(0, B - 1))] = draw(st.sampled_from([-1, K, 2**31]))
    finite = st.floats(-30, 30, allow_subnormal=True)
    if rarely(0.3):
        finite = finite | st.sampled_from(FINITE_EXTREMES)
    elements = (finite | st.sampled_from([np.nan, np.inf, -np.inf])) if rarely(0.15) else finite
    logits = np.array(draw(st.lists(st.lists(elements, min_size=K, max_size=K), min_size=B, max_size=B)),
                      dtype=np.float64).reshape(B, K)  # fmt: skip

    def dtype(good, bad):
        return draw(st.sampled_from(bad)) if rarely(0.1) else draw(st.sampled_from(good))

    return {
        "B": B, "K": K, "ids_shape": ids_shape, "logit_shape": logit_shape, "label_shape": label_shape,
        "ids": ids, "labels": labels, "logits": logits,
        "ids_dtype": dtype(INDEX_DTYPES, BAD_INDEX_DTYPES), "labels_dtype": dtype(INDEX_DTYPES, BAD_INDEX_DTYPES),
        "logits_dtype": dtype(LOGIT_DTYPES, BAD_LOGIT_DTYPES),
        "containers": [draw(st.sampled_from(["numpy", "torch", "list"])) for _ in range(3)],
        "devices": [draw(st.sampled_from(DEVICES)) if rarely(0.05) else "cpu" for _ in range(3)],
        "layout": draw(st.sampled_from(["contiguous", "strided"])),
    }  # fmt: skip


def index_problems(b: Built, upper: int) -> np.ndarray | None:
    """Problems of an ids/labels input; its integer values when it is readable and integral."""
    if b.values is None:
        if not b.problems:
            b.problems.append("could not be read")
        return None
    v = b.values
    if v.ndim != 1:
        b.problems.append("1-D")
        return None
    if v.size == 0:
        return np.zeros(0, np.int64)
    if v.dtype.kind in "bc":
        return None  # already listed
    if v.dtype.kind == "f" and (~np.isfinite(v) | (v != np.round(v))).any():
        b.problems.append("integers")
        return None
    ints = [int(x) for x in v]
    if any(x < 0 or x >= upper for x in ints):
        b.problems.append("out of range")
        return None
    return np.array(ints, dtype=np.int64)


def reference(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(F, B) recorded quantities from float64 logits, with the documented float32 saturation."""
    with np.errstate(all="ignore"):
        logp = log_softmax(z, axis=1)
        p = np.exp(logp)
        H = -np.where(p > 0, p * logp, 0.0).sum(1)
        r = np.arange(len(labels))
        other = z.copy()
        other[r, labels] = -np.inf
        correct = (z[r, labels] >= other.max(1)).astype(float)  # an exact tie agrees, as the SEI sign
        q = np.stack([H, np.where(z[r, labels] >= other.max(1), H, -H), correct, z[r, labels] - other.max(1), p[r, labels], -logp[r, labels]])
    return np.clip(q, -F32_MAX, F32_MAX)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=batches())
def test_update_records_exactly_or_refuses_clearly(case):
    B, K = case["B"], case["K"]
    c_ids, c_log, c_lab = case["containers"]
    d_ids, d_log, d_lab = case["devices"]
    ids_arr = case["ids"]
    ids_arr = {"ok": ids_arr, "2d": ids_arr.reshape(1, -1), "scalar": np.float64(ids_arr[0] if B else 0)}[case["ids_shape"]]
    ids = build("ids", np.asarray(ids_arr), case["ids_dtype"], c_ids, d_ids, "contiguous")
    z = case["logits"]
    z = {"ok": z, "k+1": np.pad(z, ((0, 0), (0, 1))), "b+1": np.pad(z, ((0, 1), (0, 0))), "1d": z.ravel(), "ragged": z}[
        case["logit_shape"]
    ]
    logits = build("logits", z, case["logits_dtype"], c_log, d_log, case["layout"])
    if case["logit_shape"] == "ragged" and B:
        logits = Built([list(r) for r in z.tolist()][:-1] + [z[-1].tolist() + [0.0]], None)
        logits.problems.append("could not be read|shape")
    lab = case["labels"] if case["label_shape"] == "ok" else case["labels"][:-1]
    labels = build("labels", lab, case["labels_dtype"], c_lab, d_lab, "contiguous")

    # what is wrong, decided independently of the recorder
    id_v = index_problems(ids, N)
    lab_v = index_problems(labels, K)
    zv = logits.values
    n_ids = len(ids.values) if ids.values is not None and ids.values.ndim == 1 else None
    if zv is not None and (zv.ndim != 2 or zv.shape[1] != K or (n_ids is not None and zv.shape[0] != n_ids)):
        logits.problems.append("shape")
    elif zv is not None and zv.dtype.kind in "fiu" and zv.size and not np.isfinite(zv.astype(np.float64)).all():
        logits.problems.append("NaN or Inf")
    elif zv is None and not logits.problems:
        logits.problems.append("could not be read")
    problems = ids.problems + logits.problems + labels.problems
    if id_v is not None and lab_v is not None and len(lab_v) != len(id_v):
        problems.append("labels has")
    if id_v is not None and lab_v is not None and len(lab_v) == len(id_v):
        for i in np.unique(id_v):
            if len(set(lab_v[id_v == i].tolist())) > 1:
                problems.append("different labels")

    rec = Recorder(N, K, keep_probs=1)
    event(f"refused: {problems[0]}" if problems else ("recorded" if B else "recorded (empty batch)"))
    if problems:
        with pytest.raises(ValueError) as err:
            rec.update(ids.obj, logits.obj, labels.obj)
        assert re.search("|".join(problems), str(err.value)), (problems, str(err.value))
        assert not rec.epoch_in_progress and (rec.labels == -1).all()
        return
    rec.update(ids.obj, logits.obj, labels.obj)
    rec.end_epoch()
    d = rec.dynamics()
    assert id_v is not None and lab_v is not None and zv is not None
    zf = zv.astype(np.float64)
    q = reference(zf, lab_v)
    seen = np.zeros(N, bool)
    seen[id_v] = True
    np.testing.assert_array_equal(d.n_seen, seen.astype(int))
    np.testing.assert_array_equal(d.labels[seen], [lab_v[id_v == i][0] for i in np.flatnonzero(seen)])
    for f, name in enumerate(FIELDS):
        want = np.full(N, np.nan)
        for i in np.flatnonzero(seen):
            want[i] = np.float32(np.clip(q[f, id_v == i].mean(), -F32_MAX, F32_MAX))
        got = d.at(name, 0)
        assert np.isfinite(got[seen]).all(), name
        # atol: a per-sample mean of O(1) terms that cancel (+H and -H of near-uniform rows) keeps
        # only float64 rounding of log K (~1e-16), which no relative tolerance can absorb
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-12, equal_nan=True, err_msg=name)
    with np.errstate(under="ignore"):
        p = np.exp(log_softmax(zf, axis=1))
    want_p = np.full((N, K), np.nan)
    for i in np.flatnonzero(seen):
        want_p[i] = p[id_v == i].mean(axis=0).astype(np.float32)
    np.testing.assert_allclose(d.posterior(), want_p, rtol=2e-6, atol=1e-30, equal_nan=True)
