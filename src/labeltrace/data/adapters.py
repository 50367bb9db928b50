"""Adapters: folder layout, arrays/npz -> :class:`ImageDataset` (CSV/Parquet manifests:
:mod:`labeltrace.data.manifest`, Hugging Face datasets: :mod:`labeltrace.data.hf`, both
re-exported here).

Every adapter validates up front (:mod:`labeltrace.data.validate`) and raises
:class:`DataError` naming the offending files or rows: unreadable/corrupt or missing images
(unless ``on_bad_image="skip"``, which leaves them out and records them in
``ImageDataset.skipped``), images over the pixel limit, files outside the data root and the
allowed roots, missing or unknown labels, duplicate ids, a single class, classes with fewer
than 2 samples, and empty datasets.
"""

from __future__ import annotations

import os
import warnings
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labeltrace._checks import listing
from labeltrace.data.base import ImageDataset
from labeltrace.data.decode import (
    DICOM_SUFFIXES,
    IMAGE_SUFFIXES,
    pixel_limit,
    pixel_text,
    rows_out_of_range,
)
from labeltrace.data.errors import DataError, DataWarning, keeps_warnings
from labeltrace.data.hf import (  # re-exported: the Hugging Face adapter's own module
    HFSource,
    from_hf,
)
from labeltrace.data.manifest import (  # re-exported: the manifest adapter lives in its own module
    MANIFEST_SUFFIXES,
    from_manifest,
    manifest_columns,
    manifest_id_column,
    read_columns,
)
from labeltrace.data.sources import ArraySource, FileSource
from labeltrace.data.validate import (
    MISSING_VALUES,
    OnBadImage,
    distinct_files,
    finalize,
    id_texts,
    inside_roots,
    name_key,
    number_key,
    parse_labels,
    resolve_roots,
)

__all__ = [
    "MISSING_VALUES",
    "HFSource",
    "from_arrays",
    "from_folder",
    "from_hf",
    "from_manifest",
    "from_npz",
    "manifest_columns",
    "manifest_id_column",
    "parse_labels",
    "read_columns",
    "visible_walk",
]


# --------------------------------------------------------------------------- folder
def visible_walk(root: Path, hidden: list[str] | None = None) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(root)`` without hidden files and folders (``.name``) and the folders no class holds
    images in (:data:`_SKIPPED_DIRS`): ``(dirpath, dirnames, filenames)``; prune ``dirnames`` in place
    to skip more. ``hidden``: gets the path of every hidden file left out (but macOS's ``._``
    resource forks and ``.DS_Store``, which hold no image)."""
    for top, dirs, names in os.walk(root):
        dirs[:] = [x for x in dirs if not x.startswith(".") and x not in _SKIPPED_DIRS]
        if hidden is not None:
            hidden += [os.path.join(top, f) for f in names if f.startswith(".") and not f.startswith("._")
                       and f != ".DS_Store"]  # fmt: skip
        yield top, dirs, [f for f in names if not f.startswith(".")]


#: folders no class holds images in: a Synology NAS's thumbnails, a macOS zip's resource forks
_SKIPPED_DIRS = frozenset({"@eaDir", "__MACOSX"})
#: files in class folders that are not images and need no warning
_NOT_IMAGES = frozenset({"Thumbs.db", "desktop.ini"})
#: extensions of documents kept beside images (notes, tables): not read, and no warning about them
_DOCUMENTS = frozenset({".txt", ".md", ".csv", ".tsv", ".json", ".xml", ".yaml", ".yml", ".pdf", ".html", ".db"})
#: folder names that are splits, not classes
_SPLIT_NAMES = frozenset({"train", "training", "val", "valid", "validation", "test", "testing"})

@keeps_warnings
def from_folder(
    root: str | Path, *, on_bad_image: OnBadImage = "fail",
    extensions: Sequence[str] = IMAGE_SUFFIXES + DICOM_SUFFIXES, verify: bool = True,
    workers: int | None = None, max_pixels: int | None = None,
    allow_roots: Sequence[str | Path] = (), group_by_folder: bool = False,
) -> ImageDataset:
    """Dataset from ``root/<class>/.../<image>``: one sub-folder per class, its images at any depth
    below it (``root/<class>/<patient>/<image>`` too), as torchvision's ``ImageFolder`` reads.

    Class ids follow the sorted folder names; the samples go class by class, each class's files
    sorted by their paths. In a flat class folder that is ``ImageFolder``'s order; in nested ones
    it is not (``ImageFolder`` lists a folder's own files before its sub-folders', this order
    compares path parts: ``cat/b/1.png`` before ``cat/c.png``), and ``ImageFolder`` reads hidden
    files too: to score a training that numbered its samples its own way, pass
    ``labeltrace.write_run`` the files in that order as ``paths=``. Hidden files and folders (``.name``, and a NAS's
    ``@eaDir`` thumbnails) are ignored; files whose extension (case-insensitive) is not in
    ``extensions`` (documents such as ``.txt`` or ``.csv`` aside) and image files directly in
    ``root`` are ignored with a warning naming them, and
    so are class folders that look like splits (``train`` / ``test``, or sub-folders of the same
    names in every class folder). Two samples that are one file (a symlink) are refused. Sources and ids are the paths relative
    to ``root`` (``"cat/001.png"``, ``"cat/p7/001.png"``).

    Symlinked files and class folders are followed (symlinked folders below a class folder are
    not, so a link cannot loop: they are named in a warning); a file whose target lies outside ``root``
    (and outside every folder of ``allow_roots``) is refused with a :class:`DataError` naming
    it, whatever ``on_bad_image`` says.

    Parameters
    ----------
    root : str or Path
        Dataset folder.
    on_bad_image : {"fail", "skip"}
        What to do with unreadable or missing images.
    extensions : sequence of str
        File extensions to read.
    verify : bool
        Decode every image up front (in a thread pool) to find corrupt files and record
        shapes. With False only existence is checked and a corrupt file raises at load time.
    workers : int, optional
        Decoding threads.
    max_pixels : int, optional
        Refuse images whose header declares more pixels, now and at every later load (default
        :data:`labeltrace.data.decode.MAX_PIXELS`, 40 megapixels); such images count as bad.
    allow_roots : sequence of path
        Other folders image files may lie in (e.g. the target of a symlinked class folder).
    group_by_folder : bool
        Each image's group (:attr:`ImageDataset.groups`) is the name of the folder right below its
        class folder — ``root/<class>/<patient>/<image>``: a patient's images under any class are
        one group; an image directly in its class folder is a group of its own.
    """
    pixel_limit(max_pixels)
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    roots = resolve_roots(root, allow_roots)
    if isinstance(extensions, str):  # one extension, not its characters
        extensions = [extensions]
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    visible = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    class_dirs = [p for p in visible if p.is_dir() and p.name not in _SKIPPED_DIRS]
    loose = [p.name for p in visible if p.is_file() and p.suffix.lower() in exts]
    if loose:
        warnings.warn(
            f"{len(loose)} image files directly in {root} are ignored (not in a class folder): "
            f"{listing(loose)}", DataWarning, stacklevel=2,
        )
    tables = [p.name for p in visible if p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES]
    if len(class_dirs) < 2 and tables:  # a folder of images beside the table that labels them
        found = "no class sub-folders" if not class_dirs else f"one class folder ({class_dirs[0].name!r})"
        raise DataError(f"{root}: {found}, and a manifest beside: {listing(tables)}; to read the labels it "
                        f"lists, give the file as DATA (labeltrace scan {root / tables[0]})")  # fmt: skip
    if not class_dirs:
        raise DataError(f"{root}: no class sub-folders found")
    if tables:  # a cleaned manifest saved into the folder, scanned as a folder: its labels were dropped, silently
        warnings.warn(f"{root}: the labels are the class folders'; {listing(tables)} beside them {'is' if len(tables) == 1 else 'are'} "
                      f"not read — to scan the labels a manifest lists, give it as DATA (labeltrace scan "
                      f"{root / tables[0]}) or as --labels", DataWarning, stacklevel=2)  # fmt: skip
    files: list[Path] = []
    labels: list[int] = []
    other: list[str] = []  # files of another extension: not read, but counted in a warning
    hidden: list[str] = []  # hidden files (.name): not read, named in a warning when they have an image's extension
    linked: list[str] = []  # symlinked folders below a class folder: not followed, named in a warning
    subdirs: list[set[str]] = []
    for k, d in enumerate(class_dirs):
        in_class: list[Path] = []
        for top, dirs, seen in visible_walk(d, hidden):  # a broken symlink is listed, so it is reported as missing
            if Path(top) == d:
                subdirs.append(set(dirs))
            linked += [(Path(top) / x).relative_to(root).as_posix() for x in dirs if os.path.islink(Path(top) / x)]
            for f in seen:  # each name's extension once: read, or named in the warning
                ext = Path(f).suffix.lower()
                if ext in exts:
                    in_class.append(Path(top) / f)
                elif ext not in _DOCUMENTS and f not in _NOT_IMAGES:
                    other.append((Path(top) / f).relative_to(root).as_posix())
        in_class.sort()  # by path parts (a run directory's sample order: kept as it is)
        files += in_class
        labels += [k] * len(in_class)
    if other:
        warnings.warn(
            f"{len(other)} files in the class folders of {root} are not read (their extension is not one of "
            f"{listing(sorted(exts), 30)}): {listing(sorted(other))}; to read them, list them in a manifest "
            "(labeltrace scan DATA --labels MANIFEST.csv; an extension-less DICOM file too), or in Python pass "
            "from_folder(..., extensions=[...])", DataWarning, stacklevel=2,
        )
    if hidden := sorted(Path(h).relative_to(root).as_posix() for h in hidden if Path(h).suffix.lower() in exts):
        warnings.warn(
            f"{len(hidden)} hidden files in the class folders of {root} are not read (their names begin with "
            f"'.'): {listing(hidden)}; to read them, rename them, or list them in a manifest (labeltrace scan "
            "DATA --labels MANIFEST.csv)", DataWarning, stacklevel=2,
        )
    if linked:
        warnings.warn(
            f"{len(linked)} symlinked folders below the class folders of {root} are not followed (a link "
            f"could loop): {listing(sorted(linked))}; their images are not read. List them in a manifest "
            "(labeltrace scan --labels), or link the class folder itself", DataWarning, stacklevel=2,
        )
    # splits, not classes: every class folder holds sub-folders of the same names (train/{cat,dog},
    # test/{cat,dog}); patients' folders (normal/p1, pneumonia/p2) differ, even with one patient in both
    shared = set.intersection(*subdirs) if len(subdirs) > 1 and all(subdirs) else set()
    if len(shared) < 2 or any(len(shared) < len(x) / 2 for x in subdirs) or group_by_folder:
        shared = set()  # at least two shared names, at least half of every folder's: not one patient in both
        # (group_by_folder: the sub-folders are declared patients, who may have images in every class)
    split_named = bool({d.name.lower() for d in class_dirs} & _SPLIT_NAMES)
    if shared or split_named:
        warnings.warn(
            f"the class folders of {root} ({listing(d.name for d in class_dirs)}) look like splits, not classes"
            + (f": each holds sub-folders of the same names ({listing(sorted(shared))})" if shared else "")
            + "; point DATA at one split's folder if these are train / val / test"
            + ("" if split_named else " (sub-folders of patients or studies with images in several classes share "
               "names too: then the class folders are right, and this warning can be ignored)"),
            DataWarning, stacklevel=2,
        )  # fmt: skip
    def alike(compat: bool) -> list[list[str]]:
        keys: dict[str, list[str]] = {}
        for d in class_dirs:
            keys.setdefault(name_key(d.name, compat=compat), []).append(d.name)
        return [names for names in keys.values() if len(names) > 1]

    same = alike(False)
    if same:  # one name in two Unicode forms (a copy from macOS) or spacings: one class, never two
        raise DataError(f"class folders of {root} write one class name two ways (two Unicode forms or other "
                        f"spaces): {listing(' / '.join(map(ascii, names)) for names in same)}; merge each "
                        "pair into one folder")  # fmt: skip
    close = alike(True)
    if close:  # "2" / "²", "カ" / "ｶ": the glyphs of a character dataset may be classes of their own
        warnings.warn(f"class folders of {root} differ only in Unicode compatibility forms (full-width, "
                      f"superscript, ligature ...) and are read as different classes: "
                      f"{listing(' / '.join(map(ascii, names)) for names in close)}; if each pair is one class, "
                      "merge the folders", DataWarning, stacklevel=2)  # fmt: skip
    twins = {d.name.lower() for d in class_dirs if sum(e.name.lower() == d.name.lower() for e in class_dirs) > 1}
    if twins:  # as manifest labels: maybe two classes (EMNIST's letters), maybe one folder renamed
        warnings.warn(f"class folders of {root} differ only in letter case and are read as different classes: "
                      + listing(" / ".join(d.name for d in class_dirs if d.name.lower() == t) for t in sorted(twins))
                      + "; if each pair is one class, merge the folders", DataWarning, stacklevel=2)  # fmt: skip
    numbers: dict[int, list[str]] = {}
    for d in class_dirs:
        if (number := number_key(d.name)) is not None:
            numbers.setdefault(number, []).append(d.name)
    spelt = [names for names in numbers.values() if len(names) > 1]
    if spelt:  # "1" / "01": a manifest's labels are refused, but codes ("007", "7") can be two classes
        warnings.warn(f"class folders of {root} write one number two ways and are read as different classes: "
                      f"{listing(' / '.join(map(ascii, names)) for names in spelt)}; if each pair is one class, "
                      "merge the folders", DataWarning, stacklevel=2)  # fmt: skip
    rel = [f.relative_to(root).as_posix() for f in files]
    resolved = inside_roots(files, rel, roots)
    distinct_files(resolved, rel, f" ({root})")
    groups = [p.split("/")[1] if p.count("/") >= 2 else p for p in rel] if group_by_folder else None
    return finalize(
        classes=[d.name for d in class_dirs], labels=np.array(labels, dtype=np.int64), sources=rel,
        ids=rel, source=FileSource(resolved, max_pixels), root=root, on_bad_image=on_bad_image,
        verify=verify, workers=workers, where=f" ({root})", allowed_roots=roots, groups=groups,
    )


# --------------------------------------------------------------------------- arrays / npz
@keeps_warnings
def from_arrays(
    images: np.ndarray, labels: Sequence[Any] | np.ndarray, *, classes: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
) -> ImageDataset:
    """Dataset from in-memory images ``(N, H, W[, C])`` and labels ``(N,)`` or ``(N, 1)``.

    Images are ``uint8`` (scaled by 1/255), ``uint16`` (1/65535), ``bool`` or float in [0, 1];
    they are not copied (but for a byte order other than the machine's, ``'>u2'``: read as the same
    values in its own). Labels are integer ids or class names (see :func:`parse_labels`).
    Sources are ``"array:<i>"``; ids default to ``"<i>"``.
    """
    images = np.asarray(images)
    if not images.dtype.isnative:  # big-endian uint16 was refused as 'unsupported image dtype >u2; use uint16'
        images = images.astype(images.dtype.newbyteorder("="))
    lab = np.asarray(labels)
    if lab.ndim == 2 and lab.shape[1] == 1:
        lab = lab[:, 0]
    if lab.ndim != 1:
        raise DataError(
            f"labels must be (N,) or (N, 1); got shape {lab.shape} (multi-label is not supported)"
        )
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3)):
        first = images.ndim == 4 and images.shape[1] in (1, 3)
        raise DataError(
            f"images must be (N, H, W) or (N, H, W, C), C in {{1, 3}}; got {images.shape}"
            + ("; channels first (PyTorch's layout)? Pass images.transpose(0, 2, 3, 1)" if first else "")
        )
    if len(images) != len(lab):
        raise DataError(f"{len(images)} images but {len(lab)} labels")
    if images.dtype.kind == "f":
        bad = rows_out_of_range(images)
        if bad.size:
            flat = images.reshape(len(images), -1)
            finite = flat[np.isfinite(flat)]
            seen = f" (values run from {pixel_text(finite.min())} to {pixel_text(finite.max())})" if finite.size else ""
            hint = ("; 0..255 stored as float? Pass images / 255, or images.astype(np.uint8)"  # not a rounding error's 1 + 1e-9
                    if finite.size and finite.max() > 1.5 and finite.min() >= 0 and finite.max() <= 255 else "")
            raise DataError(
                f"float images must lie in [0, 1]; not so for samples {listing(bad.tolist())}{seen}{hint}"
            )
    elif images.dtype not in (np.uint8, np.uint16, np.bool_):
        raise DataError(
            f"unsupported image dtype {images.dtype}; use uint8, uint16, bool or float in [0, 1] "
            "(e.g. images.astype(np.uint8) for 0..255 integers)"
        )
    values = lab.tolist()
    int_labels, cls = parse_labels(values, classes, row_name=lambda k: f"sample {k}")
    n = len(images)
    c = 1 if images.ndim == 3 else images.shape[3]
    shapes = np.tile(np.array([images.shape[1], images.shape[2], c], dtype=np.int64), (n, 1))
    return finalize(
        classes=cls, labels=int_labels, sources=[f"array:{i}" for i in range(n)],
        ids=[str(i) for i in range(n)] if ids is None else id_texts(ids, n, ""),
        source=ArraySource(images), root=None, on_bad_image="fail", verify=False, workers=None,
        shapes=shapes,
    )


@keeps_warnings
def from_npz(
    path: str | Path, *, split: str = "train", classes: Sequence[str] | None = None,
) -> ImageDataset:
    """Dataset from a MedMNIST-style ``.npz`` with ``{split}_images`` and ``{split}_labels``.

    Images ``(N, H, W)`` or ``(N, H, W, C)``, labels ``(N,)`` or ``(N, 1)``. Ids are
    ``"<split>:<i>"``, or the texts of an ``{split}_ids`` array where the file has one (the cleaned
    ``.npz`` ``labeltrace review --export`` writes keeps each image's id of the first scan so);
    otherwise as :func:`from_arrays`.
    """
    path = Path(path).expanduser()
    need = [f"{split}_images", f"{split}_labels"]
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        loaded = np.load(path, allow_pickle=False, mmap_mode="r")  # an .npy is mapped, not read
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # one array saved with np.save, named .npz
            raise DataError(f"{path}: one {np.shape(loaded)} array (np.save's .npy format), not an .npz archive "
                            f"with {need[0]!r} and {need[1]!r} (np.savez(path, {need[0]}=..., {need[1]}=...))")
        with loaded as z:
            keys = list(z.files)
            missing = [k for k in need if k not in keys]
            if missing:
                raise DataError(f"{path}: missing keys {missing}; keys are {keys}")
            arrays = []
            for key in need + ([f"{split}_ids"] if f"{split}_ids" in keys else []):
                try:
                    arrays.append(z[key])
                except ValueError:  # an object array: reading it would unpickle code
                    raise DataError(f"{path}: {key!r} is an array of Python objects (pickled), which labeltrace "
                                    "does not load; save it as numbers or strings (e.g. labels.astype(int))") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: not a readable .npz archive ({type(exc).__name__}: {exc}; a truncated "
                        "download?)") from None
    images, labels = arrays[:2]
    ids = [f"{split}:{i}" for i in range(len(images))] if len(arrays) == 2 else _npz_ids(arrays[2], path, f"{split}_ids")
    try:
        return from_arrays(images, labels, classes=classes, ids=ids)
    except DataError as exc:  # the arrays' problem, said of the file and its keys
        raise DataError(f"{path} ({need[0]}, {need[1]}): {exc}") from None


def _npz_ids(a: np.ndarray, path: Path, key: str) -> list[Any]:
    """An .npz's ids as a list: one per image (``(N,)``, or MedMNIST's ``(N, 1)``), bytes read as
    UTF-8 text — a ``b'img3'`` or ``[3]`` id, silently, otherwise."""
    a = np.asarray(a)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise DataError(f"{path}: {key!r} must hold one id per image, shape (N,) or (N, 1), got {a.shape}")
    if a.dtype.kind == "S":
        texts, bad = [], []
        for k, v in enumerate(a.tolist()):
            try:
                texts.append(v.decode("utf-8"))
            except UnicodeDecodeError:
                bad.append(k)
        if bad:
            raise DataError(f"{path}: {key!r} holds bytes that are not UTF-8 text at rows {listing(bad)}; save the "
                            "ids as str (np.array(ids, dtype=str)) or integers")
        return texts
    return a.tolist()
