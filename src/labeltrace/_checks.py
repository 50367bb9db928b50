"""Input checks shared by the array modules, the one helper that lists ids and items in error
messages (``sample ids [3, 7] (and 5 more)``), and :func:`round_half_up`, the rounding of the
counts the noise models, cutoffs and count rules derive from a rate (``count.cl_rate_count``
still rounds as Python does: a rate × N on an exact half practically never occurs)."""

from __future__ import annotations

import operator
import sys

import numpy as np

__all__ = [
    "check_finite_float",
    "check_probability_rows",
    "check_int",
    "check_labels",
    "check_mask",
    "check_num_classes",
    "check_scores",
    "check_seeds",
    "counted",
    "describe_ids",
    "group_codes",
    "id_list",
    "is_tensor",
    "listing",
    "reject_nan",
    "round_half_up",
    "samples_named",
    "seeded",
    "to_numpy",
    "utf8_text",
]

from collections.abc import Iterable
from typing import Any


def listing(items: Iterable[object], limit: int = 10) -> str:
    """``"a, b, c (and 5 more)"``: the first ``limit`` items of an error message's list."""
    texts = [str(x) for x in items]
    more = f" (and {len(texts) - limit} more)" if len(texts) > limit else ""
    return ", ".join(texts[:limit]) + more


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 epoch"`` / ``"1,797 images"``: a count and its noun, singular for one (``plural``: the
    noun's plural when not ``noun + "s"``)."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def id_list(ids: Any, limit: int = 10) -> str:
    """``"[3, 7] (and 5 more)"`` for integer ids or a boolean mask (its true positions)."""
    arr = np.asarray(ids)
    arr = np.flatnonzero(arr) if arr.dtype == bool else arr.ravel()
    shown = ", ".join(str(int(i)) for i in arr[:limit])
    more = f" (and {arr.size - limit} more)" if arr.size > limit else ""
    return f"[{shown}]{more}"


def samples_named(ids: Iterable[int], limit: int = 10) -> str:
    """``"sample 3"`` / ``"samples 2, 5, 9 (and 4 more)"``: sample ids in a message, sorted, once each."""
    unique = sorted(set(ids))
    return f"sample{'s' if len(unique) != 1 else ''} {listing(map(str, unique), limit)}"


def describe_ids(ids: Any, limit: int = 10) -> str:
    """``"sample ids [3, 7] (and 5 more)"`` for integer ids or a boolean mask."""
    return f"sample ids {id_list(ids, limit)}"


def check_int(name: str, value: Any, low: int, high: int | None = None, *, hint: str = "") -> int:
    """``value`` as an int in ``[low, high]``: a Python or numpy integer (or a 0-d integer array or
    tensor), not a bool, not a float (2.7 or 10.0 are refused, not truncated); the error names
    ``name``, the range and ``value``."""
    upper = "" if high is None else f" and <= {high}"
    boolean = isinstance(value, bool | np.bool_) or str(getattr(value, "dtype", "")) in ("bool", "torch.bool")
    if not boolean and not isinstance(value, int | np.integer):
        try:
            value = operator.index(value)  # a 0-d integer array or tensor; a float raises
        except TypeError:
            boolean = True
    if boolean:
        raise ValueError(f"{name} must be an int >= {low}{upper}, got {value!r} ({type(value).__name__}){hint}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be an int >= {low}{upper}, got {value}{hint}")
    return int(value)


def seeded(seed: Any, name: str = "seed") -> np.random.Generator:
    """``np.random.default_rng(seed)`` for a seed as :func:`check_int` reads it, an int >= 0 (-1 or 1.5
    refused naming ``name``, not numpy's "expected non-negative integer" or SeedSequence's
    TypeError); a ``np.random.Generator`` is used as it is."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(check_int(name, seed, 0))


def check_seeds(seeds: Any, name: str = "seeds") -> list[int]:
    """``seeds`` as a list of distinct ints >= 0, each read as :func:`check_int` reads it (not a bool,
    not 1.7: refused, not truncated), or ``ValueError`` naming ``name`` — before any seed is used
    (a bad one last in the list failed only after the others had run)."""
    items = None if isinstance(seeds, str | bytes) or not isinstance(seeds, Iterable) else list(seeds)
    ok, ints = bool(items), []
    try:
        ints = [check_int(name, s, 0) for s in items or ()]
    except ValueError:
        ok = False
    if not ok or len(set(ints)) != len(ints):
        raise ValueError(f"{name} must be distinct whole numbers >= 0 (a non-empty list), got "
                         f"{seeds if items is None else items!r}")  # fmt: skip
    return ints


def real_numbers(dtype: Any, *, booleans: bool = True) -> bool:
    """Whether ``dtype`` holds real numbers: integers or floats (booleans when ``booleans``), not
    complex ones — a complex array cast to float drops its imaginary part with only a warning."""
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return booleans
    return bool(np.issubdtype(dt, np.number) and not np.issubdtype(dt, np.complexfloating))


def check_num_classes(num_classes: int) -> int:
    """An int >= 2."""
    return check_int("num_classes", num_classes, 2)


def check_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """1-D integer labels in ``[0, num_classes)``, returned as a new int64 array (a tensor read as
    :func:`to_numpy` reads it)."""
    arr = to_numpy(labels, "labels")
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {arr.shape}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must have an integer dtype, got {arr.dtype}")
    bad = (arr < 0) | (arr >= num_classes)
    if bad.any():
        raise ValueError(
            f"labels must lie in [0, {num_classes}); {int(bad.sum())} do not: {describe_ids(bad)}"
            f" have labels {arr[bad][:10].tolist()}"
        )
    return arr.astype(np.int64, copy=True)


def is_tensor(x: Any) -> bool:
    """Whether ``x`` is a torch tensor, without importing torch: not imported, or still importing in
    another thread (a review server's head refit: its module has no ``Tensor`` yet), x cannot be one."""
    tensor = getattr(sys.modules.get("torch"), "Tensor", None)
    return isinstance(tensor, type) and isinstance(x, tensor)


def to_numpy(x: Any, name: str) -> np.ndarray:
    """A numpy array of ``x`` (torch tensors copied to the host; bfloat16 widened exactly)."""
    if is_tensor(x):
        torch = sys.modules["torch"]
        if x.device.type == "meta":
            raise ValueError(f"{name} is a tensor on the meta device, which holds no values")
        if x.is_complex():
            raise ValueError(f"{name} must be real, got complex dtype {x.dtype}")
        try:
            t = x.detach()
            if t.layout != torch.strided:
                t = t.to_dense()
            t = t.cpu()
            if t.dtype == torch.bfloat16:
                t = t.to(torch.float32)  # exact; numpy has no bfloat16
            return t.resolve_conj().resolve_neg().numpy()
        except (RuntimeError, TypeError, NotImplementedError) as e:
            raise ValueError(f"{name} could not be read from a {x.dtype} tensor on {x.device}: {e}") from None
    try:
        return np.asarray(x)
    except (ValueError, TypeError, OverflowError) as e:
        raise ValueError(f"{name} could not be read as an array: {e}") from None


def check_mask(mask: np.ndarray, n: int, name: str) -> np.ndarray:
    """A boolean array of shape ``(n,)`` (a torch tensor read as :func:`to_numpy` reads it)."""
    arr = to_numpy(mask, name)
    if arr.dtype != bool:
        raise ValueError(f"{name} must be a boolean array, got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    return arr


def check_scores(scores: np.ndarray, name: str = "scores", *, n: int | None = None) -> np.ndarray:
    """1-D numeric (not boolean) scores, of length ``n`` when given, as float64 (NaN allowed); a
    torch tensor (on any device, with a gradient) read as :func:`to_numpy` reads it."""
    s = to_numpy(scores, name)
    if s.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {s.shape}")
    if n is not None and s.shape[0] != n:
        raise ValueError(f"{name} has {s.shape[0]} entries, expected {n}")
    if not real_numbers(s.dtype, booleans=False):
        raise ValueError(f"{name} must be real numbers, got dtype {s.dtype}")
    return s.astype(np.float64, copy=False)


def reject_nan(s: np.ndarray, name: str) -> None:
    """Raise naming the sample ids where ``s`` is NaN."""
    nan = np.isnan(s)
    if nan.any():
        raise ValueError(f"{name} contain {int(nan.sum())} NaN values at {describe_ids(nan)}")


#: An entry above 1 + this is refused (cleanlab's bound); a row may miss a sum of 1 by this much.
PROB_ENTRY_TOL = 1e-6
PROB_ROW_SUM_TOL = 1e-3


#: bfloat16 keeps 8 significant bits: its softmax rows miss 1 by up to about 2**-8 (K = 1000)
BFLOAT16_ROW_SUM_TOL = 2.0**-7


def check_probability_rows(p: np.ndarray, name: str, *, given: Any = None) -> None:
    """Refuse, naming the sample ids, an ``(N, K)`` matrix of finite non-negative entries (checked by
    the caller) with an entry above 1 (+1e-6) or a row not summing to 1 (within 1e-3, in float64;
    within 2**-7 where ``given``, the caller's input, is bfloat16, whose rounding alone misses 1e-3):
    the one check of a probability matrix, for the scores' ``probs`` and the relabel posterior."""
    bad = (p > 1.0 + PROB_ENTRY_TOL).any(axis=1)
    if bad.any():
        raise ValueError(f"{name} has entries above 1 in {describe_ids(bad)}")
    low = str(getattr(given, "dtype", "")).removeprefix("torch.") == "bfloat16"
    tol = BFLOAT16_ROW_SUM_TOL if low else PROB_ROW_SUM_TOL
    bad = np.abs(p.sum(axis=1, dtype=np.float64) - 1.0) > tol
    if bad.any():
        raise ValueError(f"{name} rows must sum to 1 (tolerance {tol}{' for bfloat16' if low else ''}); "
                         f"{describe_ids(bad)} do not")


def finite_or_none(v: Any) -> float | None:
    """``float(v)`` when it is a finite number, else None (JSON has no NaN; a CSV cell may be text)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def check_finite_float(x: float, name: str) -> float:
    """``float(x)``, refusing what is not a number (a bool or a string included) or not finite."""
    if isinstance(x, bool | np.bool_ | str | bytes):  # float(True) is 1.0, float("1") 1.0: not meant as numbers
        raise ValueError(f"{name} must be a float, got {x!r}")
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a float, got {x!r}") from None
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return v


def round_half_up(x: float) -> int:
    """``floor(x + 0.5)``: a count such as ``rate × N`` rounded with halves up (Python's ``round``
    sends them to the even neighbour, so 12.5 → 12 but 7.5 → 8)."""
    return int(np.floor(x + 0.5))


def group_codes(groups: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(keys, codes)`` of per-sample group keys (a patient, a study): the keys as text (``1`` and
    ``"1"`` are one group) and ``(N,)`` int codes ``0..G-1`` in sorted key order — one reading for
    the folds that keep a group together and the neighbours found outside it."""
    keys = np.asarray(groups).astype(str)
    _, codes = np.unique(keys, return_inverse=True)
    return keys, codes.reshape(keys.shape)


def utf8_text(text: str) -> bool:
    """Whether ``text`` is UTF-8 text: a name in another encoding, as Python reads it from the command
    line or the file system (a lone surrogate), is not (the tables, written with pyarrow, hold UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
