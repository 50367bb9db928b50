"""Messy real-world inputs a review found silently mislabeled, merged or dropped: each is now read
right or refused with a message that names the rows or files."""

from __future__ import annotations

import io
import unicodedata
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from labeltrace.cli import _load_dataset, build_parser
from labeltrace.data import (
    DataError,
    DataWarning,
    from_folder,
    from_hf,
    from_manifest,
    from_npz,
    parse_labels,
)


def _png(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((6, 6), value, dtype=np.uint8)).save(path)
    return path


def _images(root: Path, n: int = 4) -> list[str]:
    return [_png(root / "i" / f"{k}.png", 10 * k).relative_to(root).as_posix() for k in range(n)]


def test_a_repeated_header_name_is_refused(tmp_path: Path) -> None:
    """csv.DictReader kept the last of two `path` columns: images paired with another row's label."""
    p = _images(tmp_path)
    (tmp_path / "m.csv").write_text("path,label,path\n" + "".join(
        f"{p[k]},{'cat' if k < 2 else 'dog'},{p[3 - k]}\n" for k in range(4)))
    with pytest.raises(DataError, match=r"m\.csv: the header names 'path' more than once"):
        from_manifest(tmp_path / "m.csv")
    pq.write_table(pa.Table.from_arrays([pa.array(p), pa.array(["a", "a", "b", "b"]), pa.array(["b"] * 4)],
                                        names=["path", "label", "label"]), tmp_path / "m.parquet")
    with pytest.raises(DataError, match=r"the header names 'label' more than once"):
        from_manifest(tmp_path / "m.parquet")


@pytest.mark.parametrize("values, classes, match", [
    (["01", "1", "2", "0"], None, r"'01' \(row 1\) / '1' \(row 2\)"),
    (["+1", "1", "0", "0"], None, r"'\+1' \(row 1\) / '1' \(row 2\)"),
    (["\u0661", "1", "0", "0"], None, "write one class two ways"),  # an Arabic-Indic one
    (["1", "1.0", "2", "2"], None, r"decimal point.*'1' \(row 1\) / '1.0' \(row 2\)"),  # a float export appended
    (["01", "02"], ["1", "2", "3"], r"unknown labels.*row 1 '01'"),  # was read as positions 1, 2: '2', '3'
    ([unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café"), "dog", "dog"], None,
     r"the same name in two Unicode forms, with other spaces or an invisible character.*'caf\\xe9' \(row 1\) / 'cafe\\u0301' \(row 2\)"),
    # a no-break space (a spreadsheet's), two spaces, a full-width letter (an input method's): extra classes, silently
    (["normal tissue", "normal\u00a0tissue", "tumor", "tumor"], None, r"'normal tissue' \(row 1\) / 'normal\\xa0tissue'"),
    (["normal tissue", "normal  tissue", "tumor", "tumor"], None, "write one class two ways"),
    (["normal tissue", "normal\ttissue", "tumor", "tumor"], None, "write one class two ways"),  # a tab: a space
    (["Tumor", "\uff34umor", "a", "a"], None, r"'Tumor' \(row 1\) / '\\uff34umor' \(row 2\)"),
    # a zero-width space (a copy from a web page): a class of its own, silently (an audit's finding)
    (["cat", "cat\u200b", "dog", "dog"], None, r"invisible character\): 'cat' \(row 1\) / 'cat\\u200b' \(row 2\)"),
    ([[0], [1], [0, 1], [1]], None, r"multi-label.*row 3 \[0, 1\]"),
    ([b"a", b"a", b"b", b"b"], None, r"row 1 b'a'"),
])
def test_labels_that_write_one_class_two_ways_are_refused(values: list[Any], classes: Any, match: str) -> None:
    with pytest.raises(DataError, match=match):
        parse_labels(values, classes)


def test_zero_padded_class_names_stay_names() -> None:
    labels, classes = parse_labels(["00", "01", "01", "00"], None)
    assert classes == ("00", "01") and labels.tolist() == [0, 1, 1, 0]
    labels, classes = parse_labels(["1.0", "2.0", "2.0"], None)  # a float column's spelling alone: names
    assert classes == ("1.0", "2.0") and labels.tolist() == [0, 1, 1]
    labels, classes = parse_labels(["1", "1.0", "2", "2"], ["1", "1.0", "2"])  # listed: three classes meant
    assert labels.tolist() == [0, 1, 2, 2]


def test_integer_labels_that_cannot_be_class_positions_are_refused() -> None:
    """A stray 20240131 (a date or a patient id) made 20 million classes: gigabytes, then an error
    that named no row. Labels counted from 1 gave "'0' (0)"."""
    with pytest.raises(DataError, match=r"label 20240131 would make 20,240,132 classes for 5 samples: row 5 '20240131'"):
        parse_labels(["0", "0", "1", "1", "20240131"], None)
    with pytest.raises(DataError, match=r"no label is 0 \(they run from 1 to 2\).*counted from 1\? Subtract 1\. A subset without class 0\? Renumber"):
        parse_labels([1, 1, 2, 2], None)
    assert parse_labels([1, 1, 2, 2], ["a", "b", "c"])[1] == ("a", "b", "c")  # positions in given classes: fine
    with pytest.raises(DataError, match=r"BI-RADS 2 and 5\)\? Give them as text.*--classes FILE"):
        parse_labels([2, 2, 2, 2, 5, 5, 5, 5], None)
    with pytest.raises(DataError, match=r"Codes that name classes\? Give them as text.*--classes FILE"):
        parse_labels([2, 2, 5, 5], None)  # fewer samples than the largest code
    labels, classes = parse_labels(["2", "2", "5", "5"], ["2", "5"])  # the advice works
    assert classes == ("2", "5") and labels.tolist() == [0, 0, 1, 1]


def test_names_in_two_letter_cases_are_two_classes_with_a_warning_unless_listed() -> None:
    """'benign' / 'Benign' may be a typo, or two classes (EMNIST's letters): read as two, and said."""
    import warnings

    with pytest.warns(DataWarning, match=r"differ only in letter case.*'Benign' \(row 2\) / 'benign' \(row 1\)"):
        labels, classes = parse_labels(["benign", "Benign", "malignant", "malignant"], None)
    assert classes == ("Benign", "benign", "malignant") and labels.tolist() == [1, 0, 2, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        labels, classes = parse_labels(["benign", "Benign", "Benign"], ["benign", "Benign"])
        assert classes == ("benign", "Benign") and labels.tolist() == [0, 1, 1]
        parse_labels(["straße", "strasse", "strasse"], None)  # not a letter-case pair


def test_folder_warns_about_what_it_does_not_read(tmp_path: Path) -> None:
    for c in ("cat", "dog"):
        for k in range(2):
            _png(tmp_path / "d" / c / f"{k}.png", k)
    (tmp_path / "d" / "cat" / "2.jfif").write_bytes(b"\xff\xd8")  # a JPEG of another extension
    (tmp_path / "d" / "dog" / "IM000001").write_bytes(b"DICM")  # an extension-less DICOM
    (tmp_path / "d" / "dog" / "notes.txt").write_text("seen by Dr A")  # a document: no warning
    _png(tmp_path / "d" / "cat" / "@eaDir" / "0.png" / "SYNOPHOTO_THUMB_M.png")  # NAS thumbnails: skipped
    with pytest.warns(UserWarning, match=r"2 files in the class folders .* not read .*: cat/2\.jfif, dog/IM000001; to read them"):
        ds = from_folder(tmp_path / "d")
    assert len(ds) == 4


def test_hidden_images_in_class_folders_are_named_not_skipped_silently(tmp_path: Path) -> None:
    """A valid `.hidden.png` in a class folder was left out without a word (an audit's finding);
    macOS's `._x.png` resource forks and `.DS_Store` hold no image and stay unsaid."""
    import warnings

    for c in ("cat", "dog"):
        for k in range(2):
            _png(tmp_path / "d" / c / f"{k}.png", k)
    (tmp_path / "d" / "cat" / "._0.png").write_bytes(b"\x00\x05\x16\x07")  # AppleDouble
    (tmp_path / "d" / "dog" / ".DS_Store").write_bytes(b"\x00")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(from_folder(tmp_path / "d")) == 4
    _png(tmp_path / "d" / "dog" / ".hidden.png", 1)
    with pytest.warns(DataWarning, match=r"1 hidden files in the class folders of .* are not read \(their names "
                                         r"begin with '\.'\): dog/\.hidden\.png; to read them, rename them"):
        assert len(from_folder(tmp_path / "d")) == 4


def test_a_folder_of_splits_is_named(tmp_path: Path) -> None:
    for split in ("train", "test"):
        for c in ("cat", "dog"):
            for k in range(2):
                _png(tmp_path / "d" / split / c / f"{k}.png", k)
    with pytest.warns(UserWarning, match=r"\(test, train\) look like splits.*same names \(cat, dog\)"):
        from_folder(tmp_path / "d")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert from_folder(tmp_path / "d" / "train").classes == ("cat", "dog")


class _FakeHF:
    """The part of a datasets.Dataset that from_hf reads (datasets is optional)."""

    def __init__(self, images: list[np.ndarray], labels: list[int], names: list[str]) -> None:
        self.rows = [{"image": a, "label": y} for a, y in zip(images, labels, strict=True)]
        self.column_names = ["image", "label"]
        self.features = {"label": SimpleNamespace(names=names)}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: Any) -> Any:
        return [r[key] for r in self.rows] if isinstance(key, str) else self.rows[key]


def test_hf_class_label_values_are_positions_whatever_the_names() -> None:
    """A ClassLabel with names "1".."5" (star ratings) was refused as ambiguous."""
    ims = [np.full((4, 4), v, np.uint8) for v in range(10)]
    ds = from_hf(_FakeHF(ims, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4], ["1", "2", "3", "4", "5"]))
    assert ds.classes == ("1", "2", "3", "4", "5") and ds.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    with pytest.raises(DataError, match=r"beyond the 5 ClassLabel names at rows 9"):
        from_hf(_FakeHF(ims, [0, 0, 1, 1, 2, 2, 3, 3, 4, 7], ["1", "2", "3", "4", "5"]))


def test_npz_that_numpy_cannot_read_safely_is_named(tmp_path: Path) -> None:
    np.savez(tmp_path / "obj.npz", train_images=np.zeros((4, 3, 3), np.uint8),
             train_labels=np.array(["a", "a", 1, None], dtype=object))
    with pytest.raises(DataError, match=r"obj\.npz: 'train_labels' is an array of Python objects"):
        from_npz(tmp_path / "obj.npz")
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(DataError, match=r"text\.npz: not a readable \.npz archive"):
        from_npz(tmp_path / "text.npz")


def _load(argv: list[str]) -> Any:
    if "--out" not in argv:
        argv = [*argv, "--out", "unused-run"]
    return _load_dataset(build_parser().parse_args(["scan", *argv]))


def test_cli_labels_manifest_names_the_images_it_leaves_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = _images(tmp_path / "data", 6)
    (tmp_path / "labels.csv").write_text("path,label\n" + "".join(f"{s},{'ab'[k % 2]}\n" for k, s in enumerate(p[:4])))
    ds, _ = _load([str(tmp_path / "data"), "--labels", str(tmp_path / "labels.csv"), "--out", str(tmp_path / "run")])
    assert len(ds) == 4
    err = capsys.readouterr().err
    assert "2 image files under" in err and "i/4.png, i/5.png" in err


def test_cli_reads_a_class_named_none_on_request(tmp_path: Path) -> None:
    p = _images(tmp_path, 4)
    (tmp_path / "m.csv").write_text("path,label\n" + "".join(f"{s},{'none' if k < 2 else 'cat'}\n" for k, s in enumerate(p)))
    with pytest.raises(DataError, match="missing 'label'"):
        _load([str(tmp_path / "m.csv")])
    ds, origin = _load([str(tmp_path / "m.csv"), "--no-missing-markers"])
    assert ds.classes == ("cat", "none")
    assert origin["missing_markers"] is False  # run.json records it: the export's rescan command repeats it
    # the truth column is read as the label column is (it was refused: 'has no value in 2 rows')
    from labeltrace.cli_data import _truth_labels

    (tmp_path / "t.csv").write_text("path,label,truth\n" + "".join(
        f"{s},{'none' if k < 2 else 'cat'},{'none' if k % 2 else 'cat'}\n" for k, s in enumerate(p)))
    args = build_parser().parse_args(["scan", str(tmp_path / "t.csv"), "--out", "r", "--truth-column", "truth",
                                      "--no-missing-markers"])  # fmt: skip
    ds, origin = _load_dataset(args)
    assert _truth_labels(args, ds, origin)[0].tolist() == [0, 1, 0, 1]  # classes ('cat', 'none')
    args.no_missing_markers = False
    with pytest.raises(DataError, match=r"missing 'label'"):
        _load_dataset(args)


def test_a_symlinked_manifest_reads_paths_from_its_own_folder(tmp_path: Path) -> None:
    p = _images(tmp_path / "project")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "v3.csv").write_text("path,label\n" + "".join(f"{s},{'ab'[k % 2]}\n" for k, s in enumerate(p)))
    (tmp_path / "project" / "labels.csv").symlink_to(tmp_path / "shared" / "v3.csv")
    ds = from_manifest(tmp_path / "project" / "labels.csv")
    assert ds.root == (tmp_path / "project").resolve() and len(ds) == 4


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_a_transparent_colour_is_composited_like_a_palette_s(tmp_path: Path, mode: str) -> None:
    """A tRNS colour on an L or RGB PNG was ignored while a palette's was composited on black."""
    from labeltrace.data.decode import decode_image

    a = np.array([[0, 100], [200, 100]], np.uint8)
    img = Image.fromarray(a if mode == "L" else np.stack([a] * 3, -1))
    img.save(tmp_path / "t.png", transparency=100 if mode == "L" else (100, 100, 100))
    out = decode_image(tmp_path / "t.png")
    np.testing.assert_allclose(out[..., 0], np.array([[0, 0], [200, 0]]) / 255, atol=1e-6)


def test_a_symlinked_manifest_finds_the_classes_txt_beside_its_target(tmp_path: Path) -> None:
    p = _images(tmp_path / "project")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "v3.csv").write_text("path,label\n" + "".join(f"{s},{k % 2}\n" for k, s in enumerate(p)))
    (tmp_path / "shared" / "classes.txt").write_text("three\nfive\n")
    (tmp_path / "project" / "labels.csv").symlink_to(tmp_path / "shared" / "v3.csv")
    assert from_manifest(tmp_path / "project" / "labels.csv").classes == ("three", "five")


def test_cli_unlisted_images_warning_names_only_what_is_left_out(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """No false alarms: a DATA symlink with absolute manifest paths, a listed file skipped as
    unreadable, a NAS's @eaDir thumbnails."""
    p = _images(tmp_path / "real", 5)
    (tmp_path / "real" / "i" / "bad.png").write_bytes(b"not a png")
    _png(tmp_path / "real" / "i" / "@eaDir" / "0.png" / "SYNOPHOTO_THUMB_M.png")
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    rows = [str(tmp_path / "link" / s) for s in p[:4]] + [str(tmp_path / "link" / "i" / "bad.png")]
    (tmp_path / "labels.csv").write_text("path,label\n" + "".join(f"{r},{'ab'[k % 2]}\n" for k, r in enumerate(rows)))
    ds, _ = _load([str(tmp_path / "link"), "--labels", str(tmp_path / "labels.csv"), "--on-bad-image", "skip"])
    assert len(ds) == 4
    err = capsys.readouterr().err
    assert "1 image files under" in err and "i/4.png" in err and "bad.png" not in err and "eaDir" not in err


def test_explicit_class_lists_may_name_01_and_1_both() -> None:
    labels, classes = parse_labels(["01", "1", "01", "1"], ["01", "1"])
    assert classes == ("01", "1") and labels.tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_hf_class_labels_of_a_formatted_dataset_are_positions(kind: str) -> None:
    import torch

    wrap = (lambda v: np.int64(v)) if kind == "numpy" else (lambda v: torch.tensor(v))
    ims = [np.full((4, 4), v, np.uint8) for v in range(4)]
    fake = _FakeHF(ims, [0, 0, 1, 1], ["1", "2"])
    for r in fake.rows:
        r["label"] = wrap(r["label"])
    ds = from_hf(fake)
    assert ds.classes == ("1", "2") and ds.labels.tolist() == [0, 0, 1, 1]
    fake.rows[1]["label"] = wrap(-1)
    with pytest.raises(DataError, match=r"missing labels \(None or -1\) at rows 1"):
        from_hf(fake)


def test_a_truncated_npz_is_named(tmp_path: Path) -> None:
    np.savez(tmp_path / "ok.npz", train_images=np.zeros((4, 3, 3), np.uint8), train_labels=np.array([0, 0, 1, 1]))
    data = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.npz: not a readable \.npz archive .*truncated"):
        from_npz(tmp_path / "cut.npz")


def test_an_npz_s_array_problems_name_the_file_and_say_what_to_do(tmp_path: Path) -> None:
    """A .npy renamed .npz ended in a TypeError traceback; the arrays' errors named neither the file
    nor the keys, nor the usual cause (channels first, 0..255 stored as float)."""
    y = np.array([0] * 5 + [1] * 5)
    np.save(tmp_path / "one.npy", np.zeros((10, 8, 8), np.uint8))
    (tmp_path / "one.npy").rename(tmp_path / "one.npz")
    with pytest.raises(DataError, match=r"one\.npz: one \(10, 8, 8\) array \(np\.save's \.npy format\), not an \.npz"):
        from_npz(tmp_path / "one.npz")
    for name, images, labels, words in (
        ("count", np.zeros((10, 8, 8), np.uint8), y[:-1], r"10 images but 9 labels"),
        ("chw", np.zeros((10, 3, 8, 8), np.uint8), y, r"got \(10, 3, 8, 8\); channels first.*transpose\(0, 2, 3, 1\)"),
        ("f255", np.full((10, 8, 8), 200, np.float32), y, r"\(values run from 200 to 200\); 0\.\.255 stored as float\? Pass images / 255"),
    ):
        np.savez(tmp_path / f"{name}.npz", train_images=images, train_labels=labels)
        with pytest.raises(DataError, match=rf"{name}\.npz \(train_images, train_labels\): .*{words}"):
            from_npz(tmp_path / f"{name}.npz")


def test_cli_classes_file_names_an_npz_s_classes(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", train_images=np.zeros((4, 3, 3), np.uint8), train_labels=np.array([0, 0, 1, 1]))
    (tmp_path / "names.txt").write_text("cat\ndog\n")
    ds, _ = _load([str(tmp_path / "d.npz"), "--classes", str(tmp_path / "names.txt")])
    assert ds.classes == ("cat", "dog") and ds.labels.tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="a folder's classes are its sub-folders"):
        _load([str(tmp_path), "--classes", str(tmp_path / "names.txt")])


def test_patient_folders_are_not_taken_for_splits(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's class/patient/image layout, one patient in both classes (a follow-up X-ray),
    was warned about as a folder of splits, advising to drop a class."""
    for c, patients in (("normal", ("p001", "p002")), ("pneumonia", ("p001", "p003"))):
        for p in patients:
            for k in range(2):
                _png(tmp_path / "d" / c / p / f"{k}.png", k)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert from_folder(tmp_path / "d").classes == ("normal", "pneumonia")
    for split in ("train", "test"):  # the CLI prints a labeltrace warning as its own lines: 'warning: ...'
        for c in ("cat", "dog"):
            for k in range(2):
                _png(tmp_path / "s" / split / c / f"{k}.png", k)
    from labeltrace.cli import main

    def stop(*args: object, **kw: object) -> None:
        raise ValueError("stopped before training")

    monkeypatch.setattr("labeltrace.scan.scan", stop)
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # loads the folder (and warns), then stops
        assert main(["scan", str(tmp_path / "s"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("warning: the class folders of") and "DataWarning" not in err


def test_a_split_missing_a_class_is_still_named_and_other_warnings_keep_their_form(tmp_path: Path) -> None:
    for site, classes in (("site_A", ("cat", "dog", "bird")), ("site_B", ("cat", "dog"))):
        for c in classes:
            for k in range(2):
                _png(tmp_path / "d" / site / c / f"{k}.png", k)
    with pytest.warns(UserWarning, match=r"\(site_A, site_B\) look like splits.*same names \(cat, dog\).*"
                                         r"patients or studies .* can be ignored"):  # fmt: skip
        from_folder(tmp_path / "d")
    from labeltrace.cli import _warning_printer

    seen = []
    show = _warning_printer(lambda *a: seen.append(a[1]))
    show("divide by zero", RuntimeWarning, "/x/labeltrace/score/probs.py", 2)
    assert seen == [RuntimeWarning]  # a library's warning goes to the default printer, whatever the path
    import labeltrace.review.state as ours

    out = io.StringIO()
    show("the consensus rule ... changes", UserWarning, ours.__file__, 2, out)  # raised in labeltrace: its form
    show("a torch warning", UserWarning, "/x/site-packages/torch/nn/modules/module.py", 2, out)
    assert out.getvalue() == "warning: the consensus rule ... changes\n" and seen[-1] is UserWarning


def test_hf_integer_scalars_without_class_label_names_are_integers() -> None:
    import torch

    ims = [np.full((4, 4), v, np.uint8) for v in range(4)]
    fake = _FakeHF(ims, [0, 0, 1, 1], ["x", "y"])
    fake.features = {}
    for r in fake.rows:
        r["label"] = torch.tensor(r["label"])
    assert from_hf(fake).classes == ("0", "1")
    assert from_hf(fake, classes=["cat", "dog"]).labels.tolist() == [0, 0, 1, 1]


def test_class_folders_in_two_letter_cases_are_read_as_two_classes_with_a_warning(tmp_path: Path) -> None:
    """The folder reader says what the manifest reader says of 'benign' / 'Benign' labels."""
    for cls in ("A", "a", "b"):
        for k in range(2):
            _png(tmp_path / cls / f"{k}.png", 10 * k)
    with pytest.warns(DataWarning, match=r"differ only in letter case .*: A / a; if each pair is one class"):
        ds = from_folder(tmp_path)
    assert list(ds.classes) == ["A", "a", "b"]


def test_class_folders_that_write_one_name_two_ways_are_refused(tmp_path: Path) -> None:
    """'café' as a macOS copy leaves it (NFD) beside 'café' (NFC) were two classes, silently; the same
    labels in a manifest are refused."""
    for cls in (unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café"), "tea"):
        for k in range(2):
            _png(tmp_path / cls / f"{k}.png", 10 * k)
    with pytest.raises(DataError, match=r"write one class name two ways.*'cafe\\u0301' / 'caf\\xe9'.*merge each pair"):
        from_folder(tmp_path)


def test_integer_codes_with_gaps_are_told_to_be_a_class_list(tmp_path: Path) -> None:
    """Labels 0, 1 and 10 (codes, some retired) were refused as classes '2' to '9' 'with fewer than 2
    samples', told to leave out 'its name in the class list' that no one had written."""
    paths = _images(tmp_path, 12)
    (tmp_path / "m.csv").write_text("path,label\n" + "".join(f"{p},{lab}\n" for p, lab in
                                                             zip(paths, ["0", "1", "10"] * 4, strict=True)))
    with pytest.raises(DataError, match=r"fewer than 2 samples: '2' \(0\), '3' \(0\).*'9' \(0\): integer labels are class positions .*from 0 to 10.*classes\.txt"):
        from_manifest(tmp_path / "m.csv")
    (tmp_path / "classes.txt").write_text("0\n1\n10\n")
    assert from_manifest(tmp_path / "m.csv").classes == ("0", "1", "10")


def test_class_folders_that_write_one_number_two_ways_are_two_classes_with_a_warning(tmp_path: Path) -> None:
    """Folders '1' and '01' (two exports merged) were two classes without a word, where the same
    labels in a manifest are refused: a folder has no class list to say they are meant."""
    for cls in ("1", "01", "007", "7", "2"):
        for k in range(2):
            _png(tmp_path / cls / f"{k}.png", 10 * k)
    with pytest.warns(DataWarning, match=r"write one number two ways .*: '007' / '7', '01' / '1'; .*merge"):
        assert from_folder(tmp_path).classes == ("007", "01", "1", "2", "7")


def test_class_folders_of_compatibility_forms_are_two_classes_with_a_warning(tmp_path: Path) -> None:
    """The glyphs of a character dataset ('2' and '\u00b2', 'カ' and 'ｶ') may be classes of their own:
    the review of the first refusal found them refused with no way around it (a folder has no
    class list to say so)."""
    for cls in ("2", "\u00b2", "tea"):
        for k in range(2):
            _png(tmp_path / cls / f"{k}.png", 10 * k)
    with pytest.warns(DataWarning, match=r"differ only in Unicode compatibility forms.*'2' / '\\xb2'"):
        assert from_folder(tmp_path).classes == ("2", "tea", "\u00b2")


def test_a_pq_manifest_is_data_as_the_refusal_beside_it_says(tmp_path: Path) -> None:
    """A folder of images beside labels.pq was told to scan labels.pq, which the CLI then refused."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for k in range(4):
        _png(tmp_path / "images" / f"{k}.png", 40 * k)
    pq.write_table(pa.table({"path": [f"images/{k}.png" for k in range(4)], "label": ["a", "a", "b", "b"]}),
                   tmp_path / "labels.pq")
    with pytest.raises(DataError, match=r"a manifest beside: labels\.pq; .*labeltrace scan .*labels\.pq"):
        _load([str(tmp_path)])
    ds, origin = _load([str(tmp_path / "labels.pq")])
    assert ds.classes == ("a", "b") and origin["kind"] == "manifest"


def test_8_and_16_bit_files_mixed_are_named(tmp_path: Path) -> None:
    """Two exports of one X-ray set, 8-bit PNGs and 12-bit values in 16-bit PNGs: the 16-bit ones
    reached the model at a sixteenth of the brightness, silently (the model answered one class).
    A 16-bit file that uses its range is read as bright as an 8-bit one: no warning."""
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "d" / c).mkdir(parents=True)
        for k in range(3):
            pix = rng.integers(0, 256, (6, 6))
            Image.fromarray(pix.astype(np.uint8)).save(tmp_path / "d" / c / f"{k}.png")
            Image.fromarray((pix * 16).astype(np.uint16)).save(tmp_path / "d" / c / f"{k}_12bit.png")
    with pytest.warns(UserWarning, match=r"6 of 12 images .*are 16-bit files whose brightest pixel is at most 50% "
                                         r"of their range \(6%, median.*a/0_12bit.png"):  # fmt: skip
        from_folder(tmp_path / "d")
    for f in (tmp_path / "d").rglob("*.png"):
        if "12bit" not in f.name:
            f.unlink()
    with pytest.warns(UserWarning, match=r"every image .* is a 16-bit file, as dim as 12-bit data \(the brightest "
                                         r"pixel at 6% of the range, median\).*a pretrained backbone"):  # fmt: skip
        assert len(from_folder(tmp_path / "d")) == 6  # all 16-bit: one scale, but near black for a backbone
    for f in (tmp_path / "d").rglob("*.png"):  # 14-bit data alone: read alike, unsaid
        Image.fromarray(np.asarray(Image.open(f)) * 4).save(f)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(from_folder(tmp_path / "d")) == 6
    for f in (tmp_path / "d").rglob("*.png"):
        Image.fromarray(np.asarray(Image.open(f)) // 4).save(f)  # 12-bit again
    Image.fromarray(np.full((6, 6), 60000, np.uint16)).save(tmp_path / "d" / "a" / "full.png")
    Image.fromarray(np.full((6, 6), 200, np.uint8)).save(tmp_path / "d" / "b" / "eight.png")
    with pytest.warns(UserWarning, match=r"6 of 8 images"):  # the dim ones named, not the full-range one
        from_folder(tmp_path / "d")


def _png16_rgb(path: Path, a: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG (Pillow writes none)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    h, w, _ = a.shape
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))  # fmt: skip


@pytest.mark.parametrize("kind", ["14-bit gray", "12-bit colour"])
def test_dim_16_bit_files_beside_8_bit_ones_are_named_at_14_bits_and_in_colour(tmp_path: Path, kind: str) -> None:
    """14-bit data in 16-bit files (a fourth as bright as the 8-bit files beside them) was not
    warned of, nor 16-bit colour PNGs, which Pillow reads as 8-bit RGB (their high byte: 12-bit data
    came as values 0..15 of 255) and the depth check took for 8-bit files."""
    rng = np.random.default_rng(1)
    for c in ("a", "b"):
        (tmp_path / "d" / c).mkdir(parents=True)
        for k in range(3):
            pix = rng.integers(0, 256, (6, 6, 3))
            Image.fromarray(pix.astype(np.uint8)).save(tmp_path / "d" / c / f"{k}.png")
            if kind == "14-bit gray":
                Image.fromarray((pix[..., 0] * 64).astype(np.uint16)).save(tmp_path / "d" / c / f"{k}_deep.png")
            else:
                _png16_rgb(tmp_path / "d" / c / f"{k}_deep.png", (pix * 16).astype(np.uint16))
    with pytest.warns(UserWarning, match=r"6 of 12 images .*are 16-bit files whose brightest pixel is at most 50% "
                                         r"of their range \((2[45]|6)%, median.*a/0_deep.png"):  # fmt: skip
        from_folder(tmp_path / "d")


def test_16_bit_files_alone_some_dim_some_bright_are_no_mixed_depths(tmp_path: Path) -> None:
    """Once a dim 16-bit file counted as a sign of 12-bit data, the bright 16-bit files of the same
    set were taken for 8-bit ones (their depth not read) and the set was warned of as two exports."""
    rng = np.random.default_rng(2)
    for c in ("a", "b"):
        (tmp_path / "d" / c).mkdir(parents=True)
        for k in range(6):
            top = 0.4 if k % 2 else 0.95
            pix = (rng.random((6, 6)) * top * 65535).astype(np.uint16)
            pix[0, 0] = int(top * 65535)
            Image.fromarray(pix).save(tmp_path / "d" / c / f"{k}.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(from_folder(tmp_path / "d")) == 12


def test_images_with_see_through_pixels_are_named(tmp_path: Path) -> None:
    """An X-ray saved with its white as the transparent colour read its brightest pixels black, and
    an RGBA image's see-through pixels dark, unsaid (composited on black, as documented)."""
    rng = np.random.default_rng(4)
    for c in ("a", "b"):
        (tmp_path / "d" / c).mkdir(parents=True)
        for k in range(3):
            Image.fromarray(rng.integers(0, 255, (6, 6)).astype(np.uint8)).save(tmp_path / "d" / c / f"{k}.png")
    xray = rng.integers(0, 256, (6, 6)).astype(np.uint8)
    xray[0, 0] = 255
    Image.fromarray(xray).save(tmp_path / "d" / "a" / "keyed.png", transparency=255)
    opaque = np.dstack([rng.integers(0, 256, (6, 6, 3)), np.full((6, 6), 255)]).astype(np.uint8)
    Image.fromarray(opaque, mode="RGBA").save(tmp_path / "d" / "b" / "opaque.png")  # alpha, all opaque: fine
    with pytest.warns(UserWarning, match=r"1 of 8 images .* have pixels less than opaque .*: a/keyed.png$"):
        ds = from_folder(tmp_path / "d")
    assert any("a/keyed.png" in n for n in ds.notes)


def test_a_float_array_a_hair_over_one_is_said_as_it_is() -> None:
    """Pixels of 1 + 1e-9 (float64 arithmetic) were refused as 'values run from 1 to 1; 0..255 stored as
    float? Pass images / 255' — a range inside [0, 1] and a cure for another problem."""
    from labeltrace.data import from_arrays

    x = np.full((3, 8, 8), 0.5)
    x[1, 0, 0] = 1 + 1e-9
    with pytest.raises(DataError, match=r"not so for samples 1 \(values run from 0\.5 to 1\.000000001\)$"):
        from_arrays(x, np.array([0, 1, 0]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint8, np.uint16, np.bool_])
def test_no_images_say_the_dataset_is_empty_whatever_their_dtype(dtype: Any) -> None:
    """from_arrays(np.zeros((0, 8, 8)), ...) said numpy's 'cannot reshape array of size 0' for float
    images (their range check), where uint8 said 'the dataset is empty'."""
    from labeltrace.data import from_arrays

    with pytest.raises(DataError, match=r"^the dataset is empty$"):
        from_arrays(np.zeros((0, 8, 8), dtype), np.zeros(0, int))


def test_the_unread_files_warning_says_how_labeltrace_scan_reads_them(tmp_path: Path) -> None:
    """The warning said only "pass extensions=[...] to read them": a from_folder argument that
    `labeltrace scan` has no flag for, so a CLI user was told a way in they could not take; a
    manifest (--labels) lists any file, and reads a JPEG under another extension."""
    from PIL import Image

    from labeltrace.data import from_manifest

    for c in ("cat", "dog"):
        for k in range(2):
            _png(tmp_path / "d" / c / f"{k}.png", k)
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(tmp_path / "d" / "cat" / "2.jfif", format="JPEG")
    with pytest.warns(UserWarning, match=r"cat/2\.jfif; .*labeltrace scan .*--labels") as said:
        from_folder(tmp_path / "d")
    assert "extensions=[...]" in str(said[0].message)  # the Python way in stays named
    rows = [f"{c}/{k}.{'jfif' if k == 2 else 'png'},{c}" for c in ("cat", "dog") for k in range(3 if c == "cat" else 2)]
    (tmp_path / "d" / "m.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    assert from_manifest(tmp_path / "d" / "m.csv").load(2).shape == (8, 8, 3)  # the manifest's way reads it


def test_a_label_that_is_a_listed_class_in_another_unicode_form_says_so(tmp_path: Path) -> None:
    """The manifest's NFD 'café' against the classes file's NFC one read 'unknown labels ... café',
    both sides looking the same (an audit's finding); an empty or missing classes file said
    'classes are )' or Python's [Errno 2]."""
    p = _images(tmp_path, 4)
    nfd, nfc = unicodedata.normalize("NFD", "café"), unicodedata.normalize("NFC", "café")
    (tmp_path / "m.csv").write_text("path,label\n" + "".join(f"{s},{nfd if k % 2 else 'dog'}\n"
                                                             for k, s in enumerate(p)), encoding="utf-8")  # fmt: skip
    (tmp_path / "c.txt").write_text(f"{nfc}\ndog\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"unknown labels .*; 'cafe\\u0301' is the class 'caf\\xe9' written another way "
                                         r"\(another Unicode form"):
        _load([str(tmp_path / "m.csv"), "--classes", str(tmp_path / "c.txt")])
    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"empty\.txt: no class names in the classes file"):
        _load([str(tmp_path / "m.csv"), "--classes", str(tmp_path / "empty.txt")])
    with pytest.raises(DataError, match=r"nofile\.txt: no such classes file; give a text file"):
        _load([str(tmp_path / "m.csv"), "--classes", str(tmp_path / "nofile.txt")])


def test_a_manifests_column_flags_beside_a_folder_or_an_npz_are_refused(tmp_path: Path) -> None:
    """--label-column on a folder, --id-column on an .npz were ignored, silently (an audit's finding),
    where --group-column, --truth-column and --classes are refused."""
    _png(tmp_path / "d" / "a" / "0.png", 1)
    _png(tmp_path / "d" / "b" / "0.png", 2)
    np.savez(tmp_path / "x.npz", train_images=np.zeros((4, 8, 8), np.uint8), train_labels=np.array([0, 1, 0, 1]))
    with pytest.raises(ValueError, match=r"^--label-column names a manifest's column; DATA here is not a manifest"):
        _load([str(tmp_path / "d"), "--label-column", "y"])
    with pytest.raises(ValueError, match=r"^--path-column and --id-column name a manifest's column"):
        _load([str(tmp_path / "x.npz"), "--id-column", "k", "--path-column", "file"])
    with pytest.raises(ValueError, match=r"^--id-column names"):
        _load(["--example", "digits", "--id-column", "k"])
    assert len(_load([str(tmp_path / "x.npz"), "--label-column", "label"])[0]) == 4  # the default, named: no harm


def test_a_manifest_at_the_root_of_class_folders_is_said_not_read(tmp_path: Path) -> None:
    """A labels.csv relabelling the images, saved at the root of a folder of two classes, was
    ignored without a word (an audit's finding; with fewer than two class folders it is refused)."""
    for c in ("cat", "dog"):
        for k in range(2):
            _png(tmp_path / c / f"{k}.png", 40 * k + len(c))
    (tmp_path / "labels.csv").write_text("path,label\n" + "".join(f"cat/{k}.png,dog\n" for k in range(2)))
    with pytest.warns(DataWarning, match=r"the labels are the class folders'; labels\.csv beside them is not read .*"
                                         r"labeltrace scan .*labels\.csv\) or as --labels"):
        ds = from_folder(tmp_path)
    assert ds.labels.tolist() == [0, 0, 1, 1]


def test_a_label_with_an_invisible_character_and_no_twin_is_warned_of() -> None:
    from labeltrace.data.validate import parse_labels

    with pytest.warns(DataWarning, match=r"labels with an invisible character are read as written: 'dog\\xad' \(row 3\)"):
        _, classes = parse_labels(["cat", "cat", "dog\u00ad", "dog\u00ad"], None, row_name=lambda k: f"row {k + 1}")
    assert classes == ("cat", "dog\u00ad")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # joiners spell words in some scripts: not warned of
        parse_labels(["\u0645\u06cc\u200c\u0631\u0648\u062f", "x", "x", "\u0645\u06cc\u200c\u0631\u0648\u062f"], None,
                     row_name=str)


def test_hf_images_of_a_torch_formatted_dataset_and_unformatted_arrays() -> None:
    """ds.with_format('torch') hands an Image feature over as a (C, H, W) tensor, refused as
    'unsupported image value of type Tensor'; an Array3D column read without a format as nested
    lists, refused the same way, naming nothing to do (a models audit's finding)."""
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    rng = np.random.default_rng(0)
    ims = [Image.fromarray(rng.integers(0, 255, (8, 9, 3), dtype=np.uint8)) for _ in range(6)]
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b", "c"])})
    ds = datasets.Dataset.from_dict({"image": ims, "label": [0, 1, 2, 0, 1, 2]}, features=feats)
    plain, torch_formatted = from_hf(ds), from_hf(ds.with_format("torch"))
    for i in range(6):
        np.testing.assert_array_equal(torch_formatted.load(i), plain.load(i))
    arrays = datasets.Dataset.from_dict(
        {"image": [np.asarray(im) for im in ims], "label": [0, 1, 2, 0, 1, 2]},
        features=datasets.Features({"image": datasets.Array3D((8, 9, 3), "uint8"), "label": feats["label"]}))
    with pytest.raises(DataError, match=r"nested lists .* pixel type is lost: hand the images over as uint8"):
        from_hf(arrays)


def test_a_tiff_stack_is_named_as_read_at_its_first_frame(tmp_path: Path) -> None:
    """A volume saved as a TIFF stack was scanned as its first slice, unsaid."""
    rng = np.random.default_rng(3)
    for c in ("a", "b"):
        (tmp_path / "d" / c).mkdir(parents=True)
        for k in range(3):
            Image.fromarray(rng.integers(0, 256, (6, 6)).astype(np.uint8)).save(tmp_path / "d" / c / f"{k}.tif")
    slices = [Image.fromarray(rng.integers(0, 256, (6, 6)).astype(np.uint8)) for _ in range(4)]
    slices[0].save(tmp_path / "d" / "a" / "vol.tif", save_all=True, append_images=slices[1:])
    with pytest.warns(UserWarning, match=r"1 of 7 images .* are TIFF files of several frames .*: a/vol.tif \(4 frames\)"):
        ds = from_folder(tmp_path / "d")
    assert any("a/vol.tif (4 frames)" in n for n in ds.notes)
    (tmp_path / "d" / "a" / "vol.tif").unlink()  # a page and its reduced copy (a thumbnail): no stack
    page = Image.fromarray(rng.integers(0, 256, (6, 6)).astype(np.uint8))
    page.save(tmp_path / "d" / "a" / "thumb.tif", save_all=True, append_images=[page.resize((3, 3))])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(from_folder(tmp_path / "d")) == 7
