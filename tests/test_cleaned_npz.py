"""A run scanned from an .npz, reviewed, exported as an .npz again and scanned again: the images the
review kept, their cleaned labels, their first ids, the split's other arrays and the other splits."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
from runfactory import make_run

from labeltrace.cli import build_parser, main
from labeltrace.cli_data import _load_dataset
from labeltrace.export.cleaned import export_labels
from labeltrace.relabel.earlier import settled_before
from labeltrace.relabel.runstore import run_store
from labeltrace.rundir import open_run

N = 40
FLAGS = ["--detector", "sei", "--runs", "1", "--epochs", "1", "--model", "small-cnn", "--quiet"]


def _npz(path: Path) -> dict[str, np.ndarray]:
    """MedMNIST's layout: (N, 1) labels, a val split; class 2 has two images (rows 2 and 3)."""
    rng = np.random.default_rng(0)
    labels = np.array([0, 1, 2, 2, *(k % 2 for k in range(N - 4))], dtype=np.uint8)[:, None]
    arrays = {
        "train_images": rng.integers(0, 255, (N, 12, 12), dtype=np.uint8),
        "train_labels": labels,
        "train_site": np.arange(N) % 3,  # one row per image: follows the kept images
        "val_images": rng.integers(0, 255, (24, 12, 12), dtype=np.uint8),
        "val_labels": (np.arange(24) % 3).astype(np.uint8)[:, None],
    }
    np.savez_compressed(path, **arrays)
    return arrays


def test_an_npz_run_exports_the_npz_the_next_scan_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _npz(tmp_path / "data.npz")
    assert main(["scan", str(tmp_path / "data.npz"), "--out", str(tmp_path / "r1"), *FLAGS]) == 0
    st = run_store(open_run(tmp_path / "r1"))
    st.add(0, "1", reviewer="ada")  # relabelled
    st.add(5, "exclude", kind="exclude", reviewer="ada")  # of no class: left out
    st.add(2, "0", reviewer="ada")  # class 2 emptied: left out of the class list
    st.add(3, "1", reviewer="ada")
    with pytest.raises(ValueError, match="is the original .npz; write the cleaned labels elsewhere"):
        export_labels(tmp_path / "r1", tmp_path / "data.npz")
    np.testing.assert_array_equal(np.load(tmp_path / "data.npz")["train_labels"], src["train_labels"])
    capsys.readouterr()
    out = tmp_path / "clean.npz"
    assert main(["review", str(tmp_path / "r1"), "--export", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"wrote {out} and {tmp_path / 'clean.csv'}" in said
    assert f"1 sample excluded as of no class: left out of {out}; listed in" in said  # not kept as -1
    cmd = next(ln for ln in said.splitlines() if ln.startswith("to scan with the cleaned labels: "))
    words = shlex.split(cmd.split(": ", 1)[1])
    assert words[:3] == ["labeltrace", "scan", str(out)] and "--split" not in words
    assert words[words.index("--classes") + 1] == str(tmp_path / "clean.classes.txt")
    assert (tmp_path / "clean.classes.txt").read_text() == "0\n1\n"

    kept = [i for i in range(N) if i != 5]
    with np.load(out) as z:
        assert sorted(z.files) == sorted([*src, "train_ids", "train_review_decision", "train_review_status"])
        np.testing.assert_array_equal(z["train_images"], src["train_images"][kept])
        np.testing.assert_array_equal(z["train_site"], src["train_site"][kept])
        expect = src["train_labels"][kept].astype(np.int64)
        expect[[0, 2, 3]] = [[1], [0], [1]]  # rows 0, 2, 3 of the kept images are images 0, 2, 3
        np.testing.assert_array_equal(z["train_labels"], expect)
        assert z["train_labels"].shape == (N - 1, 1)
        assert z["train_ids"].tolist() == [f"train:{i}" for i in kept]
        for key in ("val_images", "val_labels"):
            np.testing.assert_array_equal(z[key], src[key])

    args = build_parser().parse_args([*words[1:]])  # the printed command, as the scan reads it
    assert args.model == "small-cnn" and args.detector == "sei" and args.out == "NEW_RUN_DIR"
    ds, origin = _load_dataset(args)
    assert ds.classes == ("0", "1") and ds.ids == tuple(f"train:{i}" for i in kept)
    assert ds.labels[:4].tolist() == [1, 1, 0, 1] and origin["kind"] == "npz"
    assert main(["scan", str(out), "--classes", str(tmp_path / "clean.classes.txt"), "--out", str(tmp_path / "r2"),
                 *FLAGS]) == 0  # fmt: skip
    r2 = open_run(tmp_path / "r2")
    assert r2.column("external_id").tolist()[:6] == ["train:0", "train:1", "train:2", "train:3", "train:4", "train:6"]
    settled, note = settled_before(r2)  # round 2's queue: what round 1 settled comes last
    assert settled is not None and np.flatnonzero(settled).tolist() == [0, 2, 3] and note is None

    run_store(r2).add(1, "0", reviewer="bob")  # round 2, exported: round 1's review arrays renamed _1
    assert main(["review", str(tmp_path / "r2"), "--export", str(tmp_path / "clean2.npz")]) == 0
    with np.load(tmp_path / "clean2.npz") as z:
        assert z["train_review_status"][:4].tolist() == ["", "consensus", "", ""]
        assert z["train_review_status_1"][:4].tolist() == ["consensus", "", "consensus", "consensus"]
        assert z["train_review_decision_1"][0] == "1" and z["train_ids"][4] == "train:4"


def test_a_split_s_npy_export_is_told_of_the_npz_whose_command_names_the_split(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    src = _npz(tmp_path / "data.npz")
    assert main(["scan", str(tmp_path / "data.npz"), "--split", "val", "--out", str(tmp_path / "r"), *FLAGS]) == 0
    run_store(open_run(tmp_path / "r")).add(0, "2", reviewer="ada")
    capsys.readouterr()
    assert main(["review", str(tmp_path / "r"), "--export", str(tmp_path / "clean.npy")]) == 0
    said = capsys.readouterr().out
    assert (f"to scan with the cleaned labels: labeltrace review {tmp_path / 'r'} --export {tmp_path / 'clean.npz'} "
            "writes the scanned .npz again") in said  # fmt: skip
    assert np.load(tmp_path / "clean.npy").tolist()[:2] == [2, 1]
    assert main(["review", str(tmp_path / "r"), "--export", str(tmp_path / "clean.npz")]) == 0
    cmd = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("to scan with the cleaned labels: "))
    words = shlex.split(cmd.split(": ", 1)[1])
    assert words[words.index("--split") + 1] == "val"
    with np.load(tmp_path / "clean.npz") as z:
        assert z["val_labels"][:2].ravel().tolist() == [2, 1] and z["val_ids"][0] == "val:0"
        for key in ("train_images", "train_labels", "train_site"):  # the other split: as it was
            np.testing.assert_array_equal(z[key], src[key])


def test_an_npz_export_of_a_run_not_scanned_from_an_npz_is_refused(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=2, seed=3, with_files=False)
    with pytest.raises(ValueError, match=r"an \.npz of cleaned labels is written for a run scanned from an \.npz"):
        export_labels(rd, tmp_path / "clean.npz")
    assert not (tmp_path / "clean.npz").exists() and not (tmp_path / "clean.csv").exists()


def test_an_npz_s_ids_array_names_its_images_and_duplicates_are_refused(tmp_path: Path) -> None:
    from labeltrace.data import from_npz
    from labeltrace.data.errors import DataError

    imgs, labels = np.zeros((4, 8, 8), np.uint8), np.array([0, 1, 0, 1])
    np.savez(tmp_path / "a.npz", train_images=imgs, train_labels=labels, train_ids=np.array(["a", "b", "c", "d"]))
    assert from_npz(tmp_path / "a.npz").ids == ("a", "b", "c", "d")
    np.savez(tmp_path / "b.npz", train_images=imgs, train_labels=labels, train_ids=np.array(["a", "b", "a", "d"]))
    with pytest.raises(DataError, match=r"b\.npz \(train_images, train_labels\): duplicate ids: 'a'"):
        from_npz(tmp_path / "b.npz")
    # bytes ids and MedMNIST's (N, 1) shape: read as the text and the number they are (they were the
    # ids "b'a'" and "[3]", silently; an audit's finding); other shapes and bytes not UTF-8 refused
    np.savez(tmp_path / "c.npz", train_images=imgs, train_labels=labels, train_ids=np.array([b"a", b"b", b"c", b"\xc3\xa9"]))
    assert from_npz(tmp_path / "c.npz").ids == ("a", "b", "c", "é")
    np.savez(tmp_path / "d.npz", train_images=imgs, train_labels=labels, train_ids=np.arange(3, 7)[:, None])
    assert from_npz(tmp_path / "d.npz").ids == ("3", "4", "5", "6")
    np.savez(tmp_path / "e.npz", train_images=imgs, train_labels=labels, train_ids=np.arange(8).reshape(4, 2))
    with pytest.raises(DataError, match=r"e\.npz: 'train_ids' must hold one id per image, shape \(N,\) or \(N, 1\), got \(4, 2\)"):
        from_npz(tmp_path / "e.npz")
    np.savez(tmp_path / "f.npz", train_images=imgs, train_labels=labels, train_ids=np.array([b"a", b"\xff", b"c", b"d"]))
    with pytest.raises(DataError, match=r"f\.npz: 'train_ids' holds bytes that are not UTF-8 text at rows 1;"):
        from_npz(tmp_path / "f.npz")


def test_an_npz_labelled_by_name_is_cleaned_by_name(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    names = np.array(["benign", "malignant"])[np.arange(N) % 2]
    np.savez(tmp_path / "d.npz", train_images=rng.integers(0, 255, (N, 12, 12), dtype=np.uint8), train_labels=names)
    assert main(["scan", str(tmp_path / "d.npz"), "--out", str(tmp_path / "r"), *FLAGS]) == 0
    run_store(open_run(tmp_path / "r")).add(0, "malignant", reviewer="ada")
    export_labels(tmp_path / "r", tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz") as z:
        assert z["train_labels"][:3].tolist() == ["malignant", "malignant", "benign"]
    assert (tmp_path / "c.classes.txt").read_text() == "benign\nmalignant\n"
