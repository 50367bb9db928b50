"""Groups of alike images (a patient's, a study's): the cross-fitted folds keep a group together
and a sample's nearest neighbours are found outside its group. A patient's second image, in
another fold with the same wrong label, backed that label: on 150 patients × 2 images with 15
wrong at patient level the default scan found 5 of 30 (17 in the same scan with the patients named)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labeltrace import data, rundir
from labeltrace.cli import main
from labeltrace.data.errors import DataError
from labeltrace.score.knn import knn_indices, knn_probs
from labeltrace.train.crossval import fold_ids, grouped_folds
from labeltrace.train.protocol import stratified_folds


def test_a_group_shares_a_fold_and_the_classes_spread() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat([f"p{i:03d}" for i in range(60)], rng.integers(1, 5, 60))
    y = (np.arange(groups.size) % 3 == 0).astype(int)
    folds = stratified_folds(y, 5, seed=1, groups=list(groups))
    for g in np.unique(groups):
        assert np.unique(folds[groups == g]).size == 1, g
    per_fold = np.bincount(folds, minlength=5)
    assert per_fold.min() > 0.6 * per_fold.mean()
    for c in (0, 1):  # every fold's training set holds every class, in about its share
        share = np.bincount(folds[y == c], minlength=5) / per_fold
        assert np.all(share > 0) and share.std() < 0.2
    assert np.array_equal(folds, stratified_folds(y, 5, seed=1, groups=list(groups)))  # seeded
    assert not np.array_equal(folds, stratified_folds(y, 5, seed=2, groups=list(groups)))
    assert np.array_equal(fold_ids(y, n_folds=5, seed=1, groups=list(groups)), folds)  # one split for both
    with pytest.raises(ValueError, match="3 groups cannot be split into 5 folds"):
        grouped_folds(np.array([0, 1, 0, 1, 0, 1]), 5, 0, ["a", "a", "b", "b", "c", "c"])


def test_neighbours_are_found_outside_the_group() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 6))
    groups = np.repeat(np.arange(10), 4).astype(str)
    x[1::4] = x[0::4] + 1e-3  # each group's first two images nearly the same
    nb = knn_indices(x, k=5, groups=groups)
    assert not (groups[nb] == groups[:, None]).any()
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = unit @ unit.T
    sim[groups[:, None] == groups[None, :]] = -np.inf  # brute force, the group masked
    want = np.argsort(-sim, axis=1, kind="stable")[:, :5]
    assert np.array_equal(nb, want)
    plain = knn_indices(x, k=5)
    assert (plain[0::4, 0] == np.arange(1, 40, 4)).all()  # without groups: the twin is the nearest
    y = np.arange(40) % 2
    assert np.allclose(knn_probs(x, y, num_classes=2, k=5, groups=groups).sum(1), 1)
    with pytest.raises(ValueError, match=r"k must be an int >= 1 and <= 36, got 37 \(N minus the largest group\)"):
        knn_indices(x, k=37, groups=groups)


def _manifest(root: Path, n_patients: int = 12, per: int = 2) -> Path:
    rng = np.random.default_rng(0)
    (root / "im").mkdir(parents=True, exist_ok=True)
    rows = ["path,label,patient"]
    for p in range(n_patients):
        c = p % 2
        base = rng.random((10, 10)) * 60 + 150 * c
        for v in range(per):
            Image.fromarray((base + rng.random((10, 10)) * 5).astype(np.uint8)).save(root / "im" / f"p{p}_{v}.png")
            rows.append(f"im/p{p}_{v}.png,{'ab'[c]},P{p}")
    (root / "m.csv").write_text("\n".join(rows) + "\n")
    return root / "m.csv"


def test_a_manifest_names_the_groups_and_refuses_a_missing_one(tmp_path: Path) -> None:
    m = _manifest(tmp_path)
    ds = data.from_manifest(m, group_column="patient")
    assert ds.groups is not None and ds.groups[:4] == ("P0", "P0", "P1", "P1")
    assert ds.subset([3, 0]).groups == ("P1", "P0") and ds.with_labels(ds.labels).groups == ds.groups
    assert data.from_manifest(m).groups is None
    with pytest.raises(DataError, match="--group-column 'site' is not a column of .*'patient'"):
        data.from_manifest(m, group_column="site")
    text = m.read_text()
    assert "im/p3_1.png,b,P3\n" in text
    m.write_text(text.replace("im/p3_1.png,b,P3\n", "im/p3_1.png,b,\n"))
    with pytest.raises(DataError, match=r"missing 'patient' in 1 row .*row 8 \(im/p3_1.png\)"):
        data.from_manifest(m, group_column="patient")


def test_a_scan_with_groups_keeps_them_in_its_folds_and_its_table(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    m = _manifest(tmp_path / "d", n_patients=16)
    args = ["scan", str(m), "--model", "small-cnn", "--epochs", "2", "--folds", "4", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "g"), "--group-column", "patient"]) == 0
    run = rundir.open_run(tmp_path / "g")
    groups, folds = run.column("group"), run.column("fold")
    for g in set(groups.tolist()):
        assert len(set(folds[groups == g].tolist())) == 1
    from labeltrace.export.rescan import rescan_command

    assert "--group-column patient" in (rescan_command(run, tmp_path / "clean.csv") or "")  # the next round too
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    plain = rundir.open_run(tmp_path / "plain")
    assert "group" not in plain.samples.column_names
    assert plain.meta["fingerprint"] != run.meta["fingerprint"]
    capsys.readouterr()
    assert main(["scan", str(tmp_path / "d"), "--out", str(tmp_path / "x"), "--group-column", "patient"]) == 2
    assert "--group-column names a manifest's column" in capsys.readouterr().err


def test_a_folder_of_patients_gives_its_groups(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    root = tmp_path / "d"
    for c, patients in (("benign", ("P1", "P2", "P3", "P4")), ("malignant", ("P2", "P5", "P6", "P7"))):
        for p in patients:
            (root / c / p).mkdir(parents=True)
            for v in range(2):
                Image.fromarray((rng.random((8, 8)) * 100 + 100 * (c == "malignant")).astype(np.uint8)).save(
                    root / c / p / f"{v}.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "benign" / "loose.png")
    ds = data.from_folder(root, group_by_folder=True)
    assert ds.groups is not None
    by_path = dict(zip(ds.sources, ds.groups, strict=True))
    assert by_path["benign/P2/0.png"] == by_path["malignant/P2/1.png"] == "P2"  # one patient, two classes
    assert by_path["benign/loose.png"] == "benign/loose.png"  # directly in its class folder: its own group
    out = tmp_path / "run"
    assert main(["scan", str(root), "--group-by-folder", "--model", "small-cnn", "--epochs", "1", "--folds", "3",
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    run = rundir.open_run(out)
    assert run.column("group").tolist() == list(ds.groups)
    from labeltrace.export.cleaned import export_labels
    from labeltrace.export.rescan import rescan_command

    clean = export_labels(out, tmp_path / "clean.csv")
    assert clean.read_text().splitlines()[0].startswith('"path","label","group",')
    cmd = rescan_command(run, clean) or ""
    assert "--group-column group" in cmd
    capsys.readouterr()
    assert main(["scan", str(tmp_path / "clean.csv"), "--group-by-folder", "--out", str(tmp_path / "x")]) == 2
    assert "--group-by-folder reads the groups of a folder" in capsys.readouterr().err


def test_folds_that_cannot_hold_whole_groups_are_refused_by_name() -> None:
    """A class whose images all belong to one patient was never trained on by the fold holding that
    patient out (its 6 images all got p(given) = 0); groups of sizes 132, 28, 19, 9, 5 left a fold
    empty and the k-fold probabilities failed with scikit-learn's 'Found array with 0 sample(s)'."""
    y = np.array([0] * 60 + [1] * 60 + [2] * 6)
    g = [f"a{i % 20}" for i in range(60)] + [f"b{i % 20}" for i in range(60)] + ["X"] * 6
    with pytest.raises(ValueError, match=r"the images of class 2 all lie in the group X, which fold \d holds out"):
        grouped_folds(y, 5, 0, g)
    sizes, cls = [132, 19, 28, 9, 5], [1, 0, 1, 1, 2]
    y = np.concatenate([[c] * s for c, s in zip(cls, sizes, strict=True)])
    g = [f"g{i}" for i, s in enumerate(sizes) for _ in range(s)]
    with pytest.raises(ValueError, match=r"5 groups of sizes 132, 28, 19, 9, 5 do not fill 5 folds .*0.*fewer folds"):
        grouped_folds(y, 5, 0, g)


def test_the_knn_vote_reaches_for_its_class_outside_the_group() -> None:
    """With groups the vote's ceiling counted the sample's own group as neighbours it could have."""
    from labeltrace.decide import detectors
    from labeltrace.decide.evidence import Evidence

    rng = np.random.default_rng(4)
    y = np.repeat([0, 1], [8, 30])
    groups = np.array(["A"] * 4 + ["B"] * 4 + [f"c{i}" for i in range(30)])
    x = np.eye(2)[y] * 5 + rng.normal(0, 0.05, (38, 2))
    ev = Evidence(y, 2, features=x, knn_k=10, groups=groups)
    reach, k = ev.knn_reach()
    assert k == 10 and reach[:8].tolist() == [4] * 8 and reach[8:].tolist() == [29] * 30
    score = detectors.detect("knn_vote", ev).score
    assert np.allclose(score, 1.0)  # every sample of class 0 votes 4 of the 4 it can reach
    assert not (ev.knn_shares()[:8, 0] > 0.4 + 1e-9).any()  # the shares themselves: 4 of 10
    big = Evidence(y, 2, features=x, knn_k=10, groups=np.array(["all"] * 30 + ["p"] * 8))
    with pytest.warns(UserWarning, match="the largest group holds 30 of 38 samples: .* over 8, not 10"):
        big.knn_shares()
    assert big.knn_reach()[1] == 8


def test_a_group_column_that_is_the_label_or_path_is_refused(tmp_path: Path) -> None:
    m = _manifest(tmp_path)
    for col, what in (("label", "label"), ("path", "path")):
        with pytest.raises(DataError, match=f"--group-column '{col}' is the {what} column"):
            data.from_manifest(m, group_column=col)


def test_a_scan_refusing_a_class_one_fold_holds_out_names_the_class(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """The refusal said "class 1's images" (its label id) and offered "fewer folds" at 2 folds, the
    fewest (an audit's finding): the scan names the class."""
    m = _manifest(tmp_path / "d", n_patients=8)
    text = m.read_text().splitlines()
    rows = [text[0]] + [",".join([*r.split(",")[:2], "P1" if r.split(",")[1] == "b" else r.split(",")[2]])
                        for r in text[1:]]  # every 'b' image one patient's
    m.write_text("\n".join(rows) + "\n")
    for det in ("crossfit", "cl"):
        rc = main(["scan", str(m), "--model", "small-cnn", "--epochs", "1", "--folds", "2", "--quiet", "--detector",
                   det, "--group-column", "patient", "--out", str(tmp_path / det)])  # fmt: skip
        err = capsys.readouterr().err
        assert rc == 2 and "the images of class 'b' all lie in the group P1, which fold" in err, err
        assert "would never see class 'b'" in err and "fewer folds" not in err


def test_patients_in_every_class_are_not_taken_for_splits_under_group_by_folder(tmp_path: Path) -> None:
    """DATA/<class>/<patient>/<image> with each patient in every class, as --group-by-folder
    declares it, warned that the class folders 'look like splits' (a docs audit's finding); without
    the flag the same layout still warns (the folders could be splits)."""
    import warnings

    rng = np.random.default_rng(2)
    for c in ("a", "b"):
        for p in ("p0", "p1", "p2"):
            (tmp_path / c / p).mkdir(parents=True)
            Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8)).save(tmp_path / c / p / "0.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert data.from_folder(tmp_path, group_by_folder=True).groups is not None
    with pytest.warns(UserWarning, match="look like splits, not classes: each holds sub-folders of the same names"):
        data.from_folder(tmp_path)
