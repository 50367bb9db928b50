"""Built-in example datasets that need no download (they ship inside installed packages).

scikit-learn's only bundled labeled image set is ``load_digits``; its other image loaders
(``fetch_olivetti_faces``, ``fetch_lfw_people``) download, and ``load_sample_images`` holds
two unlabeled photos. scikit-image's bundled data has no labeled classification set.
"""

from __future__ import annotations

import numpy as np

from labeltrace.data.adapters import from_arrays
from labeltrace.data.base import ImageDataset

__all__ = ["available_examples", "example"]


def _digits() -> ImageDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values are counts 0..16 of a 4x4 block; scale them exactly to [0, 1].
    images = (bunch.images / 16.0).astype(np.float32)
    return from_arrays(
        images, bunch.target.astype(np.int64), classes=[str(k) for k in range(10)],
        ids=[f"digits:{i}" for i in range(len(images))],
    )


_EXAMPLES = {"digits": _digits}


def available_examples() -> tuple[str, ...]:
    """Names accepted by :func:`example`."""
    return tuple(_EXAMPLES)


def example(name: str) -> ImageDataset:
    """Load a built-in example dataset.

    ``"digits"``: scikit-learn's handwritten digits, 1,797 grayscale 8x8 images, values
    0..16 scaled to [0, 1], classes ``"0"``..``"9"``.
    """
    try:
        build = _EXAMPLES[name]
    except KeyError:
        raise ValueError(f"unknown example {name!r}; available: {list(_EXAMPLES)}") from None
    return build()
