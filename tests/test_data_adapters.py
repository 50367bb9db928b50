"""Adapters: folder, manifest (CSV / Parquet), arrays / npz, Hugging Face; bad-input errors."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from labeltrace.data import (
    DataError,
    ImageDataset,
    from_arrays,
    from_folder,
    from_hf,
    from_manifest,
    from_npz,
    parse_labels,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _gray(path: Path, value: int, size: tuple[int, int] = (4, 4)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, value, dtype=np.uint8)).save(path)
    return path


def _rgb(path: Path, rgb: tuple[int, int, int], size: tuple[int, int] = (4, 4)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.tile(np.array(rgb, np.uint8), (*size, 1))).save(path)
    return path


def _corrupt_jpeg(path: Path) -> Path:
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:300])
    return path


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    _gray(root / "cat" / "a.png", 10)
    _gray(root / "cat" / "b.png", 20)
    _gray(root / "dog" / "c.png", 30)
    _gray(root / "dog" / "d.PNG", 40)
    _gray(root / "dog" / "e.png", 50)
    (root / "dog" / ".hidden.png").write_bytes(b"junk")
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / ".cache").mkdir()
    return root


# ---------------------------------------------------------------- folder
def test_folder_layout(folder: Path) -> None:
    ds = from_folder(folder, workers=2)
    assert ds.classes == ("cat", "dog")
    np.testing.assert_array_equal(ds.labels, [0, 0, 1, 1, 1])
    assert ds.sources == ("cat/a.png", "cat/b.png", "dog/c.png", "dog/d.PNG", "dog/e.png")
    assert ds.ids == ds.sources and ds.root == folder.resolve()
    assert ds.image_shape == (4, 4, 1) and ds.skipped == ()
    assert ds.path(2) == folder.resolve() / "dog" / "c.png"
    values = np.array([10, 20, 30, 40, 50], np.float32) / np.float32(255)
    assert ds.load(3)[0, 0, 0] == values[3]
    x = ds.materialize(workers=2)
    assert x.shape == (5, 1, 4, 4) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, 0, 0, 0], values)
    x8 = ds.materialize(dtype=np.uint8)
    np.testing.assert_array_equal(x8[:, 0, 0, 0], [10, 20, 30, 40, 50])
    b = ds.load_batch([4, 0], channels=3)
    assert b.shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(b[:, :, 1, 1], np.repeat(values[[4, 0], None], 3, axis=1))
    assert ds.index_of("dog/e.png") == 4
    with pytest.raises(IndexError):
        ds.load(5)
    assert ds.labels.flags.writeable is False


def test_folder_mixed_sizes_and_channels(tmp_path: Path) -> None:
    _gray(tmp_path / "a" / "1.png", 0, (4, 4))
    _gray(tmp_path / "a" / "2.png", 255, (6, 3))
    _rgb(tmp_path / "b" / "3.png", (255, 0, 0), (4, 4))
    _rgb(tmp_path / "b" / "4.png", (0, 0, 255), (4, 4))
    ds = from_folder(tmp_path)
    assert ds.image_shape is None
    with pytest.raises(DataError, match="different sizes"):
        ds.materialize()
    x = ds.materialize(size=5)  # channels default to 3: some images are RGB
    assert x.shape == (4, 3, 5, 5)
    np.testing.assert_allclose(x[1], 1.0, atol=1e-6)
    np.testing.assert_allclose(x[2, :, 2, 2], [1, 0, 0], atol=1e-6)
    g = ds.load_batch([2], size=5, channels=1)
    assert g[0, 0, 2, 2] == pytest.approx(0.299, abs=1e-6)


def test_folder_loose_files_warn_and_empty_class(tmp_path: Path) -> None:
    _gray(tmp_path / "a" / "1.png", 0)
    _gray(tmp_path / "a" / "2.png", 0)
    _gray(tmp_path / "stray.png", 0)
    (tmp_path / "b").mkdir()
    with pytest.warns(UserWarning, match="stray.png"), pytest.raises(DataError, match=r"'b' \(0\)"):
        from_folder(tmp_path)


def test_folder_class_with_one_sample(tmp_path: Path) -> None:
    _gray(tmp_path / "a" / "1.png", 0)
    _gray(tmp_path / "a" / "2.png", 0)
    _gray(tmp_path / "lonely" / "1.png", 0)
    with pytest.raises(DataError, match=r"fewer than 2 samples: 'lonely' \(1: lonely/1\.png\); a class needs 2"):
        from_folder(tmp_path)


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no class sub-folders"):
        from_folder(tmp_path)
    (tmp_path / "a").mkdir()
    with pytest.raises(DataError, match="empty"):
        from_folder(tmp_path)


def test_corrupt_jpeg_fail_and_skip(folder: Path) -> None:
    _corrupt_jpeg(folder / "dog" / "broken.jpg")
    with pytest.raises(DataError, match=r"dog/broken\.jpg") as err:
        from_folder(folder)
    assert "1 of 6" in str(err.value)
    ds = from_folder(folder, on_bad_image="skip")
    assert len(ds) == 5 and "dog/broken.jpg" not in ds.sources
    assert [s for s, _ in ds.skipped] == ["dog/broken.jpg"]
    assert ds.skipped[0][1]  # a reason is recorded
    # without up-front verification the corrupt file surfaces when loaded, named
    lazy = from_folder(folder, verify=False)
    k = lazy.index_of("dog/broken.jpg")
    assert lazy.shapes is None
    with pytest.raises(DataError, match="broken.jpg"):
        lazy.load(k)


def test_skip_leaving_a_single_sample_class_still_fails(tmp_path: Path) -> None:
    _gray(tmp_path / "a" / "1.png", 0)
    _gray(tmp_path / "a" / "2.png", 0)
    _gray(tmp_path / "b" / "1.png", 0)
    _corrupt_jpeg(tmp_path / "b" / "2.jpg")
    with pytest.raises(DataError, match="'b' \\(1: b/1\\.png\\).*; --on-bad-image skip left out 1 unreadable image: "
                                        "b/2\\.jpg \\("):  # why 'b' has one image: the skip, said (an audit's finding)
        from_folder(tmp_path, on_bad_image="skip")


def test_error_list_is_truncated(tmp_path: Path) -> None:
    for k in range(13):
        _gray(tmp_path / "a" / f"{k:02d}.png", 0)
        (tmp_path / "b").mkdir(exist_ok=True)
        (tmp_path / "b" / f"{k:02d}.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="and 3 more") as err:
        from_folder(tmp_path)
    assert "13 of 26" in str(err.value) and "b/00.png" in str(err.value)


# ---------------------------------------------------------------- manifest
def _images(root: Path) -> list[str]:
    names = []
    for k, v in enumerate([0, 50, 100, 150, 200, 250]):
        _gray(root / "img" / f"{k}.png", v)
        names.append(f"img/{k}.png")
    return names


def test_manifest_csv_names(tmp_path: Path) -> None:
    paths = _images(tmp_path)
    rows = ["path,label,id"] + [f"{p},{lab},s{k}" for k, (p, lab) in
                                enumerate(zip(paths, ["dog", "cat", "dog", "cat", "cat", "dog"]))]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    ds = from_manifest(tmp_path / "m.csv", id_column="id")
    assert ds.classes == ("cat", "dog")
    np.testing.assert_array_equal(ds.labels, [1, 0, 1, 0, 0, 1])
    assert ds.ids == ("s0", "s1", "s2", "s3", "s4", "s5") and ds.sources[0] == "img/0.png"
    assert ds.load(2)[0, 0, 0] == np.float32(100) / np.float32(255)
    # explicit classes fix the order
    ds2 = from_manifest(tmp_path / "m.csv", classes=["dog", "cat"])
    np.testing.assert_array_equal(ds2.labels, [0, 1, 0, 1, 1, 0])
    assert ds2.ids == ds.ids  # the `id` column is found without being named


def test_manifest_integer_labels_and_classes_txt(tmp_path: Path) -> None:
    paths = _images(tmp_path)
    text = "path,label\n" + "".join(f"{p},{k % 3}\n" for k, p in enumerate(paths))
    (tmp_path / "m.csv").write_text(text)
    ds = from_manifest(tmp_path / "m.csv")
    assert ds.classes == ("0", "1", "2")
    np.testing.assert_array_equal(ds.labels, [0, 1, 2, 0, 1, 2])
    (tmp_path / "classes.txt").write_text("zero\none\ntwo\n")
    ds = from_manifest(tmp_path / "m.csv")
    assert ds.classes == ("zero", "one", "two")
    np.testing.assert_array_equal(ds.labels, [0, 1, 2, 0, 1, 2])
    (tmp_path / "classes.txt").write_text("zero\none\n")
    with pytest.raises(DataError, match=r"row 3 \(img/2.png\) '2'"):
        from_manifest(tmp_path / "m.csv")


def test_manifest_parquet_names_and_ints(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    paths = _images(tmp_path)
    absolute = [str((tmp_path / p).resolve()) for p in paths[:2]] + paths[2:]
    names = ["b", "a", "b", "a", "b", "a"]
    pq.write_table(pa.table({"file": absolute, "y": names}), tmp_path / "m.parquet")
    ds = from_manifest(tmp_path / "m.parquet", path_column="file", label_column="y")
    assert ds.classes == ("a", "b")
    np.testing.assert_array_equal(ds.labels, [1, 0, 1, 0, 1, 0])
    assert ds.sources[0] == Path(absolute[0]).as_posix() and ds.path(0) == Path(absolute[0])
    pq.write_table(pa.table({"path": paths, "label": pa.array([3, 0, 3, 0, 3, 0], pa.int64())}),
                   tmp_path / "n.parquet")
    pq.write_table(pa.table({"path": paths, "label": pa.array([1, 0, 1, 0, 1, 0], pa.int64())}),
                   tmp_path / "i.parquet")
    ds = from_manifest(tmp_path / "i.parquet", classes=["neg", "pos"])
    assert ds.classes == ("neg", "pos")
    np.testing.assert_array_equal(ds.labels, [1, 0, 1, 0, 1, 0])
    # class 1 and 2 have no samples -> refused, naming them
    with pytest.raises(DataError, match="'1' \\(0\\), '2' \\(0\\)"):
        from_manifest(tmp_path / "n.parquet")
    with pytest.raises(DataError, match="'x' \\(0\\), 'y' \\(0\\)"):
        from_manifest(tmp_path / "n.parquet", classes=["w", "x", "y", "z"])


def test_manifest_separate_root(tmp_path: Path) -> None:
    paths = _images(tmp_path / "data")
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "m.csv").write_text(
        "path,label\n" + "".join(f"{p},{k % 2}\n" for k, p in enumerate(paths)))
    ds = from_manifest(tmp_path / "meta" / "m.csv", root=tmp_path / "data")
    assert ds.root == (tmp_path / "data").resolve() and ds.kind == "files"
    assert ds.path(1) == (tmp_path / "data").resolve() / "img" / "1.png"
    assert ds.load(1)[0, 0, 0] == np.float32(50) / np.float32(255)
    with pytest.raises(DataError, match="img/0.png"):
        from_manifest(tmp_path / "meta" / "m.csv")


def test_manifest_unknown_label_names_rows(tmp_path: Path) -> None:
    paths = _images(tmp_path)
    labels = ["cat", "dog", "dgo", "cat", "dog", "cta"]
    (tmp_path / "m.csv").write_text(
        "path,label\n" + "".join(f"{p},{lab}\n" for p, lab in zip(paths, labels)))
    with pytest.raises(DataError, match=r"row 3 \(img/2.png\) 'dgo', row 6 \(img/5.png\) 'cta'"):
        from_manifest(tmp_path / "m.csv", classes=["cat", "dog"])


def test_manifest_missing_file_fail_and_skip(tmp_path: Path) -> None:
    paths = _images(tmp_path) + ["img/missing.png"]
    labels = ["a", "b", "a", "b", "a", "b", "a"]
    (tmp_path / "m.csv").write_text(
        "id,path,label\n"
        + "".join(f"x{k},{p},{lab}\n" for k, (p, lab) in enumerate(zip(paths, labels))))
    with pytest.raises(DataError, match=r"img/missing\.png \(file not found\)"):
        from_manifest(tmp_path / "m.csv")
    with pytest.raises(DataError, match="missing.png"):
        from_manifest(tmp_path / "m.csv", verify=False)
    ds = from_manifest(tmp_path / "m.csv", id_column="id", on_bad_image="skip")
    assert len(ds) == 6 and ds.ids[-1] == "x5"
    assert ds.skipped == (("img/missing.png", "file not found"),)
    ds = from_manifest(tmp_path / "m.csv", id_column="id", on_bad_image="skip", verify=False)
    assert ds.skipped == (("img/missing.png", "file not found"),)


def test_skip_renumbers_and_keeps_external_ids(tmp_path: Path) -> None:
    paths = _images(tmp_path)
    _corrupt_jpeg(tmp_path / "img" / "bad.jpg")
    rows = [("r0", paths[0], "a"), ("r1", "img/bad.jpg", "b"), ("r2", paths[1], "b"),
            ("r3", paths[2], "a"), ("r4", paths[3], "b")]
    (tmp_path / "m.csv").write_text("id,path,label\n" + "".join(",".join(r) + "\n" for r in rows))
    ds = from_manifest(tmp_path / "m.csv", id_column="id", on_bad_image="skip")
    assert ds.ids == ("r0", "r2", "r3", "r4")
    np.testing.assert_array_equal(ds.labels, [0, 1, 0, 1])
    assert ds.load(1)[0, 0, 0] == np.float32(50) / np.float32(255)  # sample 1 is r2 = paths[1]
    assert ds.shapes is not None and ds.shapes.shape == (4, 3)


def test_manifest_duplicate_ids_and_empty_cells(tmp_path: Path) -> None:
    paths = _images(tmp_path)
    (tmp_path / "m.csv").write_text(
        "id,path,label\n" + "".join(f"{'dup' if k in (1, 4) else k},{p},{k % 2}\n"
                                    for k, p in enumerate(paths)))
    with pytest.raises(DataError, match=r"duplicate ids: 'dup' \(rows 2, 5\)"):
        from_manifest(tmp_path / "m.csv", id_column="id")
    (tmp_path / "e.csv").write_text("path,label\n" + f"{paths[0]},a\n{paths[1]},\n")
    with pytest.raises(DataError, match=r"missing 'label' in 1 row .*row 2 \(img/1\.png\) ''"):
        from_manifest(tmp_path / "e.csv")
    (tmp_path / "h.csv").write_text("path,label\n")
    with pytest.raises(DataError, match="empty"):
        from_manifest(tmp_path / "h.csv")
    with pytest.raises(DataError, match="missing columns"):
        from_manifest(tmp_path / "m.csv", label_column="class")


# ---------------------------------------------------------------- arrays / npz
def test_npz_medmnist_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 5, 5), dtype=np.uint8)
    labels = np.array([[0], [1], [1], [0], [1], [0]], dtype=np.uint8)
    np.savez(tmp_path / "m.npz", train_images=images, train_labels=labels,
             test_images=images[:2], test_labels=labels[:2])
    ds = from_npz(tmp_path / "m.npz")
    assert len(ds) == 6 and ds.classes == ("0", "1") and ds.image_shape == (5, 5, 1)
    np.testing.assert_array_equal(ds.labels, labels[:, 0])
    assert ds.sources[2] == "array:2" and ds.ids[2] == "train:2"
    np.testing.assert_array_equal(ds.materialize()[:, 0], images / np.float32(255))
    with pytest.raises(DataError, match="missing keys.*val_images"):
        from_npz(tmp_path / "m.npz", split="val")
    with pytest.raises(DataError, match="fewer than 2"):
        from_npz(tmp_path / "m.npz", split="test")


def test_from_arrays_validation() -> None:
    x = np.zeros((4, 3, 3, 3), np.float32)
    ds = from_arrays(x, ["b", "a", "b", "a"])
    assert ds.classes == ("a", "b") and ds.image_shape == (3, 3, 3) and ds.kind == "arrays"
    with pytest.raises(DataError, match="samples 2"):
        bad = x.copy()
        bad[2, 0, 0, 0] = 1.5
        from_arrays(bad, [0, 1, 0, 1])
    with pytest.raises(DataError, match="dtype int64"):
        from_arrays(np.zeros((4, 3, 3), np.int64), [0, 1, 0, 1])
    with pytest.raises(DataError, match="multi-label"):
        from_arrays(x, np.zeros((4, 2), np.int64))
    with pytest.raises(DataError, match="4 images but 3 labels"):
        from_arrays(x, [0, 1, 0])
    with pytest.raises(DataError, match="duplicate ids"):
        from_arrays(x, [0, 1, 0, 1], ids=["a", "b", "a", "c"])


def test_with_labels_and_subset() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (6, 2, 2), dtype=np.uint8)
    ds = from_arrays(x, [0, 1, 2, 0, 1, 2])
    flipped = ds.with_labels(np.array([1, 1, 2, 0, 1, 2]))
    np.testing.assert_array_equal(flipped.labels, [1, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(ds.labels, [0, 1, 2, 0, 1, 2])
    with pytest.raises(DataError):
        ds.with_labels(np.array([0, 1, 5, 0, 1, 2]))
    sub = ds.subset([5, 1])
    assert sub.ids == ("5", "1") and sub.sources == ("array:5", "array:1")
    np.testing.assert_array_equal(sub.load(0)[..., 0], x[5] / np.float32(255))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["ant", "bee", "cat", "dog"]), min_size=1, max_size=30))
def test_parse_labels_names_roundtrip(names: list[str]) -> None:
    labels, classes = parse_labels(names, None)
    assert list(classes) == sorted(set(names))
    assert [classes[k] for k in labels] == names


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=30), st.booleans())
def test_parse_labels_integers(ints: list[int], as_text: bool) -> None:
    ints = ints + list(range(max(ints) + 1))  # every position used: positions 0..K-1 with K <= N
    labels, classes = parse_labels([str(v) if as_text else v for v in ints], None)
    np.testing.assert_array_equal(labels, ints)
    assert classes == tuple(str(k) for k in range(max(ints) + 1))


@pytest.mark.skipif(not (SHARED / "medmnist" / "pneumoniamnist_modified.npz").is_file(),
                    reason="shared data not available")
def test_real_pneumoniamnist_npz() -> None:
    path = SHARED / "medmnist" / "pneumoniamnist_modified.npz"
    ds = from_npz(path, split="train")
    raw = np.load(path)["train_labels"]
    assert raw.shape == (3882, 1) and len(ds) == 3882 and ds.image_shape == (28, 28, 1)
    np.testing.assert_array_equal(ds.class_counts(), np.bincount(raw[:, 0]))
    assert ds.class_counts()[0] == 388


# ---------------------------------------------------------------- Hugging Face (optional)
@pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="datasets not installed")
def test_from_hf_tiny_dataset() -> None:
    import datasets

    arrays = [np.full((3, 3), v, np.uint8) for v in (0, 60, 120, 180, 240)]
    label = datasets.ClassLabel(names=["no", "yes"])
    features = datasets.Features(
        {"image": datasets.Image(), "label": label, "uid": datasets.Value("string")})
    hf = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(a) for a in arrays], "label": [1, 0, 1, 0, 1],
         "uid": ["u0", "u1", "u2", "u3", "u4"]}, features=features)
    ds = from_hf(hf, id_column="uid", workers=2)
    assert isinstance(ds, ImageDataset) and ds.classes == ("no", "yes") and ds.kind == "hf"
    np.testing.assert_array_equal(ds.labels, [1, 0, 1, 0, 1])
    assert ds.sources[3] == "hf:3" and ds.ids[3] == "u3" and ds.image_shape == (3, 3, 1)
    expected = np.array([0, 60, 120, 180, 240], np.float32) / np.float32(255)
    np.testing.assert_array_equal(ds.materialize()[:, 0, 1, 1], expected)
    with_none = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(a) if k != 2 else None for k, a in enumerate(arrays)],
         "label": [1, 0, 1, 0, 1]},
        features=datasets.Features({"image": datasets.Image(), "label": label}))
    with pytest.raises(DataError, match="hf:2"):
        from_hf(with_none)
    lazy = from_hf(with_none, verify=False)
    with pytest.raises(DataError, match="hf:2: image is missing"):
        lazy.load(2)
    ds = from_hf(with_none, on_bad_image="skip")
    assert ds.ids == ("0", "1", "3", "4") and ds.skipped[0][0] == "hf:2"
    np.testing.assert_array_equal(ds.load(2)[..., 0], arrays[3] / np.float32(255))


@pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="datasets not installed")
def test_from_hf_classes_in_another_order_keep_each_rows_class() -> None:
    """classes= listing a ClassLabel's names in another order swapped every label, silently (the
    values were taken as positions in classes=); names are looked up now. A list sharing no name
    with the ClassLabel renames its positions; a DatasetDict is named as one."""
    import datasets

    label = datasets.ClassLabel(names=["cat", "dog"])
    hf = datasets.Dataset.from_dict({"image": [np.zeros((2, 2), np.uint8)] * 4, "label": [0, 0, 1, 1]},
                                    features=datasets.Features({"image": datasets.Image(), "label": label}))
    ds = from_hf(hf, classes=["dog", "cat"])
    assert [ds.classes[i] for i in ds.labels] == ["cat", "cat", "dog", "dog"] and ds.classes == ("dog", "cat")
    ds = from_hf(hf, classes=["benign", "malignant"])
    assert [ds.classes[i] for i in ds.labels] == ["benign", "benign", "malignant", "malignant"]
    with pytest.raises(DataError, match=r"unknown labels.*'dog'"):
        from_hf(hf, classes=["cat", "bird"])
    with pytest.raises(DataError, match=r"one split of the DatasetDict, e\.g\. dataset\['train'\] \(its splits: 'train', 'test'\)"):
        from_hf(datasets.DatasetDict({"train": hf, "test": hf}))



@pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="datasets not installed")
def test_from_hf_names_a_corrupt_image_and_a_missing_id() -> None:
    """The datasets library decodes an Image cell itself: a corrupt one raised Pillow's error and
    on_bad_image="skip" did not skip it. A missing id became the id 'None'."""
    import io

    import datasets

    def png(v: int) -> bytes:
        b = io.BytesIO()
        Image.fromarray(np.full((4, 4), v, np.uint8)).save(b, "PNG")
        return b.getvalue()

    cells = [{"bytes": png(10 * k), "path": None} for k in range(6)]
    cells[3] = {"bytes": b"this is not an image", "path": None}
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"]),
                                  "uid": datasets.Value("string")})  # fmt: skip
    hf = datasets.Dataset.from_dict({"image": cells, "label": [0, 1] * 3, "uid": [f"u{k}" for k in range(6)]},
                                    features=features)  # fmt: skip
    with pytest.raises(DataError, match=r"hf:3 \(cannot decode image.*UnidentifiedImageError"):
        from_hf(hf)
    ds = from_hf(hf, on_bad_image="skip", id_column="uid")
    assert ds.ids == ("u0", "u1", "u2", "u4", "u5") and ds.skipped[0][0] == "hf:3"
    no_id = datasets.Dataset.from_dict({"image": [png(0)] * 4, "label": [0, 1] * 2, "uid": ["u0", None, "u2", "u3"]},
                                       features=features)  # fmt: skip
    with pytest.raises(DataError, match=r"missing ids in column 'uid' .* at rows 1"):
        from_hf(no_id, id_column="uid")



@pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="datasets not installed")
def test_from_hf_keeps_and_fingerprints_16_bit_rows_at_16_bits(tmp_path: Path) -> None:
    """16-bit rows were kept and fingerprinted at 8 bits, as uint16 arrays had been."""
    import datasets

    from labeltrace.models.inputs import pixels_fingerprint
    from labeltrace.run_source import source_bits

    def hf16(values: np.ndarray, tag: str) -> ImageDataset:
        files = []
        for k, x in enumerate(values):
            Image.fromarray(x).save(tmp_path / f"{tag}{k}.png")  # a 16-bit PNG (mode I;16)
            files.append(str(tmp_path / f"{tag}{k}.png"))
        hf = datasets.Dataset.from_dict({"image": files, "label": [0, 1] * (len(files) // 2)})
        return from_hf(hf.cast_column("image", datasets.Image()))

    v = (257 * np.random.default_rng(0).integers(0, 16, (4, 8, 8))).astype(np.uint16)
    ds = hf16(v, "a")
    assert source_bits(ds) == 16
    np.testing.assert_array_equal(np.rint(ds.load(1)[..., 0] * 65535), v[1])
    assert pixels_fingerprint(ds) != pixels_fingerprint(hf16(v + np.uint16(1), "b"))  # the same in 8 bits

def test_from_arrays_wants_one_id_per_image() -> None:
    """Extra ids were dropped silently (every id then paired with the wrong image); too few raised
    a bare IndexError."""
    x = np.zeros((4, 3, 3), np.uint8)
    with pytest.raises(DataError, match="5 ids for 4 images"):
        from_arrays(x, [0, 1, 0, 1], ids=["hdr", "a", "b", "c", "d"])
    with pytest.raises(DataError, match="3 ids for 4 images"):
        from_arrays(x, [0, 1, 0, 1], ids=["a", "b", "c"])
    with pytest.raises(DataError, match=r"missing ids .* at rows 2"):
        from_arrays(x, [0, 1, 0, 1], ids=["a", "b", None, "d"])

# ---------------------------------------------------------------- DICOM in a folder (optional)
@pytest.mark.skipif(importlib.util.find_spec("pydicom") is None, reason="pydicom not installed")
def test_folder_with_dicom(tmp_path: Path) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for k in range(2):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            d = Dataset()
            d.file_meta = meta
            d.SOPClassUID = SecondaryCaptureImageStorage
            d.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
            d.Rows = d.Columns = 4
            d.SamplesPerPixel, d.PhotometricInterpretation = 1, "MONOCHROME2"
            d.BitsAllocated, d.BitsStored, d.HighBit, d.PixelRepresentation = 16, 16, 15, 0
            d.PixelData = (np.arange(16, dtype="<u2") * (k + 1)).tobytes()
            d.save_as(tmp_path / cls / f"{k}.dcm", enforce_file_format=True)
    ds = from_folder(tmp_path)
    assert len(ds) == 4 and ds.image_shape == (4, 4, 1)
    np.testing.assert_allclose(ds.load(0)[..., 0], np.arange(16).reshape(4, 4) / 15.0, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=8, max_size=200), st.integers(1, 250), st.integers(0, 2**31 - 1))
def test_stratified_subset_keeps_the_class_shares(labels: list[int], size: int, seed: int) -> None:
    from labeltrace.data.base import stratified_subset

    y = np.asarray(labels)
    counts = np.bincount(y, minlength=4)
    k = int((counts > 0).sum())
    if size < y.size and (counts[counts > 0].min() < 2 or min(size, y.size - size) < k):
        return  # scikit-learn refuses a split that cannot hold every class on both sides
    idx = stratified_subset(y, size, seed=seed)
    assert np.array_equal(idx, np.unique(idx)) and idx.min(initial=0) >= 0 and idx.max(initial=0) < y.size
    if size >= y.size:
        assert np.array_equal(idx, np.arange(y.size))
        return
    assert idx.size == size
    share = np.bincount(y[idx], minlength=4) / size
    assert np.abs(share - counts / y.size).max() <= 1.0 / size + 1e-9  # each class within one sample of its share
    assert np.array_equal(idx, stratified_subset(y, size, seed=seed))  # seeded


def test_a_broken_link_in_a_class_folder_is_reported_not_dropped(tmp_path: Path) -> None:
    for c in ("cat", "dog"):
        for k in range(3):
            _gray(tmp_path / c / f"{k}.png", 40 * k)
    (tmp_path / "cat" / "9.png").symlink_to(tmp_path / "cat" / "gone.png")
    with pytest.raises(DataError, match=r"cat/9\.png \(file not found\)"):
        from_folder(tmp_path)
    ds = from_folder(tmp_path, on_bad_image="skip")
    assert len(ds) == 6 and ds.skipped == (("cat/9.png", "file not found"),)
    assert len(from_folder(tmp_path, extensions=".png", on_bad_image="skip")) == 6  # one extension, a str


def test_a_file_name_that_is_not_utf8_is_named_before_any_training(tmp_path: Path) -> None:
    """Such an id loaded, and the scan failed only when it wrote its tables, after training."""
    for c in ("cat", "dog"):
        for k in range(3):
            _gray(tmp_path / c / f"{k}.png", 40 * k)
    try:
        os.rename(os.fsencode(tmp_path / "cat" / "0.png"), os.fsencode(tmp_path / "cat") + b"/\xe9.png")
    except OSError:
        pytest.skip("this file system refuses non-UTF-8 names")
    with pytest.raises(DataError, match=r"not valid UTF-8 text.*'cat/\\udce9\.png'"):
        from_folder(tmp_path)


def test_folder_reads_images_at_any_depth_below_a_class_folder(tmp_path: Path) -> None:
    """root/<class>/<patient>/<image>, a common medical layout: every image counts for its class
    (they were silently left out, and a class could look nearly empty)."""
    for rel in ("a/p1/0.png", "a/p1/1.png", "a/p2/2.png", "a/3.png", "b/p3/4.png", "b/p3/deep/5.png",
                "b/.hidden/6.png", "b/p4/.7.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((4, 4), 100, np.uint8)).save(tmp_path / rel)
    ds = from_folder(tmp_path)
    assert ds.classes == ("a", "b")
    assert sorted(ds.sources) == ["a/3.png", "a/p1/0.png", "a/p1/1.png", "a/p2/2.png", "b/p3/4.png", "b/p3/deep/5.png"]
    assert np.bincount(ds.labels).tolist() == [4, 2]


@pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="datasets not installed")
@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
@pytest.mark.parametrize("as_bytes", [False, True])
def test_from_hf_turns_a_non_square_tiff_at_orientation_5_to_8(tmp_path: Path, orientation: int,
                                                              as_bytes: bool) -> None:  # fmt: skip
    """datasets opens an Image cell's path with Pillow, and Pillow 13 scrambles a non-square TIFF
    opened by path at orientations 5-8 (stored size, values out of place); from bytes it does not."""
    import datasets

    a = (np.arange(12).reshape(3, 4) * 20).astype(np.uint8)
    shown = {5: a.T, 6: np.rot90(a, -1), 7: a[::-1, ::-1].T, 8: np.rot90(a, 1)}[orientation]  # EXIF 2.3
    f = tmp_path / "o.tif"
    Image.fromarray(a).save(f, tiffinfo={274: orientation})
    cell = {"bytes": f.read_bytes(), "path": None} if as_bytes else {"bytes": None, "path": str(f)}
    hf = datasets.Dataset.from_dict({"image": [cell] * 4, "label": [0, 1, 0, 1]},
                                    features=datasets.Features({"image": datasets.Image(),
                                                                "label": datasets.Value("int64")}))  # fmt: skip
    np.testing.assert_array_equal(np.rint(from_hf(hf).load(0)[..., 0] * 255), shown)


def test_a_reading_warning_is_said_at_the_callers_line_and_noted_again_on_a_second_read(tmp_path: Path) -> None:
    """Kept on the dataset (notes), the warning was said again from inside labeltrace: a filter on
    the caller's module no longer applied, and its line was the wrapper's."""
    import warnings

    from labeltrace.data.errors import DataWarning

    _gray(tmp_path / "a" / "1.png", 0)
    _gray(tmp_path / "a" / "2.png", 0)
    _gray(tmp_path / "b" / "1.png", 9)
    _gray(tmp_path / "b" / "2.png", 9)
    (tmp_path / "b" / "scan.tif.bak").write_text("a backup")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        first, again = from_folder(tmp_path), from_folder(tmp_path)
    said = [w for w in caught if issubclass(w.category, DataWarning)]
    assert said and all(w.filename == __file__ for w in said)
    assert first.notes == again.notes and "scan.tif.bak" in first.notes[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # the caller's filter still decides
        with pytest.raises(DataWarning, match="are not read"):
            from_folder(tmp_path)
