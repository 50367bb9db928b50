"""What the validation pass learns from decoding every image: its shape, or why it cannot be read,
and the bits its file stores — so that a set mixing 8-bit and 16-bit files is named."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from labeltrace._checks import listing
from labeltrace.data.errors import DataError, DataWarning
from labeltrace.data.sources import ImageSource

__all__ = ["mixed_depths", "probe"]


def probe(source: ImageSource, i: int) -> tuple[tuple[int, int, int], int, float] | str:
    """Decode image ``i`` fully: its shape, the bits per sample its file stores (8 for arrays;
    :func:`~labeltrace.data.decode.stored_bits`) and its largest value as decoded (in [0, 1]), or
    the reason it cannot be read."""
    try:
        img = source.load(i)
    except DataError as exc:
        msg = str(exc)
        p = source.path(i)
        return msg.removeprefix(f"{p}: ") if p is not None else msg
    p = source.path(i)
    if p is None or p.suffix.lower() in (".jpg", ".jpeg", ".dcm", ".dicom"):  # arrays, JPEG, DICOM (scaled): 8
        return img.shape, 8, 1.0  # type: ignore[return-value]
    from labeltrace.data.decode import stored_bits

    return img.shape, stored_bits(p), float(img.max()) if img.size else 0.0  # type: ignore[return-value]


def mixed_depths(probed: Sequence[tuple[tuple[int, int, int], int, float] | str], sources: Sequence[str],
                  where: str) -> None:  # fmt: skip
    """Warn when 8-bit and 16-bit image files are mixed: 16-bit values are divided by 65535, 8-bit
    ones by 255, so 12-bit X-ray data in a 16-bit file reaches the model at a sixteenth of the
    brightness of the same picture saved in 8 bits (a review's set of two kinds of file: the model
    answered the common class for every image, and flagged every 16-bit image of the other)."""
    ok = [(k, r) for k, r in enumerate(probed) if not isinstance(r, str)]
    sixteen = [(k, r[2]) for k, r in ok if r[1] == 16]
    if not sixteen or len(sixteen) == len(ok):
        return
    peak = float(np.median([m for _, m in sixteen]))
    warnings.warn(
        f"{len(sixteen)} of {len(ok)} images{where} are 16-bit files, the others 8-bit (two scanners or exports?): "
        f"16-bit values are divided by 65535 and 8-bit ones by 255, so one picture reaches the model at another "
        f"brightness by its file type (the 16-bit ones' brightest pixel is at {peak:.0%} of their range, median; "
        f"12-bit data in a 16-bit file reads at most 6 %): convert them to one depth, scaled alike, before the scan. "
        f"16-bit: {listing(sources[k] for k, _ in sixteen)}", DataWarning, stacklevel=3,
    )  # fmt: skip
