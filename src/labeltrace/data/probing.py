"""What the validation pass learns from decoding every image: its shape, or why it cannot be read,
and the bits its file stores — so that a set mixing 8-bit and 16-bit files is named."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from labeltrace._checks import listing
from labeltrace.data.errors import DataError, DataWarning
from labeltrace.data.sources import ImageSource

__all__ = ["Probed", "Seen", "mixed_depths", "probe", "see_through", "stacks"]


#: a 16-bit file whose brightest pixel is at most this share of the range holds, say, 12-bit data
#: (at most 6 %) or 14-bit data (at most 25 %): beside 8-bit files it reaches the model far darker
#: than they do (a fourth as bright was not warned of at 1/8)
DIM = 1 / 2
#: the file types that may store 16 bits per sample (PNG, TIFF, PGM / PPM): the others' headers are not read
DEEP = (".png", ".tif", ".tiff", ".pgm", ".ppm")


class Seen(NamedTuple):
    """What :func:`probe` saw of a readable image."""

    shape: tuple[int, int, int]
    bits: int  # bits per sample its file stores (8 unless its header was read: see probe)
    peak: float  # its largest value as decoded, in [0, 1]
    frames: int  # a TIFF's frames (1 otherwise)
    see_through: bool  # pixels less than opaque, composited on black


Probed = Seen | str


def probe(source: ImageSource, i: int) -> Probed:
    """Decode image ``i`` fully: its shape, the bits per sample its file stores — read (from the
    header, :func:`~labeltrace.data.decode.stored_bits`) only for an image whose brightest pixel is
    at most :data:`DIM` of the range, else 8 —, its largest value as decoded (in [0, 1]) and, for a
    TIFF, its number of frames (1 otherwise); or the reason it cannot be read. (Reading every header
    cost 27 % of the validation pass.)"""
    try:
        img = source.load(i)
    except DataError as exc:
        msg = str(exc)
        p = source.path(i)
        return msg.removeprefix(f"{p}: ") if p is not None else msg
    peak = float(img.max()) if img.size else 0.0
    p = source.path(i)
    from labeltrace.data.decode import (  # what decoding it here saw
        last_frames,
        last_see_through,
        stored_bits,
    )

    frames = last_frames() if p is not None and p.suffix.lower() in (".tif", ".tiff") else 1
    clear = p is not None and last_see_through()
    if peak > DIM or p is None or p.suffix.lower() not in DEEP:  # arrays, JPEG, DICOM, ...: 8
        return Seen(img.shape, 8, peak, frames, clear)  # type: ignore[arg-type]
    return Seen(img.shape, stored_bits(p), peak, frames, clear)  # type: ignore[arg-type]


def _read_where(probed: Sequence[Probed], pick: Callable[[Seen], bool]) -> tuple[list[tuple[int, Seen]], int]:
    """The images read, ``(index, what was seen)``, that ``pick`` holds of, and how many were read."""
    read = [(k, r) for k, r in enumerate(probed) if isinstance(r, Seen)]
    return [(k, r) for k, r in read if pick(r)], len(read)


def see_through(probed: Sequence[Probed], sources: Sequence[str], where: str) -> None:
    """Warn of image files with pixels less than opaque (an alpha channel, a PNG's transparent
    colour): composited on black as documented, their see-through pixels reach the model dark — an
    X-ray saved with its white as the transparent colour read its brightest pixels black, unsaid."""
    clear, read = _read_where(probed, lambda r: r.see_through)
    if clear:
        warnings.warn(f"{len(clear)} of {read} images{where} have pixels less than opaque (an alpha channel or a "
                      "transparent colour), composited on black: they reach the model dark there — save them "
                      f"without transparency if that is not meant: {listing(sources[k] for k, _ in clear)}",
                      DataWarning, stacklevel=3)  # fmt: skip


def stacks(probed: Sequence[Probed], sources: Sequence[str], where: str) -> None:
    """Warn of TIFF stacks: each is read at its first frame (a volume's first slice, a series' first
    image), which nothing else said."""
    many, read = _read_where(probed, lambda r: r.frames > 1)
    if many:
        warnings.warn(f"{len(many)} of {read} images{where} are TIFF files of several frames (stacks: a "
                      "volume's slices, a series), each read at its first frame alone: "
                      + listing(f"{sources[k]} ({r.frames} frames)" for k, r in many)
                      + "; save the frame meant for each sample as its own image to scan it", DataWarning,
                      stacklevel=3)  # fmt: skip


def mixed_depths(probed: Sequence[Probed], sources: Sequence[str],
                 where: str, path: Callable[[int], Path | None] = lambda i: None) -> None:  # fmt: skip
    """Warn when dim 16-bit image files (:data:`DIM`) sit beside other files: 16-bit values are
    divided by 65535, 8-bit ones by 255, so 12-bit X-ray data in a 16-bit file reaches the model at a
    sixteenth of the brightness of the same picture saved in 8 bits (a review's set of two kinds of
    file: the model answered the common class for every image, and flagged every 16-bit image of
    the other). A set of dim 16-bit files alone is read alike: warned of only when it is as dim as
    12-bit data (a pretrained backbone sees it near black)."""
    ok, _ = _read_where(probed, lambda r: True)
    sixteen = [(k, r.peak) for k, r in ok if r.bits == 16]
    if not sixteen:
        return
    if len(sixteen) < len(ok):  # the bright files' depth, read now (probe read the dim ones' alone):
        from labeltrace.data.decode import stored_bits

        # 16-bit files of a normal range are no 8-bit others; the first 8-bit one ends the reading
        bright = [(k, r.peak) for k, r in ok if r.bits != 16]
        if all((f := path(k)) is not None and f.suffix.lower() in DEEP and stored_bits(f) == 16 for k, _ in bright):
            sixteen += bright  # every file 16-bit: one scale for all
    peak = float(np.median([m for _, m in sixteen]))
    if len(sixteen) == len(ok):  # one scale for every image: the small CNN standardises its inputs, a
        if peak <= DIM / 4:  # pretrained backbone does not (12-bit X-rays: F1 0.83 -> 0.72, an audit's digits)
            warnings.warn(
                f"every image{where} is a 16-bit file, as dim as 12-bit data (the brightest pixel at {peak:.0%} "
                "of the range, median): they are read divided by 65535, alike — "
                "the small CNN standardises them, but a pretrained backbone (effnet-lite*, which --model auto "
                "picks for images over 64 px) sees them near black: scale them to the full 16-bit range (12-bit "
                "data: x 16) before such a scan", DataWarning, stacklevel=3)  # fmt: skip
        return
    warnings.warn(
        f"{len(sixteen)} of {len(ok)} images{where} are 16-bit files whose brightest pixel is at most "
        f"{DIM:.0%} of their range ({peak:.0%}, median: 12-bit data in a 16-bit file reads at most 6 %, 14-bit "
        "25 %), the others "
        "8-bit or brighter (two scanners or exports?): 16-bit values are divided by 65535 and 8-bit ones by 255, "
        "so one picture reaches the model at another brightness by its file type: convert them to one depth, "
        f"scaled alike, before the scan. 16-bit: {listing(sources[k] for k, _ in sixteen)}", DataWarning,
        stacklevel=3,
    )  # fmt: skip
