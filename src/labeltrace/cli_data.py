"""The command line's data: the dataset ``labeltrace scan`` and the other commands name (a folder, a
manifest, a ``.npz``, an example), where it came from, and a manifest's known true labels."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from labeltrace._checks import counted

__all__: list[str] = []


def _excluded_beside(manifest: Path) -> tuple[Path, set[str]] | None:
    """The paths ``review --export`` listed beside the cleaned labels ``manifest`` as excluded (of no
    class: left out of those labels on purpose), and that list; None when there is none."""
    import csv
    import re

    from labeltrace._spreadsheet import FORMULA_START
    from labeltrace.export.excluded import excluded_path

    listed = excluded_path(manifest)
    if not listed.is_file():
        return None
    try:
        with listed.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeError, csv.Error):
        return None
    # a cell a spreadsheet would run was written with a leading ' (labeltrace._spreadsheet)
    paths = {p[1:] if p.startswith("'") and re.match(FORMULA_START, p[1:]) else p
             for p in (r.get("path") or "" for r in rows) if p}  # fmt: skip
    return listed, paths


def _unlisted_images(root: Path, ds: Any, out: str | None, manifest: Path) -> None:
    """A warning naming the image files under DATA that the ``--labels`` manifest does not list: they
    are not scanned (a manifest may label a subset on purpose, but never silently). Listed files
    skipped as unreadable are not named again, and the files a review excluded as of no class (the
    ``<manifest>.excluded.csv`` beside cleaned labels) are said to be those, not warned of."""
    import os

    from labeltrace._checks import listing
    from labeltrace.data.adapters import visible_walk
    from labeltrace.data.decode import DICOM_SUFFIXES, IMAGE_SUFFIXES

    exts = {e.lower() for e in IMAGE_SUFFIXES + DICOM_SUFFIXES}
    base = root.resolve()
    written = [*ds.sources, *(src for src, _ in ds.skipped)]
    listed = {os.path.normpath(os.path.join(base, s)) for s in written}  # as written, against DATA resolved
    listed |= {str(p) for p in getattr(ds.source, "paths", ())}  # and resolved (absolute paths through a link)
    listed |= {str(Path(base, src).resolve()) for src, _ in ds.skipped}  # listed, skipped as unreadable
    skip = Path(out).resolve() if out else None  # a run directory inside DATA: its report's images
    found = []
    for top, dirs, names in visible_walk(base):  # no resolve() per file: a big DATA walks fast
        dirs[:] = [d for d in dirs if Path(top, d) != skip]
        found += [os.path.join(top, f) for f in names if Path(f).suffix.lower() in exts]
    left = sorted(Path(f).relative_to(base).as_posix() for f in found if f not in listed)
    excluded = _excluded_beside(manifest) if left else None
    if excluded is not None:
        gone = [p for p in left if p in excluded[1]]
        left = [p for p in left if p not in excluded[1]]
        if gone:
            print(f"{len(gone)} image file{'s' if len(gone) != 1 else ''} under {root} that the --labels manifest "
                  f"leaves out {'are' if len(gone) != 1 else 'is'} excluded by the review as of no class "
                  f"({excluded[0]}): not scanned", file=sys.stderr)  # fmt: skip
    if left:
        print(f"warning: {len(left)} image files under {root} are not in the --labels manifest and are not scanned: "
              f"{listing(left)}", file=sys.stderr)


def _load_dataset(args: argparse.Namespace):  # noqa: ANN202 - (ImageDataset, origin), imported lazily
    """The dataset named on the command line and a description of where it came from."""
    from labeltrace import data
    from labeltrace.data.manifest import MANIFEST_SUFFIXES

    man_cols = {"path_column": args.path_column, "label_column": args.label_column, "id_column": args.id_column}
    columns = [flag for flag, given, default in (("--path-column", args.path_column, "path"),
                                                 ("--label-column", args.label_column, "label"),
                                                 ("--id-column", args.id_column, None)) if given != default]
    if columns and (args.example or not (args.labels or Path(args.data or "").suffix.lower() in MANIFEST_SUFFIXES)):
        raise ValueError(f"{' and '.join(columns)} {'names' if len(columns) == 1 else 'name'} a manifest's column; DATA "
                         "here is not a manifest (a folder's labels are its class folders, an .npz's its "
                         "<split>_labels and <split>_ids arrays)")  # fmt: skip
    if getattr(args, "group_column", None):
        man_cols["group_column"] = args.group_column
        if args.example or not (args.labels or Path(args.data or "").suffix.lower() in MANIFEST_SUFFIXES):
            raise ValueError("--group-column names a manifest's column; DATA here is not a manifest (for a folder "
                             "DATA/<class>/<patient>/<image>, --group-by-folder)")  # fmt: skip
    by_folder = bool(getattr(args, "group_by_folder", False))
    if by_folder and (args.example or args.labels or not Path(args.data or "").is_dir()):
        raise ValueError("--group-by-folder reads the groups of a folder DATA/<class>/<patient>/<image>; for a "
                         "manifest, --group-column names its column")  # fmt: skip
    read_as_is: dict[str, Any] = {"missing_values": ()} if getattr(args, "no_missing_markers", False) else {}
    named: dict[str, Any] = {}  # --classes: the class list, in id order
    if getattr(args, "classes", None):
        from labeltrace.data.manifest import read_classes_file

        named = {"classes": read_classes_file(Path(args.classes))}
        if args.example or (args.data and not args.labels and Path(args.data).is_dir()):
            raise ValueError("--classes names the classes of a manifest or an .npz; a folder's classes are its "
                             "sub-folders")

    if getattr(args, "split", None) is not None and (args.labels or Path(args.data or "").suffix.lower() != ".npz"):
        raise ValueError("--split picks a split of a .npz file; DATA here is a folder, a manifest or "
                         "an example, read whole (give the split's own folder or manifest instead)")  # fmt: skip
    if args.example or (not args.labels and Path(args.data or "").suffix.lower() == ".npz"):  # arrays: no files
        files_only = [flag for flag, on in (
            ("--max-pixels", getattr(args, "max_pixels", None) is not None),
            ("--on-bad-image skip", getattr(args, "on_bad_image", "fail") == "skip"),
            ("--allow-root", bool(getattr(args, "allow_root", None))),
            ("--no-missing-markers", bool(getattr(args, "no_missing_markers", False)))) if on]  # fmt: skip
        if files_only:  # accepted and never read (a 5-pixel limit let 256-pixel arrays through)
            raise ValueError(f"{', '.join(files_only)} {'applies' if len(files_only) == 1 else 'apply'} to image files "
                             f"and label text; DATA here is an array ({'--example' if args.example else 'an .npz file'}) "
                             f"read as it is: leave {'it' if len(files_only) == 1 else 'them'} out")  # fmt: skip
    if args.example:
        if args.data or args.labels:
            raise ValueError("give either DATA/--labels or --example, not both")
        return data.example(args.example), {"kind": "example", "source": args.example}
    common = {"on_bad_image": args.on_bad_image, "allow_roots": args.allow_root, "max_pixels": args.max_pixels}
    limits = {"max_pixels": args.max_pixels} if args.max_pixels is not None else {}  # run.json: for the report

    def used(manifest: Path) -> dict[str, Any]:  # the id column the rows are keyed by (auto-detected `id`)
        from labeltrace.data.manifest import manifest_id_column

        return {**man_cols, "id_column": manifest_id_column(manifest, args.id_column, path_column=args.path_column,
                                                            label_column=args.label_column),
                **({"missing_markers": False} if read_as_is else {})}  # fmt: skip

    if args.labels:
        man = Path(args.labels)
        root = Path(args.data) if args.data else None
        ds = data.from_manifest(man, root=root, **man_cols, **read_as_is, **named, **common)
        if root is not None and root.is_dir():
            _unlisted_images(root, ds, getattr(args, "out", None), man)
        return ds, {"kind": "manifest", "source": str(man.resolve()), **used(man), **limits}
    if not args.data:
        raise ValueError("give DATA (a folder, manifest or .npz), --labels FILE, or --example digits")
    p = Path(args.data)
    if not p.exists():
        raise ValueError(f"{p} does not exist (DATA: a folder, a .csv/.tsv/.parquet manifest or a .npz file)")
    if p.is_dir():
        out = Path(args.out).resolve() if getattr(args, "out", None) else None
        if out is not None and (out == p.resolve() or p.resolve() in out.parents):
            raise ValueError(f"--out {args.out} is DATA {p} or inside it: its sub-folders are read as classes, so the run "
                             "directory would be read as one the next time; choose an --out outside DATA")
        return data.from_folder(p, **common, group_by_folder=by_folder), {
            "kind": "folder", "source": str(p.resolve()), **limits, **({"group_by_folder": True} if by_folder else {})}
    if p.suffix.lower() in MANIFEST_SUFFIXES:
        ds = data.from_manifest(p, **man_cols, **read_as_is, **named, **common)
        return ds, {"kind": "manifest", "source": str(p.resolve()), **used(p), **limits}
    if p.suffix.lower() == ".npz":
        split = args.split or "train"
        return data.from_npz(p, split=split, **named), {"kind": "npz", "source": str(p.resolve()), "split": split}
    raise ValueError(f"cannot read {p}: expected a folder, a .csv/.tsv/.parquet manifest or a .npz file")


def _say_skipped(ds: Any, also: str = "") -> None:
    """The unreadable images ``--on-bad-image skip`` left out (said under --quiet too, as warnings
    are): how many, the first ten with why; ``also``: what the caller adds."""
    if not ds.skipped:
        return
    print(f"warning: skipped {counted(len(ds.skipped), 'unreadable image')} (--on-bad-image skip; all listed in "
          "run.json)"
          f"{also}:", file=sys.stderr)  # fmt: skip
    for src, why in ds.skipped[:10]:
        print(f"  {src}: {why}", file=sys.stderr)


def _check_truth_column(args: argparse.Namespace) -> None:
    """``--truth-column`` names a manifest's column: refused for other DATA before DATA is read."""
    from labeltrace.data.manifest import MANIFEST_SUFFIXES

    if args.truth_column and not (args.labels or Path(args.data or "").suffix.lower() in MANIFEST_SUFFIXES):
        raise ValueError("--truth-column needs a manifest (DATA as .csv/.parquet or --labels)")


def _truth_labels(args: argparse.Namespace, ds, origin: dict):  # noqa: ANN001, ANN202
    """``--truth-column``'s known true labels (names or ids), aligned with the dataset's samples, and
    the origin run.json keeps, which names the column (the rescan command an export prints passes it
    on); ``(None, origin)`` without the flag. ``origin`` is a manifest's: :func:`_check_truth_column`
    refuses --truth-column for other DATA before it is read."""
    from labeltrace.data.manifest import truth_column

    if not args.truth_column:
        return None, origin
    as_is = {"missing_values": ()} if origin.get("missing_markers") is False else {}  # --no-missing-markers
    truth = truth_column(Path(origin["source"]), args.truth_column, ds, id_column=origin.get("id_column"),
                         path_column=origin["path_column"], **as_is)  # fmt: skip
    return truth, {**origin, "truth_column": args.truth_column}
