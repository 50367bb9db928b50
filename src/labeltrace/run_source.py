"""Where a run reads an array dataset's pixels again (``run.json`` ``data.image_source``): a ``.npz``
(checked unchanged since the scan) or a built-in example. :func:`image_source` writes the entry,
:func:`open_source` opens the dataset again, :func:`source_bits` tells how deep its pixels are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["image_source", "open_source", "same_pixels", "source_bits"]


def image_source(origin: dict[str, Any] | None) -> dict[str, Any] | None:
    """Where a run can read an array dataset's pixels again (``run.json`` ``data.image_source``):
    a ``.npz`` (path, split, size and modification time, to notice a changed file) or a built-in
    example; None when the pixels came some other way (e.g. arrays handed to :func:`scan`)."""
    kind = (origin or {}).get("kind")
    if kind == "npz":
        p = Path(origin["source"]).resolve()  # type: ignore[index]
        st = p.stat()
        return {"kind": "npz", "path": str(p), "split": origin.get("split", "train"),  # type: ignore[union-attr]
                "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if kind == "example":
        return {"kind": "example", "name": origin["source"]}  # type: ignore[index]
    return None


def same_pixels(ds: Any, identity: str | None) -> bool:
    """Whether ``ds`` holds the pixels and ids of the scanned data: its
    :func:`~labeltrace.models.inputs.data_identity` is the run fingerprint's ``data`` entry."""
    from labeltrace.models.inputs import data_identity

    return identity is not None and data_identity(ds) == identity


def open_source(run_path: Path, src: dict[str, Any] | None, num_samples: int, identity: str | None = None) -> Any:
    """The array dataset a run read, opened again from its ``data.image_source`` entry ``src``.
    A ``.npz`` whose size and modification time are the scan's is taken as it is; one of the same
    size with another time (copied without ``cp -p``, checked out, restored) is taken when its pixels'
    fingerprint (a strided hash: about 20 pixels of each CIFAR-sized image) is the scan's
    ``identity`` (the run fingerprint's ``data`` entry); a run without one is refused then.

    Raises
    ------
    ValueError
        No entry (the run keeps no images and names no source), a ``.npz`` missing or changed since
        the scan, or a source of another size than the run.
    """
    if src is None:
        raise ValueError(f"run {run_path} stores no images (images.npy missing) and names no source to read them from")
    from labeltrace import data  # lazy: reading datasets lives at the data edge

    if src["kind"] == "npz":
        p = Path(src["path"])
        st = p.stat() if p.is_file() else None
        if st is None:
            raise ValueError(f"run {run_path}: its images' source {p} is missing; cannot show its images "
                             f"(moved? labeltrace relocate {run_path} NEW.npz reads it where it is now)")  # fmt: skip
        changed = f"run {run_path}: its images' source {p} changed since the scan; cannot show its images"
        if st.st_size != src["size"]:
            raise ValueError(changed)
        ds = data.from_npz(p, split=src["split"])
        if st.st_mtime_ns != src["mtime_ns"] and not same_pixels(ds, identity):
            raise ValueError(changed + " (its pixels' fingerprint is not the scan's)")
    else:
        ds = data.example(src["name"])
    if len(ds) != num_samples:
        raise ValueError(f"run {run_path}: its images' source holds {len(ds)} images, the run {num_samples}")
    return ds


def source_bits(ds: Any) -> int:
    """Bits per sample of an in-memory dataset's stored pixels, as its source says
    (``stored_bits()``: 16 for ``uint16`` arrays and for Hugging Face rows whose first image stores
    16 bits); 8 for a source that does not say."""
    bits = getattr(ds.source, "stored_bits", None)
    return int(bits()) if callable(bits) else 8
