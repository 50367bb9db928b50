"""The checks every adapter shares: labels (names or integer ids) to class ids, missing values,
files inside the allowed roots, and the last step that decodes or stats every image, skips or
refuses bad ones and builds the :class:`ImageDataset`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from labeltrace._checks import listing, utf8_text
from labeltrace.data.base import ImageDataset, _duplicates
from labeltrace.data.errors import DataError
from labeltrace.data.probing import mixed_depths, probe, see_through, stacks
from labeltrace.data.sources import ImageSource, parallel_map
from labeltrace.data.spellings import check_spellings, name_key, number_key

__all__ = [
    "MISSING_VALUES",
    "check_class_counts",
    "distinct_files",
    "finalize",
    "id_texts",
    "inside_roots",
    "is_empty",
    "is_missing",
    "marker_set",
    "name_key",
    "number_key",
    "parse_labels",
    "resolve_roots",
]

OnBadImage = Literal["fail", "skip"]
#: an integer label written the one canonical way (ASCII digits, no sign, no leading zero): "01", "+1",
#: "-0" or "١" are class *names*, so that they are never silently merged with "1" or "0"
_INT_RE = re.compile(r"^(0|-?[1-9][0-9]*)$", re.ASCII)


def finalize(
    *, classes: Sequence[str], labels: np.ndarray, sources: Sequence[str], ids: Sequence[str],
    source: ImageSource, root: Path | None, on_bad_image: str, verify: bool,
    workers: int | None, shapes: np.ndarray | None = None, where: str = "",
    allowed_roots: tuple[Path, ...] = (), groups: Sequence[str] | None = None,
) -> ImageDataset:
    """Check images (decode all, or existence only), skip or fail on bad ones, build and check."""
    if on_bad_image not in ("fail", "skip"):
        raise ValueError(f"on_bad_image must be 'fail' or 'skip'; got {on_bad_image!r}")
    n = len(labels)
    if n == 0:
        raise DataError(f"the dataset is empty{where}")
    if len(ids) != n or len(sources) != n:
        raise DataError(f"{len(ids)} ids and {len(sources)} images for {n} labels{where}")
    unwritable = [k for k, v in enumerate(ids) if not utf8_text(str(v))]
    if unwritable:  # a file name that is not UTF-8: the run's tables could not hold its id
        raise DataError(
            f"ids that are not valid UTF-8 text{where} (a file or folder name in another encoding?): "
            + listing(ascii(str(ids[k])) for k in unwritable) + "; rename them to UTF-8 (e.g. `convmv -f latin1 -t "
            "utf-8 -r --notest DIR`): the run's tables, and a manifest, hold UTF-8 text only"
        )
    dup = _duplicates([str(v) for v in ids])
    if dup:
        raise DataError(
            "duplicate ids: "
            + listing(f"{v!r} ({listing(sources[k] for k in ks)})" for v, ks in dup.items())
        )
    reasons: list[str | None] = [None] * n
    if shapes is None and verify:
        probed = parallel_map(lambda i: probe(source, i), range(n), workers)
        reasons = [r if isinstance(r, str) else None for r in probed]
        shapes = np.array([(0, 0, 0) if isinstance(r, str) else r.shape for r in probed],
                          dtype=np.int64).reshape(n, 3)
        mixed_depths(probed, sources, where, source.path)
        stacks(probed, sources, where)
        see_through(probed, sources, where)
    elif shapes is None:
        reasons = [
            None if (p := source.path(i)) is None or p.is_file() else "file not found"
            for i in range(n)
        ]
    bad = [i for i in range(n) if reasons[i] is not None]
    if bad and on_bad_image == "fail":
        raise DataError(
            f"{len(bad)} of {n} images cannot be read{where}: "
            + listing(f"{sources[i]} ({reasons[i]})" for i in bad)
            + "; pass --on-bad-image skip (in Python: on_bad_image='skip') to leave them out"
        )
    skipped = tuple((str(sources[i]), str(reasons[i])) for i in bad)
    if len(bad) == n:
        raise DataError(f"the dataset is empty{where}: all {n} images were skipped as unreadable")
    keep = np.array([r is None for r in reasons])
    idx = np.flatnonzero(keep)
    ds = ImageDataset(
        classes=tuple(classes),
        labels=np.asarray(labels, dtype=np.int64)[idx],
        sources=tuple(str(sources[i]) for i in idx.tolist()),
        ids=tuple(str(ids[i]) for i in idx.tolist()),
        source=source.take(idx) if bad else source,
        root=root,
        skipped=skipped,
        shapes=None if shapes is None else shapes[idx],
        allowed_roots=allowed_roots,
        groups=None if groups is None else tuple(str(groups[i]) for i in idx.tolist()),
    )
    try:
        check_class_counts(ds)
    except DataError as exc:  # a class the skipping emptied: the files skipped, and why, are the cause
        if not skipped:
            raise
        raise DataError(f"{exc}; --on-bad-image skip left out {len(skipped)} unreadable "
                        f"image{'s' if len(skipped) != 1 else ''}: "
                        + listing(f"{src} ({why})" for src, why in skipped)) from None
    return ds


def resolve_roots(root: Path, allow_roots: Sequence[str | Path]) -> tuple[Path, ...]:
    """``root`` and the explicitly allowed folders, resolved; each must be an existing folder."""
    if isinstance(allow_roots, (str, Path)):
        allow_roots = [allow_roots]
    roots = [root]
    for r in allow_roots:
        p = Path(r).expanduser().resolve()
        if not p.is_dir():
            raise DataError(f"allowed root {r} is not a folder")
        roots.append(p)
    return tuple(dict.fromkeys(roots))


def inside_roots(
    files: Sequence[Path], sources: Sequence[str], roots: tuple[Path, ...],
) -> tuple[Path, ...]:
    """Each file resolved once (symlinks followed); a DataError naming those outside ``roots``.

    The dataset then reads the resolved files, i.e. exactly the ones checked here.
    """
    resolved = tuple(Path(f).resolve() for f in files)
    outside = [k for k, f in enumerate(resolved) if not any(f.is_relative_to(r) for r in roots)]
    if gone := [k for k in outside if not resolved[k].exists()]:  # a broken link: no --allow-root reads it
        raise DataError(f"file not found: {listing(f'{sources[k]} -> {resolved[k]}' for k in gone)} (a broken "
                        "symlink, or a path to a file since moved)")  # fmt: skip
    if outside:
        n = len(outside)
        also = f" or the allowed roots {listing(roots[1:])}" if len(roots) > 1 else ""
        raise DataError(
            f"{n} file{'s lie' if n != 1 else ' lies'} outside the data root {roots[0]}{also} "
            "(through a symlink, '..' or an absolute path): "
            + listing(f"{sources[k]} -> {resolved[k]}" for k in outside)
            + "; to read them, allow their folder with allow_roots=[DIR] "
            "(labeltrace scan --allow-root DIR)"
        )
    return resolved


def distinct_files(resolved: Sequence[Path], sources: Sequence[str], where: str = "", *,
                   name: Any = None) -> None:  # fmt: skip
    """A DataError naming the samples that read one file (resolved: through a symlink, ``..`` or an
    absolute and a relative path): the same pixels would be two samples, possibly with two labels,
    and could sit in a training fold and the fold that holds it out. ``name(k)`` describes sample
    ``k`` in the message (default: its source)."""
    if len(set(map(str, resolved))) == len(resolved):
        return
    name = name or (lambda k: sources[k])
    dup = _duplicates([str(f) for f in resolved])
    raise DataError(
        f"the same image file is more than one sample{where}: "
        + listing(f"{f} ({listing(name(k) for k in ks)})" for f, ks in dup.items())
        + "; list every file once"
    )


def _as_int(v: Any) -> int | None:
    """``v`` as an int if it is an integer (or a canonically written integer string / integral
    float), else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return int(v)
    if isinstance(v, str) and _INT_RE.match(v.strip()):
        return int(v.strip())
    return None


def _check_scalars(raw: Sequence[Any], row_name: Any) -> None:
    """One class name or integer per row: lists (multi-label), dicts and bytes are refused."""
    bad = [k for k, v in enumerate(raw) if isinstance(v, (list, tuple, dict, set, bytes, bytearray, np.ndarray))]
    if bad:
        raise DataError(
            "labels must be one class name or integer per row (multi-label and binary values are not "
            "supported): " + listing(f"{row_name(k)} {raw[k]!r}" for k in bad)
        )


def parse_labels(
    values: Sequence[Any], classes: Sequence[str] | None, *, row_name: Any = None,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map raw labels (class names or integer ids) to ``(labels (N,), classes)``.

    With ``classes``: labels that are all class names map by name; otherwise integer labels
    index ``classes``. Without: integers give classes ``"0".."max"``, names give the sorted
    unique names. Missing labels (None, NaN, empty), unknown names, out-of-range or negative
    integers raise :class:`DataError` naming the rows (``row_name(k)`` describes row ``k``;
    default ``"row {k+1}"``), and so do integer labels that name another class than the one at
    their position when the class names are numbers (``classes`` ``("1", "0")`` and a label
    ``1``: class "1" or class "0"?).
    """
    row_name = row_name or (lambda k: f"row {k + 1}")
    empty = [k for k, v in enumerate(values) if is_empty(v)]
    if empty:
        raise DataError("missing labels (empty, None or NaN): " + listing(row_name(k) for k in empty))
    raw = [v.strip() if isinstance(v, str) else v for v in values]
    _check_scalars(raw, row_name)
    named = classes is not None and set(raw) <= {str(c) for c in classes}
    if not named:  # a class list that names "01" and "1" both makes them two classes, as given
        check_spellings(raw, row_name)
    ints = [_as_int(v) for v in raw]
    all_int = all(v is not None for v in ints)
    nums = cast(list[int], ints)  # read only where all_int
    if classes is not None:
        classes = tuple(str(c) for c in classes)
        index = {c: k for k, c in enumerate(classes)}
        if all(isinstance(v, str) and v in index for v in raw):
            return np.array([index[v] for v in raw], dtype=np.int64), classes
        if all_int:
            bad = [k for k, v in enumerate(nums) if not 0 <= v < len(classes)]
            spelled = [str(v) if isinstance(v, str) else str(i) for v, i in zip(raw, nums, strict=True)]
            clash = [k for k, (s, i) in enumerate(zip(spelled, nums, strict=True)) if index.get(s, i) != i]
            if clash and not bad:
                raise DataError(
                    "ambiguous labels: the class names are numbers, and each of these labels is the "
                    "name of one class and the position of another in the class list: " + listing(f"{row_name(k)} {raw[k]!r}" for k in clash)
                    + "; give every label as a class name, or every label as a position in the class list"
                )
        else:
            bad = [k for k, v in enumerate(raw) if not (isinstance(v, str) and v in index)]
        if bad:
            keys = {name_key(c): c for c in classes}  # a label that is a class written another way: said so
            twins = {raw[k]: keys[name_key(raw[k])] for k in bad
                     if isinstance(raw[k], str) and name_key(raw[k]) in keys}  # fmt: skip
            raise DataError(
                f"unknown labels (classes are {listing(repr(c) for c in classes)}): "
                + listing(f"{row_name(k)} {raw[k]!r}" for k in bad)
                + ("; " + listing(f"{ascii(v)} is the class {ascii(c)} written another way (another Unicode form, "
                                  "other spaces or a full-width letter)" for v, c in twins.items())
                   + ": write each class as the class list does" if twins else "")
            )
        return np.array(nums, dtype=np.int64), classes
    if all_int:
        neg = [k for k, v in enumerate(nums) if v < 0]
        if neg:
            raise DataError(
                "negative integer labels: " + listing(f"{row_name(k)} {raw[k]!r}" for k in neg)
            )
        k_max = max(nums) if nums else -1
        if k_max >= len(nums):  # positions 0..K-1 with K > N: a column of ids or codes, not classes
            top = sorted(range(len(nums)), key=lambda k: -nums[k])[:3]
            raise DataError(
                f"integer labels are class positions 0..K-1 unless a class list is given, so label {k_max} would "
                f"make {k_max + 1:,} classes for {len(nums):,} samples: "
                + listing(f"{row_name(k)} {raw[k]!r}" for k in top)
                + "; a column of ids? Give the labels as class names. Codes that name classes? Give them as text "
                "and list them, one per line, in a classes.txt beside the manifest (labeltrace scan --classes FILE, "
                "or classes=[...])"
            )
        if nums and min(nums) > 0:
            raise DataError(
                f"integer labels are class positions 0..K-1, and no label is 0 (they run from {min(nums)} to "
                f"{k_max}), while every class needs at least 2 samples: labels counted from 1? Subtract 1. A subset "
                "without class 0? Renumber its classes from 0. Codes that name classes (e.g. BI-RADS 2 and 5)? "
                "Give them as text (as a CSV manifest does) and list them, one per line, in a classes.txt beside "
                "the manifest (labeltrace scan --classes FILE, or classes=[...]): integer-typed labels are "
                "positions in that list, text labels its names"
            )
        unused = np.flatnonzero(np.bincount(nums, minlength=k_max + 1) == 0)
        if unused.size:  # codes such as 0, 1, 10: refused below as classes 2..9 "with fewer than 2 samples"
            raise DataError(
                f"classes with fewer than 2 samples: {listing(f'{str(k)!r} (0)' for k in unused.tolist())}: integer "
                f"labels are class positions 0..K-1, and these run from 0 to {k_max} with no label at those positions. "
                "Codes that name classes? Give them as text and list them, one per line, in a classes.txt beside the "
                "manifest (labeltrace scan --classes FILE, or classes=[...])"
            )
        return np.array(nums, dtype=np.int64), tuple(str(k) for k in range(k_max + 1))
    names = tuple(sorted({str(v) for v in raw}))
    index = {c: k for k, c in enumerate(names)}
    return np.array([index[str(v)] for v in raw], dtype=np.int64), names


#: Cell values a manifest's label and id columns read as missing, compared case-insensitively
#: after stripping whitespace: pandas' default NA strings (``pandas.read_csv``; pyarrow's CSV
#: reader uses the same list less ``None`` and ``<NA>``) and ``-``. Empty cells, nulls and float
#: NaN are missing too.
MISSING_VALUES: frozenset[str] = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null", "-",
})  # fmt: skip


def is_empty(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or (
        isinstance(v, float) and np.isnan(v))


def id_texts(values: Sequence[Any], n: int, where: str) -> list[str]:
    """User-given sample ids as text: one per sample (``n``), none missing (None, NaN or blank, which
    would become the id ``"None"`` or ``"nan"``); the errors name ``where`` and the rows."""
    values = list(values)
    if len(values) != n:
        raise DataError(f"{len(values)} ids{where} for {n} images: give one id per image")
    missing = [k for k, v in enumerate(values) if is_empty(v)]
    if missing:
        raise DataError(f"missing ids{where} (None, NaN or blank) at rows {listing(missing)}")
    return [str(v) for v in values]


def marker_set(values: Any = MISSING_VALUES) -> set[str]:
    """The missing-value markers ``values`` in the form :func:`is_missing` compares (stripped,
    lower case)."""
    return {str(m).strip().lower() for m in values}


def is_missing(v: Any, markers: set[str]) -> bool:
    """Empty, null, NaN, or (case-insensitively, stripped) one of ``markers``."""
    return is_empty(v) or (isinstance(v, str) and v.strip().lower() in markers)


def check_class_counts(ds: ImageDataset, *, min_count: int = 2) -> None:
    """Raise :class:`DataError` naming every class with fewer than ``min_count`` samples.

    A class with one sample (or none) has no peers to be compared with, so its labels cannot
    be checked; adapters call this on every dataset they build. A dataset whose samples all
    carry one class is refused first, in those words.
    """
    counts = ds.class_counts()
    present = np.flatnonzero(counts > 0)
    if present.size == 1:
        k = int(present[0])
        empty = np.flatnonzero(counts == 0)
        also = (f"; classes without samples: {listing(f'{ds.classes[j]!r} (0)' for j in empty)}"
                if empty.size else "")  # fmt: skip
        raise DataError(
            f"only one class found: {ds.classes[k]!r} ({counts[k]} sample{'s' if counts[k] != 1 else ''}); "
            f"a dataset needs at least two classes{also}"
        )
    small = np.flatnonzero(counts < min_count)
    if small.size:
        labels = np.asarray(ds.labels)

        def which(k: int) -> str:
            found = [ds.sources[i] for i in np.flatnonzero(labels == k)[:3]]
            return f"{ds.classes[k]!r} ({counts[k]}{': ' + ', '.join(found) if found else ''})"

        more = f" (and {small.size - 10} more)" if small.size > 10 else ""  # which() only for those shown
        raise DataError(
            f"classes with fewer than {min_count} samples: {', '.join(which(int(k)) for k in small[:10])}{more}; "
            f"a class needs "
            f"{min_count} samples to be compared with its peers: add some, merge it into another class, or leave "
            "it out (its files, or its name in the class list)"
        )
