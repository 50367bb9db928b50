"""Exact duplicate images: found in the decoded pixels, kept in one fold by the cross-fitted
protocol and the K-fold probabilities (every other sample keeping its fold), and listed by the scan
— a table, a column, run.json, one summary line, the report — with the groups whose copies carry
different labels (at least one label of each is wrong). Before, an exact copy in another fold let
the held-out model vouch for the label the two shared (PneumoniaMNIST's train split holds 17 pairs)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from labeltrace import data, rundir
from labeltrace.data.duplicates import (
    conflicting_groups,
    dataset_duplicates,
    find_duplicates,
    group_members,
)
from labeltrace.report.summary import duplicates_text, summary_text
from labeltrace.scan import ScanConfig, scan
from labeltrace.train.crossval import fold_ids
from labeltrace.train.protocol import _fingerprint, stratified_folds


def _distinct(n: int, seed: int = 0, side: int = 8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
    x[:, 0, 0] = np.arange(n) % 256  # never two alike by chance
    x[:, 0, 1] = np.arange(n) // 256
    return x


def _with_copies(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes; sample 7 copied to 20 and 41 (a group of 3, labels 1, 0, 1), 3 copied to 30 (labels 1, 0);
    the copies beyond ``n`` left out."""
    x = _distinct(n, seed)
    y = np.arange(n) % 2
    for copy, of in ((20, 7), (41, 7), (30, 3)):
        if copy < n:
            x[copy] = x[of]
    return x, y


def test_exact_copies_are_found_across_classes() -> None:
    x, y = _with_copies()
    g = find_duplicates(x)
    assert g[[3, 30]].tolist() == [0, 0] and g[[7, 20, 41]].tolist() == [1, 1, 1]  # numbered by first member
    assert (g >= 0).sum() == 5 and (np.delete(g, [3, 7, 20, 30, 41]) == -1).all()
    assert [m.tolist() for m in group_members(g)] == [[3, 30], [7, 20, 41]]
    assert conflicting_groups(g, y).tolist() == [True, True]
    same = y.copy()
    same[[3, 30]] = 1
    assert conflicting_groups(g, same).tolist() == [False, True]
    assert find_duplicates(x.astype(np.float32) / 255).tolist() == g.tolist()  # any dtype
    import torch

    assert find_duplicates(torch.from_numpy(x)).tolist() == g.tolist()


def test_distinct_images_have_no_copies() -> None:
    from sklearn.datasets import load_digits

    assert (find_duplicates(load_digits().images) == -1).all()  # measured: none among the 1,797 digits
    assert (find_duplicates(_distinct(500)) == -1).all()
    assert find_duplicates(np.zeros((0, 4, 4))).shape == (0,)


def test_bad_input_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"one image per row; got shape \(5,\)"):
        find_duplicates(np.arange(5))
    with pytest.raises(TypeError, match="object array"):
        find_duplicates(np.array([np.zeros((2, 2)), np.zeros((3, 3))], dtype=object))


def _together(g: np.ndarray) -> np.ndarray:
    """(N, N) bool: the same sample, or copies of one another."""
    return ((g[:, None] == g[None, :]) & (g[:, None] >= 0)) | np.eye(g.size, dtype=bool)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_permuting_the_samples_permutes_the_groups(which: list[int], rnd) -> None:
    """Samples drawn from 6 distinct images: two are copies exactly when they were drawn from one,
    whatever their order."""
    base = _distinct(6, seed=3, side=4)
    x = base[which]
    g = find_duplicates(x)
    w = np.array(which)
    assert np.array_equal(_together(g), w[:, None] == w[None, :])
    perm = np.array(rnd.sample(range(len(w)), len(w)))
    gp = find_duplicates(x[perm])
    assert np.array_equal(_together(gp), _together(g)[np.ix_(perm, perm)])
    assert np.array_equal(gp >= 0, g[perm] >= 0)


def test_files_are_compared_by_their_decoded_pixels(tmp_path: Path) -> None:
    """A PNG saved again at another compression level has other bytes and the same pixels: a copy."""
    x, y = _with_copies(44)
    root = tmp_path / "d"
    for i in range(len(y)):
        (root / "ab"[y[i]]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i]).save(root / "ab"[y[i]] / f"{i:03d}.png", compress_level=1 if i == 20 else 6)
    assert (root / "a" / "020.png").read_bytes() != (root / "b" / "007.png").read_bytes()
    ds = data.from_folder(root)
    g = dataset_duplicates(ds, workers=2, chunk=5)
    by_name = {s: int(c) for s, c in zip(ds.sources, g, strict=True)}
    assert by_name["b/007.png"] == by_name["a/020.png"] == by_name["b/041.png"] >= 0
    assert by_name["b/003.png"] == by_name["a/030.png"] >= 0 and by_name["b/005.png"] == -1
    arrays = data.from_arrays(x, y)
    assert dataset_duplicates(arrays).tolist() == find_duplicates(x).tolist()
    sub = arrays.subset([30, 3, 5, 20, 7])  # an array dataset's rows: hashed in place, in the subset's order
    assert dataset_duplicates(sub).tolist() == [0, 0, -1, 1, 1]


def test_a_file_that_cannot_be_decoded_is_named_by_both_searches(tmp_path: Path) -> None:
    """The exact-copy search and the one pass for exact and near copies decode files with one
    chunked helper (labeltrace.data.copy_parts.decoded_chunks): a file broken after the dataset was
    listed stops either with the loader's error naming it, from a thread in any chunk."""
    from labeltrace.data.near_duplicates import dataset_copies, dataset_signatures

    x, y = _with_copies(24)
    root = tmp_path / "d"
    for i in range(len(y)):
        (root / "ab"[y[i]]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i]).save(root / "ab"[y[i]] / f"{i:03d}.png")
    ds = data.from_folder(root)
    (root / "b" / "017.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    for search in (dataset_duplicates, dataset_copies, dataset_signatures):
        with pytest.raises(data.DataError, match=r"b[/\\]017\.png: not an image file"):
            search(ds, workers=2, chunk=5)


def test_neither_copy_search_imports_the_others_module_back() -> None:
    """near_duplicates imported duplicates (lazily, in four functions) while find_duplicates(near=True)
    imported near_duplicates: a cycle. Both build on labeltrace.data.copy_parts now; only
    duplicates imports near_duplicates (for near=True), and copy_parts neither."""
    import ast

    from labeltrace.data import copy_parts, near_duplicates

    def imported(module: object) -> set[str]:
        tree = ast.parse(Path(str(getattr(module, "__file__", ""))).read_text())
        names: set[str] = set()
        for node in ast.walk(tree):  # at the top and inside functions alike
            if isinstance(node, ast.ImportFrom) and node.module:
                names |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
        return names

    assert "labeltrace.data.duplicates" not in imported(near_duplicates)
    assert not {"labeltrace.data.duplicates", "labeltrace.data.near_duplicates"} & imported(copy_parts)


def test_folds_keep_copies_together_and_leave_the_others_alone() -> None:
    x, y = _with_copies(200, seed=1)
    x[150] = x[7]
    g = find_duplicates(x)
    for fn in (lambda c: stratified_folds(y, 5, seed=4, copies=c), lambda c: fold_ids(y, n_folds=5, seed=4, copies=c)):
        before, after = fn(None), fn(g)
        for m in group_members(g):
            assert np.unique(after[m]).size == 1 and after[m[0]] == before[m[0]]  # the first member's fold
        alone = g < 0
        assert np.array_equal(after[alone], before[alone])
        assert np.array_equal(fn(np.full(len(y), -1)), before)  # no copies: the folds as they were


def test_folds_without_copies_are_unchanged() -> None:
    """Data without copies gets the very folds it had: stratified, K-fold and grouped."""
    y = np.arange(97) % 3
    none = find_duplicates(_distinct(97))
    groups = [f"p{i // 3}" for i in range(97)]
    for kw in ({}, {"groups": groups}):
        assert stratified_folds(y, 5, seed=2, copies=none, **kw) is not None
        assert np.array_equal(stratified_folds(y, 5, seed=2, copies=none, **kw), stratified_folds(y, 5, seed=2, **kw))
        assert np.array_equal(fold_ids(y, n_folds=5, seed=2, copies=none, **kw), fold_ids(y, n_folds=5, seed=2, **kw))


def test_copies_join_the_groups_of_a_user() -> None:
    """Two patients one of whose images is a copy of the other's share a fold, all their images."""
    y = np.arange(120) % 2
    groups = [f"p{i // 4}" for i in range(120)]  # 30 patients of 4 images
    copies = np.full(120, -1)
    before = stratified_folds(y, 5, seed=0, groups=groups)
    a, b = 1, next(i for i in range(4, 120) if before[i] != before[1])  # patients p0 and p(b // 4), other folds
    copies[[a, b]] = 0
    after = stratified_folds(y, 5, seed=0, groups=groups, copies=copies)
    joined = [i for i in range(120) if groups[i] in (groups[a], groups[b])]
    assert np.unique(after[joined]).size == 1 and after[a] == before[0]
    rest = [i for i in range(120) if i not in joined]
    assert np.array_equal(after[rest], before[rest])


def test_copies_that_would_hold_out_a_class_stay_apart_and_are_named() -> None:
    """A class that is one image three times: in one fold, its model would never see the class, and
    no number of folds helps; it was refused, and the scan with it (of data it had scanned before).
    Those copies stay where they were, with a warning; the other copies are kept together."""
    y = np.array([0, 0, 0] + [1] * 20)
    copies = np.full(23, -1)
    copies[[0, 1, 2]] = 0  # class 0 is one image three times
    copies[[3, 20]] = 1
    for fn in (lambda c: stratified_folds(y, 2, seed=0, copies=c), lambda c: fold_ids(y, n_folds=2, seed=0, copies=c)):
        before = fn(None)
        with pytest.warns(UserWarning, match=r"1 set of exact copies left in different folds.*sample ids 0\+1\+2"):
            after = fn(copies)
        assert np.array_equal(after[[0, 1, 2]], before[[0, 1, 2]]) and np.unique(after[[0, 1, 2]]).size == 2
        assert after[3] == after[20] == before[3]


def test_a_class_smaller_than_the_folds_does_not_stop_copies_elsewhere() -> None:
    """The K-fold probabilities take a class with fewer samples than folds (one: its fold holds it
    out whole, as scikit-learn's split does); a pair of copies elsewhere had the split refused."""
    y = np.array([0] * 10 + [1] * 10 + [2])
    copies = np.full(21, -1)
    copies[[0, 5]] = 0
    with pytest.warns(UserWarning, match="least populated class"):  # scikit-learn's, about class 2
        before, after = fold_ids(y, n_folds=3, seed=0), fold_ids(y, n_folds=3, seed=0, copies=copies)
    assert after[0] == after[5] == before[0]
    alone = copies < 0
    assert np.array_equal(after[alone], before[alone])


def test_the_recording_fingerprint_names_copies_only_where_there_are_some() -> None:
    from labeltrace.train import TrainConfig
    from labeltrace.train.protocol import CrossFit
    from labeltrace.train.recipe import NetworkSpec

    args = (CrossFit(5), NetworkSpec(), TrainConfig(), np.arange(10) % 2, 0, {}, 5, False, None, None)
    assert "copies" not in _fingerprint(*args) and "copies" not in _fingerprint(*args, np.full(10, -1))
    assert "copies" in _fingerprint(*args, np.array([0, 0] + [-1] * 8))


def _tiny_scan(tmp_path: Path, x: np.ndarray, y: np.ndarray, name: str) -> Path:
    out = tmp_path / name
    scan(data.from_arrays(x, y), out, ScanConfig(epochs=2, folds=2, batch_size=16, seed=0), progress=False,
         log=lambda s: None)  # fmt: skip
    return out


def test_a_scan_lists_the_copies_and_keeps_them_in_one_fold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x, y = _with_copies(40)
    out = _tiny_scan(tmp_path, x, y, "run")
    run = rundir.open_run(out)
    groups = run.column("duplicate_group")
    assert groups[[3, 30]].tolist() == [0, 0] and groups[[7, 20]].tolist() == [1, 1]
    folds = run.column("fold")
    for m in group_members(groups):
        assert np.unique(folds[m]).size == 1
    assert run.meta["duplicates"] == {"images_in_groups": 4, "copies": 2, "groups": 2, "conflicting_groups": 2,
                                      "table": "duplicates.parquet"}  # fmt: skip
    assert "duplicates" in run.meta["fingerprint"]
    t = pq.read_table(out / rundir.DUPLICATES).to_pydict()
    assert t["id"] == [3, 30, 7, 20] and t["duplicate_group"] == [0, 0, 1, 1] and all(t["labels_differ"])
    assert t["given_label"] == ["1", "0", "1", "0"] and t["path"] == ["array:3", "array:30", "array:7", "array:20"]
    import pandas as pd

    csv = pd.read_csv(out / rundir.DUPLICATES_CSV, dtype=str, keep_default_na=False)
    assert csv["id"].tolist() == ["3", "30", "7", "20"]
    text = summary_text(out)
    line = [ln for ln in text.splitlines() if ln.startswith("exact copies:")]
    assert line == ["exact copies: 2 images are a copy of another (2 groups of identical pixels, 4 images; the folds "
                    "keep each group in one fold, unless that leaves a fold no image of a class to train on: the scan's "
                    "warning names those); 2 groups carry different labels — at least one label of each is "
                    "wrong (duplicates.csv)"]  # fmt: skip
    err = capsys.readouterr().err
    assert "4 images are exact copies (identical pixels) filed under different labels" in err
    assert "array:3 (1) = array:30 (0)" in err
    from labeltrace.report import write_report

    page = write_report(out).read_text()
    start = page.index("<section id='duplicates'>")
    section = page[start:page.index("</section>", start)]
    assert "Exact copies under different labels (2 groups)" in section
    assert [f'data-id="{i}"' in section for i in (3, 30, 7, 20, 5)] == [True] * 4 + [False]
    assert section.count("<img ") == 4


def test_a_scan_of_distinct_images_says_nothing_of_copies(tmp_path: Path) -> None:
    x = _distinct(40)
    y = np.arange(40) % 2
    out = _tiny_scan(tmp_path, x, y, "run")
    run = rundir.open_run(out)
    assert "duplicate_group" not in run.samples.column_names and not (out / rundir.DUPLICATES).exists()
    assert run.meta["duplicates"]["groups"] == 0 and "duplicates" not in run.meta["fingerprint"]
    assert "exact copies" not in summary_text(out) and duplicates_text({}) == ""
    assert "Exact copies" not in __import__("labeltrace.report", fromlist=["write_report"]).write_report(out).read_text()


def test_a_finished_scan_run_again_does_not_decode_every_image_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The copies are looked for in every image's decoded pixels: an extra decoding pass (34 s on
    CIFAR-10N's 50,000 JPEGs). A scan run again on its finished folder (the results recomputed,
    nothing trained) redid it every time; the run's own copies are read back while its image files
    are the ones it scanned (names, sizes, times), and looked for again once one changed."""
    import pyarrow as pa

    from labeltrace import scan as scan_module
    from labeltrace.scan_outputs import held_copies

    x, y = _with_copies(40)
    root = tmp_path / "data"
    for i, (img, lab) in enumerate(zip(x, y, strict=True)):
        (root / f"c{lab}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / f"c{lab}" / f"{i:03d}.png")
    calls: list[int] = []  # one per image the copy search decodes
    real = scan_module.dataset_copies
    monkeypatch.setattr(scan_module, "dataset_copies", lambda ds, **kw: calls.extend([1] * len(ds)) or real(ds, **kw))
    cfg = ScanConfig(epochs=2, folds=2, batch_size=16, seed=0)
    out = tmp_path / "run"
    scan(data.from_folder(root), out, cfg, progress=False, log=lambda s: None)
    assert len(calls) == 40
    first = rundir.open_run(out).column("duplicate_group").tolist()
    scan(data.from_folder(root), out, cfg, progress=False, log=lambda s: None)
    assert len(calls) == 40  # read back, not decoded again
    assert rundir.open_run(out).column("duplicate_group").tolist() == first
    table = pq.read_table(out / rundir.SAMPLES)  # a missing value in its groups: looked for again, not a crash
    gone = pa.array([None, *first[1:]], pa.int64())
    rundir.write_table(out / rundir.SAMPLES, table.set_column(table.column_names.index("duplicate_group"),
                                                              "duplicate_group", gone))  # fmt: skip
    assert held_copies(out, data.from_folder(root)) is None
    rundir.write_table(out / rundir.SAMPLES, table)
    held = held_copies(out, data.from_folder(root))
    assert held is not None and held.exact.tolist() == first
    img = Image.open(root / "c1" / "003.png")
    img.putpixel((0, 0), (img.getpixel((0, 0)) + 1) % 256)
    img.save(root / "c1" / "003.png")  # its copy 030 is a copy no more
    with pytest.raises(rundir.RunDirConflict):  # another scan's data: looked for again first
        scan(data.from_folder(root), out, cfg, progress=False, log=lambda s: None)
    assert len(calls) == 80


def test_connected_sets_join_copies_and_a_users_groups() -> None:
    from labeltrace.data.duplicates import connected_sets, neighbour_groups

    copies = np.array([-1, 0, -1, 0, 1, -1, 1])
    assert connected_sets(copies).tolist() == [0, 1, 2, 1, 3, 4, 3]
    patients = ["a", "b", "c", "c", "d", "b", "e"]  # 3 is a copy of 1 and c's; 5 is b's, as 1 is
    assert connected_sets(copies, patients).tolist() == [0, 1, 1, 1, 2, 1, 2]
    assert neighbour_groups(None, np.full(7, -1)) is None and neighbour_groups(patients, None) is patients
    assert neighbour_groups(None, copies) == ("0", "1", "2", "1", "3", "4", "3")


def test_a_copy_no_longer_votes_for_its_twins_label_in_the_knn() -> None:
    """A copy is its twin's nearest neighbour: the kNN vote counted it for the label the two share,
    as a fold's model that trained on the twin had vouched for it before copies were kept together."""
    from labeltrace.data.duplicates import neighbour_groups
    from labeltrace.decide.evidence import Evidence

    rng = np.random.default_rng(3)
    centres = np.eye(2, 16) * 6
    y = np.repeat([0, 1], 30)
    x = centres[y] + rng.normal(size=(60, 16))
    x[59] = x[58]  # 58 and 59 are one image, both of class 1, both labelled 0
    given = y.copy()
    given[[58, 59]] = 0
    copies = np.full(60, -1)
    copies[[58, 59]] = 0
    before = Evidence(given, 2, features=x, knn_k=5).knn_shares()
    after = Evidence(given, 2, features=x, knn_k=5, groups=neighbour_groups(None, copies)).knn_shares()
    assert before[58, 0] == pytest.approx(0.2)  # its copy's vote
    assert after[58, 0] == 0.0 and after[59, 0] == 0.0
    np.testing.assert_array_equal(np.delete(after, [58, 59], 0), np.delete(before, [58, 59], 0))  # the others' as they were
    assert Evidence(given, 2, features=x, knn_k=5, groups=neighbour_groups(None, np.full(60, -1))).groups is None


def test_a_scan_with_features_leaves_copies_out_of_each_others_neighbours(tmp_path: Path) -> None:
    from labeltrace.decide import evidence

    x, y = _with_copies(40)
    seen = {}
    real = evidence.Evidence.__init__

    def spy(self, *a, **kw):  # type: ignore[no-untyped-def]
        seen["groups"] = kw.get("groups")
        real(self, *a, **kw)

    import unittest.mock

    with unittest.mock.patch.object(evidence.Evidence, "__init__", spy):
        _tiny_scan(tmp_path, x, y, "knn")
    g = list(seen["groups"])
    assert g[3] == g[30] and g[7] == g[20] and g[3] != g[7] and len(set(g)) == 40 - 2


def test_copies_too_many_to_leave_out_stay_neighbours_and_are_named() -> None:
    """25 copies of one blank frame among 30 images left 5 neighbours outside their set: every
    sample's kNN vote was cut from 10 to 5; every image one copy left none, and the kNN stopped
    ('every sample is in one group'). Such copies stay one another's neighbours, with a warning."""
    from labeltrace.data.duplicates import neighbour_groups
    from labeltrace.decide.evidence import Evidence

    rng = np.random.default_rng(5)
    x = rng.normal(size=(30, 8))
    x[:25] = x[0]
    y = np.arange(30) % 2
    copies = np.r_[np.zeros(25, int), np.full(5, -1)]
    with pytest.warns(UserWarning, match=r"25 exact copies \(sample ids \[0, 1, .*stay one another's neighbours"):
        assert neighbour_groups(None, copies, 10) is None
    with pytest.warns(UserWarning, match="exact copies"):
        ev = Evidence(y, 2, features=x, knn_k=10, groups=neighbour_groups(None, copies, 10))
    assert ev.knn_shares().shape == (30, 2) and ev.knn_reach()[1] == 10
    with pytest.warns(UserWarning, match="exact copies"):  # every image one: as before the copies were left out
        assert neighbour_groups(None, np.zeros(12, int), 10) is None
    # a set that leaves k neighbours is left out as ever, a crowded one kept, a user's groups kept
    copies = np.r_[np.zeros(21, int), np.full(7, -1), np.ones(2, int)]  # 21 copies (9 outside them), a pair
    with pytest.warns(UserWarning, match="21 exact copies"):
        g = neighbour_groups([str(i // 2) for i in range(30)], copies, 9)
    assert g is not None and g[28] == g[29] and len({g[i] for i in range(21)}) == 11  # the users' pairs only
    assert neighbour_groups(None, copies, 8) is not None and len(set(neighbour_groups(None, copies, 8))) == 1 + 7 + 1
    patient = ["p"] * 25 + [str(i) for i in range(5)]  # a user's group crowds the kNN by itself: its copies say nothing
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert neighbour_groups(patient, np.r_[0, 0, np.full(28, -1)], 10) == tuple(["0"] * 25 + ["1", "2", "3", "4", "5"])


def test_copies_with_all_zero_features_say_so() -> None:
    """Every feature row all zeros (a blank image's embedding), with groups: numpy's 'zero-size array
    to reduction operation maximum' instead of the kNN's own words."""
    from labeltrace.decide.evidence import Evidence

    ev = Evidence(np.arange(12) % 2, 2, features=np.zeros((12, 4)), knn_k=3, groups=[str(i // 2) for i in range(12)])
    with pytest.raises(ValueError, match="features are all zeros for sample ids"):
        ev.knn_shares()


def test_the_held_copies_are_read_back_as_one_array(tmp_path: Path) -> None:
    """held_copies turned the samples table's duplicate_group into integers through text, one sample
    at a time, and a missing value ("None") stopped the scan with a ValueError: the column is read as
    one int64 array now — the same groups — and one with a missing value, of another length or not of
    integers is not trusted (the copies are looked for again)."""
    import pyarrow as pa

    from labeltrace.scan_outputs import _held_exact

    rng = np.random.default_rng(0)
    n = 5000
    groups = np.where(rng.random(n) < 0.1, rng.integers(0, 300, n), -1)
    for kind in (pa.int64(), pa.int32(), pa.int16()):
        rundir.write_table(tmp_path / rundir.SAMPLES, pa.table({"id": np.arange(n), "duplicate_group": pa.array(groups, kind)}))
        got = _held_exact(tmp_path, n)
        assert got is not None and got.dtype == np.int64
        assert np.array_equal(got, [int(v) for v in rundir.held_column(tmp_path, "duplicate_group") or []])
        assert np.array_equal(got, groups)
    assert _held_exact(tmp_path, n + 1) is None  # another scan's samples
    missing = pa.array([None if i % 997 == 5 else int(g) for i, g in enumerate(groups)], pa.int64())
    rundir.write_table(tmp_path / rundir.SAMPLES, pa.table({"duplicate_group": missing}))
    assert missing.null_count == 6 and _held_exact(tmp_path, n) is None
    rundir.write_table(tmp_path / rundir.SAMPLES, pa.table({"duplicate_group": groups.astype(np.float64)}))
    assert _held_exact(tmp_path, n) is None
    (tmp_path / rundir.SAMPLES).unlink()
    assert _held_exact(tmp_path, n) is None


def test_copies_the_folds_leave_apart_are_named_by_file_in_run_json(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """The folds' warning named positions, came out in Python's form, and run.json did not keep it,
    while the summary said 'the scan's warning names those' (an audit's finding): the outputs say
    it, naming the files, and the report keeps it."""
    x = _distinct(40)
    y = np.arange(40) % 2
    x[[36, 37, 38, 39]] = x[36]  # class 2: one image four times; in one fold, a fold never trains on it
    y[[36, 37, 38, 39]] = 2
    out = _tiny_scan(tmp_path, x, y, "run")
    said = [w for w in rundir.open_run(out).meta["warnings"] if "left in different folds" in w]
    assert len(said) == 1 and "4 images are exact copies (identical pixels) of another under the same label (1 " \
        "group, left in different folds" in said[0] and "array:36 = array:37 = array:38 = array:39" in said[0]
    err = capsys.readouterr().err
    assert said[0] in err and "sample ids 36+37+38+39" not in err


@pytest.mark.parametrize("detector", ["cl", "crossfit_cl"])
def test_copies_the_k_folds_leave_apart_are_named_by_file_in_run_json(tmp_path: Path, detector: str,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """A cl scan's K-fold probabilities left the copies apart with the folds' own warning (positions,
    Python's form) and nothing in run.json; the cross-fitted recording's were said by file."""
    x = _distinct(40)
    y = np.arange(40) % 2
    x[[36, 37, 38, 39]] = x[36]
    y[[36, 37, 38, 39]] = 2
    out = tmp_path / "run"
    scan(data.from_arrays(x, y), out, ScanConfig(model="small-cnn", epochs=2, folds=2, batch_size=16, seed=0,
                                                 detector=detector), progress=False, log=lambda s: None)  # fmt: skip
    said = [w for w in rundir.open_run(out).meta["warnings"] if "left in different folds" in w]
    assert len(said) == 1 and "array:36 = array:37 = array:38 = array:39" in said[0]
    err = capsys.readouterr().err
    assert said[0] in err and "sample ids 36+37+38+39" not in err
