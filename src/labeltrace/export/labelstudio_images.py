"""What a Label Studio task shows as its image: a data URI (PNG, or JPEG for a JPEG file), or a
link Label Studio's local-files storage serves — and the setup that storage needs."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import numpy as np
from PIL import Image

from labeltrace._checks import listing
from labeltrace.report.images import browser_shows, display_image, load_rgb, png_bytes, png_data_uri
from labeltrace.rundir import Run

__all__ = ["MAX_SIDE", "ImageMode", "check_document_root", "document_root_of", "local_files_setup", "task_image"]

ImageMode = Literal["data-uri", "local-files"]
#: the longest side of an image embedded as a data URI, by default: a 2,000 × 1,500 photo in full
#: made a 5.4 MB task (Label Studio's default upload limit, 250 MB, held about 50 of them)
MAX_SIDE = 1024
#: what a local-files export of images without files (an array dataset) is told to do instead
_USE_DATA_URI = "export the Label Studio tasks with --images data-uri (images='data-uri' in Python)"


def _data_uri(run: Run, i: int, size: int, *, max_side: int | None, shrunk: list[int] | None) -> str:
    """A sample's image as a data URI: a small one enlarged to about ``size``, one larger than
    ``max_side`` (None: no limit) reduced to it, its id appended to ``shrunk``. A JPEG file goes in
    as a JPEG (quality 95: its pixels were a lossy code already; as a PNG a photo took 8 times
    its file's bytes), every other image as a PNG."""
    img = load_rgb(run, i)
    longest = max(img.shape[:2])
    size = size if max_side is None else min(size, max_side)  # max_side bounds an enlargement too
    if longest < size:
        img = display_image(img, size=size)
    elif max_side is not None and longest > max_side:
        img = display_image(img, size=max_side)
        if shrunk is not None:
            shrunk.append(i)
    f = run.image_file(i)
    if f is not None and f.suffix.lower() in (".jpg", ".jpeg"):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=95)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return png_data_uri(png_bytes(img))


def document_root_of(run: Run, document_root: str | os.PathLike[str] | None) -> Path:
    """The local-files document root an export links under: the one given, else the folder above
    the data root (Label Studio serves a file only from a storage folder strictly below its document
    root, and refuses the root itself as one: the data root is then the storage)."""
    if document_root is not None:
        return Path(os.path.abspath(document_root))  # as given: Label Studio joins it with a link, no symlink followed
    if run.data_root is None:
        raise ValueError(f"{run.path}: the run has no data root (an array dataset): {_USE_DATA_URI}")
    return Path(os.path.abspath(run.data_root)).parent


def _under(run: Run, i: int, f: Path, root: Path) -> Path | None:
    """Sample ``i``'s image (``f``, resolved) as a path under ``root``: its path as the dataset
    lists it (a symlink in a DVC or git-annex tree stays the link Label Studio is given), else
    the resolved file's; under ``root`` as given or resolved. None when under neither."""
    listed = run.listed_image_path(i)
    for path in ([listed] if listed is not None else []) + [f]:
        for r in dict.fromkeys((root, root.resolve())):
            if path.is_relative_to(r):
                return path.relative_to(r)
    return None


def check_document_root(run: Run, order: np.ndarray, root: Path) -> Path | None:
    """The Local Files storage folder a local-files export under ``root`` needs (None when no task
    links a file): the deepest folder below ``root`` that holds the data root and every linked
    image — the data root itself, whichever samples are exported (a subset's deepest common folder,
    one class's, would not serve the next export's other classes; a folder higher up would serve
    more than the images, the run directory beside them included). Refused
    (``ValueError``): a sample with no image file (an array dataset); a file a browser shows as it
    is outside ``root`` — every such task would open blank (one wrong ``--document-root`` had left
    1,813 of 2,000 so, with a warning and exit status 0), the message naming a root that holds them
    all —; and images with no common folder strictly below ``root`` (Label Studio refuses a storage
    at its document root itself, and serves a file only from under a storage)."""
    outside: list[tuple[int, Path]] = []
    files: list[Path] = []
    linked: list[Path] = []  # the folders of the linked files, under root
    for i in order.tolist():
        try:
            f = run.image_file(i)
            if f is not None:
                listed = run.listed_image_path(i)
                files.append(listed or f)  # as the dataset lists it: a link stays a link
                if f.is_file() and browser_shows(f, listed):
                    rel = _under(run, i, f, root)
                    if rel is None:
                        outside.append((i, listed or f))
                    else:
                        linked.append(rel.parent)
        except (ValueError, OSError):  # outside the scan's roots, unreadable: that task's own problem
            continue
        if f is None:
            raise ValueError(f"sample {i} has no image file (an array dataset): {_USE_DATA_URI}")
    if outside:
        common = Path(*_common_parts([f.parent for f in files]))
        raise ValueError(
            f"{len(outside)} of {len(files)} images {'lies' if len(outside) == 1 else 'lie'} outside the Label Studio "
            f"document root {root} (Label "
            f"Studio would serve none of those): {listing(f'sample {i} ({f})' for i, f in outside)}; pass "
            f"--document-root {common.parent} (document_root= in Python), the folder above the one that holds "
            "them all, and start Label Studio with it"
        )
    if not linked:
        return None
    data_root = run.data_root
    for r in dict.fromkeys((root, root.resolve())):
        if data_root is not None and data_root.is_relative_to(r):  # the same storage for every subset
            linked.append(data_root.relative_to(r))
            break
    below = _common_parts(linked)  # relative paths: none in common (or one lying in root) is (".",)
    if below == (".",):
        raise ValueError(
            f"the images have no common folder below the Label Studio document root {root} (some lie in it "
            "directly, or they spread over several of its folders): Label Studio serves a local file only "
            "from a Local Files storage folder strictly below its document root, and refuses the root itself as "
            f"one; pass --document-root {root.parent} (document_root= in Python), the folder above it"
        )
    return root.joinpath(*below)


def _common_parts(dirs: list[Path]) -> tuple[str, ...]:
    parts = dirs[0].parts
    for d in dirs[1:]:
        p = d.parts
        n = next((k for k, (a, b) in enumerate(zip(parts, p, strict=False)) if a != b), min(len(parts), len(p)))
        parts = parts[:n]
    return parts or (Path(dirs[0].anchor).as_posix(),)


def local_files_setup(root: Path, storage: Path) -> str:
    """What Label Studio needs to serve the links of a local-files export under ``root`` whose
    images all lie in ``storage`` (:func:`check_document_root`)."""
    return (f"Label Studio serves these images only when started with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true "
            f"and LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={root}, and when the project has a Local Files source "
            f"storage (Settings > Cloud Storage > Add Source Storage > Local files) whose absolute local path is "
            f"{storage} (a folder strictly below the document root: Label Studio refuses the root itself); "
            "importing the tasks JSON needs no Sync of that storage")


def task_image(run: Run, i: int, images: ImageMode, root: Path | None, size: int, *,
               max_side: int | None = MAX_SIDE, embedded: list[int] | None = None,
               shrunk: list[int] | None = None) -> str:  # fmt: skip
    """A task's ``data.image`` for sample ``i``: a data URI (``images="data-uri"``, or a local file a
    browser does not show as it is: DICOM, TIFF, a 16-bit PNG — its id appended to ``embedded``,
    display-scaled to about ``size``), else ``/data/local-files/?d=<path under root>``.
    ``ValueError`` / ``OSError`` when the image cannot be exported (changed or gone since the scan,
    unreadable, outside ``root``)."""
    if images == "data-uri":
        return _data_uri(run, i, size, max_side=max_side, shrunk=shrunk)
    f = run.scanned_image_file(i)  # a file changed or gone since the scan is not linked
    if f is None:
        raise ValueError(f"sample {i} has no image file (an array dataset): {_USE_DATA_URI}")
    if not browser_shows(f, run.listed_image_path(i)):  # linked, the annotator would see a blank or black task
        if embedded is not None:
            embedded.append(i)
        return _data_uri(run, i, size, max_side=size, shrunk=None)
    root = root or document_root_of(run, None)  # the export's default root
    rel = _under(run, i, f, root)
    if rel is None:
        raise ValueError(f"sample {i}: image {f} lies outside the Label Studio document root {root}")
    return "/data/local-files/?d=" + quote(rel.as_posix())
