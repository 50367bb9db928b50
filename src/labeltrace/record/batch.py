"""One batch handed to :meth:`Recorder.update`: strict conversion of ids, logits and labels, and
the recorded quantities, computed in float64 on the host.

Inputs may be torch tensors (any device, any real dtype, with or without a graph), numpy arrays
or (nested) lists. Anything that cannot be recorded exactly raises ``ValueError`` naming the
problem — never another exception type, never a silently altered value:

* ids and labels: 1-D integers (or integral floats); bool, complex, fractional, NaN/Inf or
  out-of-range values are refused, and the range is checked *before* any cast, so a ``uint64``
  id of 2**64 − 1 is reported as such, not as a wrapped negative number; floats of a dtype that
  cannot hold every integer below the bound exactly (float16 ids of more than 2048 samples:
  2049 reads as 2048) are refused whatever their values;
* logits: a real ``(B, K)`` array (integer or floating, float16/bfloat16 included); bool,
  complex, string or object input that is not numeric is refused. Values are widened to float64
  (exact for every accepted dtype except integers beyond 2**53) and must be finite *after* that
  conversion.

The recorded quantities, per sample and epoch, from the softmax p of the logits:

* ``entropy``        Shannon entropy H(p) in nats;
* ``signed_entropy`` +H(p) if the given label's logit is >= every other (margin >= 0, as the SEI
                     paper's code: an exact tie agrees), else −H(p);
* ``correct``        1.0 if the given label's logit is >= every other (argmax, an exact tie counted as
                     agreement, as for the sign above) else 0.0;
* ``margin``         given-label logit minus the largest other logit (AUM's margin);
* ``p_given``        softmax probability of the given label;
* ``loss``           cross-entropy −log p_given.

They are computed in float64 from the row-max-shifted logits, so any finite
logits give finite values: entropy, p_given and correct are exact to float64 rounding;
``margin`` and ``loss`` can exceed the float32 range of the stored per-epoch arrays (logits
near ±3.4e38, or float64 logits beyond it) and are saturated at ±``FLOAT32_MAX``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from labeltrace._checks import describe_ids, id_list, is_tensor, to_numpy

__all__ = ["FIELDS", "FLOAT32_MAX", "as_index_array", "as_logits", "batch_quantities", "to_numpy"]

FIELDS: tuple[str, ...] = ("entropy", "signed_entropy", "correct", "margin", "p_given", "loss")
FLOAT32_MAX = float(np.finfo(np.float32).max)
_TINY32 = float(np.finfo(np.float32).smallest_subnormal)


def as_index_array(x: Any, name: str, upper: int, ids: np.ndarray | None = None) -> np.ndarray:
    """1-D int64 array of integers in ``[0, upper)``.

    ``ids`` (the batch's sample ids, once known) names the offending samples in the error of an
    out-of-range *label*; without it the offending values themselves are listed.
    """
    # a bfloat16 tensor is widened to float32 by to_numpy; its own 7-bit mantissa bounds what it held
    bf16 = is_tensor(x) and str(x.dtype) == "torch.bfloat16"
    a = to_numpy(x, name)
    if a.ndim != 1:
        hot = (f": one-hot or soft labels over the {upper} classes? pass the class ids, labels.argmax(1)"
               if name == "labels" and a.ndim == 2 and a.shape[1] == upper else "")  # fmt: skip
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}{hot}")
    kind = a.dtype.kind
    if kind not in "iuf":
        raise ValueError(f"{name} must be integers, got dtype {a.dtype}")
    exact = 2 ** ((7 if bf16 else np.finfo(a.dtype).nmant) + 1) if kind == "f" else 0
    if kind == "f" and upper > exact:
        raise ValueError(
            f"{name} must be integers, got dtype {'bfloat16' if bf16 else a.dtype}, which cannot tell apart every "
            f"value below {upper} (its integers are exact only up to {exact}); pass integer {name}"
        )
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    if kind == "f":
        with np.errstate(invalid="ignore"):
            nonint = ~np.isfinite(a) | (a != np.round(a))
        if nonint.any():
            fin = np.isfinite(a[nonint])
            what = "fractional values" if fin.all() else "NaN or Inf" if not fin.any() else "fractional values, NaN or Inf"
            where = describe_ids(ids[nonint]) if ids is not None and len(ids) == len(a) else f"positions {id_list(nonint)}"
            raise ValueError(f"{name} must be integers, got dtype {a.dtype} with {what} at {where} "
                             f"({name} {a[nonint][:10].tolist()})")  # fmt: skip
    # exact in a float dtype too: every integer up to ``upper`` is one of its values (checked above)
    bad = (a < 0) | (a >= upper)
    if bad.any():
        vals = id_list([int(v) for v in a[bad][:11]])
        if ids is None or len(ids) != len(a):
            raise ValueError(f"sample {name} out of range [0, {upper}): {vals}")
        raise ValueError(f"{name} out of range [0, {upper}) for {describe_ids(ids[bad])} ({name} {vals})")
    return a.astype(np.int64)


def as_logits(x: Any, batch: int, num_classes: int, ids: np.ndarray, *, finite: bool = True) -> np.ndarray:
    """(B, K) float64 logits, finite after conversion (``finite=False``: rows of NaN or Inf pass,
    for the caller to leave out); ``ids`` name the bad rows in errors."""
    try:
        a = to_numpy(x, "logits")
    except ValueError as e:
        hint = _outputs_hint(x)
        raise ValueError(f"{e}{f' (got {hint})' if hint else ''}") from None
    if a.ndim != 2 or a.shape[0] != batch or a.shape[1] != num_classes:
        hint = _outputs_hint(x)
        binary = ""
        if num_classes == 2 and a.shape in ((batch,), (batch, 1)):
            binary = ("; a binary model with one logit z (BCEWithLogitsLoss) gives the two-class logits "
                      "torch.cat([torch.zeros_like(z), z], 1) (z of shape (batch, 1)), whose softmax is [1 - sigmoid(z), "
                      "sigmoid(z)]")  # fmt: skip
        raise ValueError(f"logits must have shape (batch={batch}, num_classes={num_classes}), got {tuple(a.shape)}"
                         f"{f' from {hint}' if hint else ''}{binary}")  # fmt: skip
    kind = a.dtype.kind
    if kind == "c":
        raise ValueError(f"logits must be real, got complex dtype {a.dtype}")
    if kind == "b":
        raise ValueError("logits must be numbers, got dtype bool")
    if kind == "O":
        a = _object_logits(a, ids)
    elif kind not in "iuf":
        raise ValueError(f"logits must be numbers, got dtype {a.dtype}")
    z = a.astype(np.float64)
    if finite and not (ok := np.isfinite(z).all(axis=1)).all():
        raise ValueError(f"NaN or Inf logits for {describe_ids(ids[~ok])}")
    return z


#: the warning of :func:`looks_like_probabilities` (once per recorder)
PROBABILITIES_AS_LOGITS = (
    "the logits of this batch are probabilities (every row in [0, 1], summing to 1): a model ending in softmax? "
    "Their softmax is squashed towards uniform, so every recorded probability is too low (the ranking suffers "
    "less); pass the scores before the softmax, or log-probabilities (log_softmax)"
)


def looks_like_probabilities(z: np.ndarray) -> bool:
    """Whether the (B, K) logits ``z`` are probabilities: every row in [0, 1] and summing to 1, not
    all one-hot (a softmax is never exactly 0 and 1 everywhere; test data's one-hot logits are)."""
    return bool(z.size and z.min() >= 0 and z.max() <= 1 and np.allclose(z.sum(axis=1), 1, atol=1e-4)
                and not ((z == 0) | (z == 1)).all())  # fmt: skip


def _outputs_hint(x: Any) -> str:
    """For a model's whole output passed as logits (a tuple, a dict, an output object): what to pass."""
    if isinstance(x, np.ndarray) or is_tensor(x):
        return ""
    if isinstance(x, list | tuple) and not any(isinstance(v, Mapping) or getattr(v, "ndim", 0) >= 2 for v in x):
        return ""  # nested numbers
    return (f"a {type(x).__name__}: pass the logits tensor itself (e.g. outputs.logits, or outputs[0] of a "
            "model that returns a tuple)")  # fmt: skip


def _object_logits(a: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """An object array (e.g. Python ints beyond int64) as float64, naming rows that are not real numbers."""
    out = np.empty(a.shape, dtype=np.float64)
    bad = np.zeros(a.shape[0], dtype=bool)
    for i, row in enumerate(a):  # object input only: not a hot path
        try:
            if any(isinstance(v, bool | complex | np.bool_ | np.complexfloating) for v in row):
                raise TypeError
            out[i] = [float(v) for v in row]
        except (TypeError, ValueError, OverflowError):
            bad[i] = True
    if bad.any():
        raise ValueError(f"logits are not real numbers representable in float64 for {describe_ids(ids[bad])}")
    return out


def batch_quantities(z: np.ndarray, labels: np.ndarray, want_probs: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Recorded quantities ``(F, B)`` float64 and, if asked, the softmax ``(B, K)`` float64.

    ``z`` must be finite float64 ``(B, K)``; every output is finite. ``correct`` and the sign
    of ``signed_entropy`` follow the SEI paper's code: agreement when the given label's logit is >=
    every other (margin >= 0; an exact tie agrees, whatever the order of the classes).
    """
    with np.errstate(over="ignore"):  # differences of logits beyond ±8.9e307 overflow: handled
        return _quantities(z, labels, want_probs)


def _quantities(z: np.ndarray, labels: np.ndarray, want_probs: bool) -> tuple[np.ndarray, np.ndarray | None]:
    B = z.shape[0]
    rows = np.arange(B)
    m = z.max(axis=1)
    zs = z - m[:, None]  # <= 0; -inf only for float64 logits spanning more than ~1.8e308
    e = np.exp(zs)
    s = e.sum(axis=1)  # >= 1: the maximum contributes exp(0)
    logp = zs - np.log(s)[:, None]
    p = e / s[:, None]
    plogp = np.zeros_like(p)
    np.multiply(p, logp, out=plogp, where=p > 0)  # 0 · log 0 := 0
    entropy = np.maximum(-plogp.sum(axis=1), 0.0)
    z_given = z[rows, labels]
    other = z.copy()
    other[rows, labels] = -np.inf
    margin = z_given - other.max(axis=1)
    # the SEI paper's official code: agreement is margin >= 0, so an exact tie with another class counts
    # as agreement (+H); `correct` follows the same rule, so that it (and the forgetting events and the
    # agreement counts read from it) does not depend on the order of the classes on a tie
    agrees = z_given >= other.max(axis=1)
    correct = agrees.astype(np.float64)
    # a disagreeing sample's entropy can underflow (about 1e-46 at a logit gap of 110; exactly 0 past
    # ~746): it keeps at least float32's smallest subnormal, so the stored (float32) sign survives
    signed = np.where(agrees, entropy, -np.maximum(entropy, _TINY32))
    logp_given = logp[rows, labels]
    q = np.stack([entropy, signed, correct, margin, p[rows, labels], -logp_given])
    # margin and loss can leave the float32 range of the stored arrays (or even float64's):
    # saturate them so that sums of repeated updates stay finite.
    np.clip(q, -FLOAT32_MAX, FLOAT32_MAX, out=q)
    return q, (p if want_probs else None)
