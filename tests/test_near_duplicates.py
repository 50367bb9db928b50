"""Near-duplicate images (labeltrace.data.near_duplicates): likely copies — a JPEG re-encode, a
1 px shift, a brightness change — grouped; distinct, blank and too-small images never matched;
listed by the scan in a table of their own, a run.json count, one summary line and the report,
without moving folds (a likely copy is not a sure one). Threshold: dev-near-duplicates.md."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from labeltrace import data, find_duplicates, rundir
from labeltrace.data.near_duplicates import (
    find_near_duplicates,
    near_groups,
    near_pairs,
    search_settings,
    signatures,
)
from labeltrace.report.summary import near_duplicates_text, summary_text
from labeltrace.scan import ScanConfig, scan


def _smooth(n: int, side: int = 64, seed: int = 0) -> np.ndarray:
    """``n`` distinct smooth uint8 images: random 6 x 6 fields, bilinearly enlarged."""
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (n, 6, 6), dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(a).resize((side, side), Image.Resampling.BILINEAR)) for a in low])


def _jpeg(img: np.ndarray, q: int = 70) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=q)
    return np.asarray(Image.open(buf))


def _edited(n: int = 30, side: int = 64) -> np.ndarray:
    """Distinct images, with sample 0 re-encoded as 10, 1 shifted 1 px as 11, 2 made brighter as 12,
    and 3 and 4 blank (zero, flat grey); 5 a near-blank (flat grey with +-1 noise), 6 its twin."""
    x = _smooth(n, side)
    x[10] = _jpeg(x[0])
    x[11] = np.concatenate([x[1][:, :1], x[1][:, :-1]], axis=1)
    x[12] = np.clip(x[2].astype(np.int64) * 9 // 10 + 30, 0, 255).astype(np.uint8)
    x[3], x[4] = 0, 128
    rng = np.random.default_rng(1)
    x[5] = 128 + rng.integers(-1, 2, (side, side))
    x[6] = 128 + rng.integers(-1, 2, (side, side))
    return x


def _pairs(g: np.ndarray) -> set[tuple[int, int]]:
    return {(int(i), int(j)) for i in range(len(g)) for j in range(i + 1, len(g)) if g[i] >= 0 and g[i] == g[j]}



def _class_folders(root: Path, x: np.ndarray, y: np.ndarray) -> Path:
    """``x`` as PNGs in class folders ``a`` / ``b`` (by ``y``), named by index."""
    for i in range(len(y)):
        (root / "ab"[y[i]]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i]).save(root / "ab"[y[i]] / f"{i:03d}.png")
    return root

def test_edited_copies_are_found_and_distinct_or_blank_images_are_not() -> None:
    x = _edited()
    g = find_duplicates(x, near=True)
    assert _pairs(g) == {(0, 10), (1, 11), (2, 12)}
    assert find_duplicates(x).max() == -1  # none of them is an exact copy
    colour = np.repeat(x[..., None], 3, axis=3)  # colour and floats: the same groups
    assert np.array_equal(find_duplicates(colour, near=True), g)
    assert np.array_equal(find_duplicates(x / np.float32(255), near=True), g)


def test_exact_copies_join_a_near_group_and_exact_groups_alone_are_not_near() -> None:
    x = _edited()
    x[20] = x[0]  # exact copy of 0, which has a near-copy (10)
    x[21] = x[7]  # exact copy of 7 with no near-copy: an exact group only
    g = find_duplicates(x, near=True)
    assert _pairs(g) == {(0, 10), (0, 20), (10, 20), (1, 11), (2, 12)}


def test_images_smaller_than_the_thumbnail_are_never_near_matched() -> None:
    x = _smooth(10, side=12)
    x[5] = np.clip(x[0].astype(np.int64) + 10, 0, 255)
    x[6] = x[1]
    g = find_duplicates(x, near=True)
    assert g.max() == -1  # 12 px: the brightened copy is not looked for, the exact copy is no *near* copy
    _, ok = signatures(x[:2] / 255.0)
    assert not ok.any()


def test_a_signature_is_the_area_average_thumbnail_standardised() -> None:
    """The thumbnail is two matrix products (one einsum with its path searched per image made the
    signature cost three times the decoding of a 28 px PNG): exact block means where the side divides."""
    rng = np.random.default_rng(2)
    x = rng.random((3, 32, 48))
    small = x.reshape(3, 16, 2, 16, 3).mean(axis=(2, 4)).reshape(3, -1)
    small -= small.mean(axis=1, keepdims=True)
    sig, ok = signatures(x)
    np.testing.assert_allclose(sig, small / np.linalg.norm(small, axis=1, keepdims=True), atol=1e-6)
    one = np.stack([signatures(x[k : k + 1])[0][0] for k in range(3)])  # one image at a time, as files are
    assert ok.all() and np.array_equal(one, sig)


def test_chunks_give_the_same_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    from labeltrace.data import near_duplicates

    x = _edited(40)
    sig, ok = signatures(x / 255.0)
    whole = near_pairs(sig, ok, 0.5, chunk=1024)
    small = near_pairs(sig, ok, 0.5, chunk=3)
    monkeypatch.setattr(near_duplicates, "BLOCK", 80)  # 2 rows of 40 at a time, whatever chunk says
    blocked = near_pairs(sig, ok, 0.5, chunk=1024)
    assert len(whole[0]) > 3
    for a, b, c in zip(whole, small, blocked, strict=True):
        assert np.allclose(a, b) and np.allclose(a, c)
    i, j, _ = whole
    assert (i < j).all() and ok[i].all() and ok[j].all()


def test_bad_input_is_refused_by_name() -> None:
    x = _smooth(3, side=16)
    with pytest.raises(TypeError, match="near must be True or False"):
        find_duplicates(x, near="yes")
    with pytest.raises(ValueError, match=r"near=True needs images shaped .*\(3, 256\)"):
        find_duplicates(x.reshape(3, -1), near=True)
    bad = x / 255.0
    bad[2, 0, 0] = 3.0
    with pytest.raises(ValueError, match="sample 2: float pixels must be finite and in"):
        find_near_duplicates(bad)


def test_groups_are_numbered_by_first_sample() -> None:
    assert near_groups(6, np.array([3, 0]), np.array([5, 1])).tolist() == [0, 0, -1, 1, -1, 1]
    assert near_groups(0, np.zeros(0, np.int64), np.zeros(0, np.int64)).tolist() == []
    # exact copies join a near group (3 of 1), alone they are none (2 and 4); sets numbered as connected_sets does
    i, j = np.array([5, 0]), np.array([6, 1])
    assert near_groups(7, i, j, np.array([-1, 0, 1, 0, 1, -1, -1])).tolist() == [0, 0, -1, 0, -1, 1, 1]
    assert near_groups(7, np.array([2]), np.array([4]), np.array([-1, -1, 0, -1, 0, -1, -1])).max() == -1
    from labeltrace.data.duplicates import connected_sets, linked_sets

    copies = np.array([-1, 0, -1, 0, 1, -1, 1])
    assert linked_sets(7, np.array([1, 4]), np.array([3, 6])).tolist() == connected_sets(copies).tolist()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=24), st.randoms(use_true_random=False))
def test_permuting_the_samples_permutes_the_groups(which: list[int], rnd) -> None:
    """Samples drawn from 6 images, each drawn as it is or re-encoded: two are in one group exactly
    when they were drawn from one image (and are not both the exact same), whatever their order."""
    base = _smooth(6, side=32, seed=5)
    x = np.stack([base[k] if m % 2 else _jpeg(base[k], 60) for m, k in enumerate(which)])
    g = find_duplicates(x, near=True)
    w, version = np.array(which), np.arange(len(which)) % 2
    both = {k for k in set(which) if len(set(version[w == k].tolist())) == 2}  # an original and a re-encode
    expected = (w[:, None] == w[None, :]) & np.isin(w, list(both))[:, None]
    together = (g[:, None] == g[None, :]) & (g[:, None] >= 0)
    assert np.array_equal(together, expected)
    perm = np.array(rnd.sample(range(len(w)), len(w)))
    gp = find_duplicates(x[perm], near=True)
    tp = (gp[:, None] == gp[None, :]) & (gp[:, None] >= 0)
    assert np.array_equal(tp, together[np.ix_(perm, perm)])


def _scan(tmp_path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    out = tmp_path / "run"
    scan(data.from_arrays(x, y), out, ScanConfig(epochs=1, folds=2, batch_size=16, seed=0, resolution=16),
         progress=False, log=lambda s: None)  # fmt: skip
    return out


def test_a_scan_lists_near_copies_apart_and_leaves_the_folds_alone(tmp_path: Path) -> None:
    x = _edited(32, side=64)
    y = np.arange(32) % 2  # 0 / 10 share label 0; 1 / 11 share 1; 2 / 12 share 0 — make 10 differ
    y[10] = 1
    out = _scan(tmp_path, x, y)
    run = rundir.open_run(out)
    assert run.meta["near_duplicates"] == {"images_in_groups": 6, "groups": 3, "conflicting_groups": 1,
                                           "threshold": 0.98, "thumbnail": 16, "min_std": 0.03,
                                           "table": "near_duplicates.parquet"}  # fmt: skip
    assert run.meta["duplicates"]["groups"] == 0 and "duplicates" not in run.meta["fingerprint"]
    assert "duplicate_group" not in run.samples.column_names and not (out / rundir.DUPLICATES).exists()
    t = pq.read_table(out / rundir.NEAR_DUPLICATES).to_pydict()
    assert t["id"] == [0, 10, 1, 11, 2, 12] and t["near_group"] == [0, 0, 1, 1, 2, 2]
    assert t["labels_differ"] == [True, True, False, False, False, False]
    assert all(0.98 <= c <= 1 for c in t["closest"]) and t["duplicate_group"] == [-1] * 6
    assert (out / rundir.NEAR_DUPLICATES_CSV).is_file()
    line = [ln for ln in summary_text(out).splitlines() if ln.startswith("near-copies:")]
    assert line == ["near-copies: 6 images in 3 groups of likely copies (re-encoded, resized or brighter / darker: "
                    "thumbnails correlated at 0.98 or more; not kept in one fold); 1 group carries different labels "
                    "— check them: if the images are one, a label is wrong (near_duplicates.csv)"]  # fmt: skip
    from labeltrace.report import write_report

    page = write_report(out).read_text()
    assert "<section id='duplicates'>" not in page
    start = page.index("<section id='near-duplicates'>")
    section = page[start:page.index("</section>", start)]
    assert "Likely copies under different labels (1 group)" in section
    assert [f'data-id="{i}"' in section for i in (0, 10, 1, 11)] == [True, True, False, False]


def test_older_runs_and_runs_without_near_copies_say_nothing(tmp_path: Path) -> None:
    from labeltrace.report import write_report
    from labeltrace.scan_outputs import write_near_duplicates

    assert near_duplicates_text({}) == "" and near_duplicates_text({"near_duplicates": {"groups": 0}}) == ""
    x = _smooth(32, side=64)
    out = _scan(tmp_path, x, np.arange(32) % 2)
    assert rundir.open_run(out).meta["near_duplicates"]["groups"] == 0
    assert not (out / rundir.NEAR_DUPLICATES).exists() and "near-copies" not in summary_text(out)
    assert "near-duplicates" not in write_report(out).read_text()
    for name in (rundir.NEAR_DUPLICATES, rundir.NEAR_DUPLICATES_CSV):  # an earlier scan's tables: removed
        (out / name).write_bytes(b"stale")
    none = np.full(32, -1, np.int64)
    meta = write_near_duplicates(out, data.from_arrays(x, np.arange(32) % 2), none, np.full(32, np.nan), none,
                                 np.arange(32) % 2, settings=search_settings())  # fmt: skip
    assert meta["groups"] == 0 and not (out / rundir.NEAR_DUPLICATES).exists()
    assert not (out / rundir.NEAR_DUPLICATES_CSV).exists()


def test_files_and_array_rows_give_the_groups_of_the_array(tmp_path: Path) -> None:
    """Image files (a JPEG among PNGs), decoded in chunks on threads, and an array dataset's subset
    rows: the groups of the array they hold."""
    from labeltrace.data.near_duplicates import dataset_near_duplicates

    x = _edited(24)
    y = np.arange(24) % 2
    root = _class_folders(tmp_path / "d", x, y)
    Image.fromarray(x[0]).save(root / "b" / "099.jpg", quality=70)  # a re-encode of 0 as a file
    ds = data.from_folder(root)
    g, closest = dataset_near_duplicates(ds, workers=2, chunk=5)
    by_name = {s: int(c) for s, c in zip(ds.sources, g, strict=True)}
    assert by_name["a/000.png"] == by_name["a/010.png"] == by_name["b/099.jpg"] >= 0
    assert by_name["b/001.png"] == by_name["b/011.png"] >= 0 and by_name["a/004.png"] == -1
    assert np.isnan(closest[g < 0]).all() and (closest[g >= 0] >= 0.98).all()
    sub = data.from_arrays(x, y).subset([12, 5, 2, 0, 10])
    assert dataset_near_duplicates(sub)[0].tolist() == [0, -1, 0, 1, 1]


def test_one_decoding_pass_gives_the_exact_and_the_near_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Image files were decoded twice — once to hash them (exact copies), once more for their
    thumbnails (near-copies): each is decoded once now, for both, with the groups of the two searches."""
    from labeltrace.data import sources
    from labeltrace.data.duplicates import dataset_duplicates
    from labeltrace.data.near_duplicates import dataset_copies, dataset_near_duplicates

    x = _edited(24)
    x[20], x[21] = x[0], x[7]  # exact copies: 20 of 0 (which has near-copies), 21 of 7 (which has none)
    y = np.arange(24) % 2
    root = _class_folders(tmp_path / "d", x, y)
    Image.fromarray(x[1]).save(root / "b" / "099.jpg", quality=70)  # a re-encode of 1 as a file
    ds = data.from_folder(root)
    exact = dataset_duplicates(ds, workers=2, chunk=5)
    near, closest = dataset_near_duplicates(ds, exact, workers=2, chunk=5)
    decoded: list[Path] = []
    real = sources.decode_image
    monkeypatch.setattr(sources, "decode_image", lambda p, **kw: decoded.append(p) or real(p, **kw))
    got = dataset_copies(ds, workers=2, chunk=5)
    assert sorted(decoded) == sorted(ds.source.paths)  # each file once
    assert np.array_equal(got.exact, exact) and np.array_equal(got.near, near)
    assert np.array_equal(got.closest, closest, equal_nan=True)
    name = {s: i for i, s in enumerate(ds.sources)}
    e, g = got.exact, got.near
    assert e[name["a/000.png"]] == e[name["a/020.png"]] >= 0 and e[name["b/007.png"]] == e[name["b/021.png"]] >= 0
    assert (e >= 0).sum() == 4
    assert g[name["a/000.png"]] == g[name["a/010.png"]] == g[name["a/020.png"]] >= 0
    assert g[name["b/001.png"]] == g[name["b/011.png"]] == g[name["b/099.jpg"]] >= 0
    assert g[name["a/002.png"]] == g[name["a/012.png"]] >= 0 and g[name["b/007.png"]] == -1
    arrays = data.from_arrays(x, y)  # an array: read in place, the groups of the array searches
    both = dataset_copies(arrays, chunk=7)
    assert np.array_equal(both.exact, find_duplicates(x)) and np.array_equal(both.near, find_near_duplicates(x))
    assert len(decoded) == len(ds)


def test_a_finished_scan_run_again_reads_its_near_copies_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scan run again on its finished folder read its exact copies back but decoded every image
    again for the near-copies: both come back now while the image files are the ones it scanned
    (names, sizes, times), and are looked for again when a file changed, the table is gone or the
    threshold, the thumbnail side or the floor differs (or run.json, an older scan's, does not say them)."""
    from labeltrace.data import near_duplicates as nd
    from labeltrace.scan_outputs import held_copies

    x = _edited(32)
    x[20] = x[0]  # an exact copy in a near group
    y = np.arange(32) % 2
    root = tmp_path / "data"
    for i in range(len(y)):
        (root / f"c{y[i]}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i]).save(root / f"c{y[i]}" / f"{i:03d}.png")
    cfg = ScanConfig(model="small-cnn", epochs=1, folds=2, batch_size=16, seed=0)
    out = tmp_path / "run"
    scan(data.from_folder(root), out, cfg, progress=False, log=lambda s: None)
    first = pq.read_table(out / rundir.NEAR_DUPLICATES)
    assert first.num_rows == 7 and rundir.open_run(out).meta["near_duplicates"]["groups"] == 3

    def refused(*a: object, **k: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(nd, "signatures", refused)
    monkeypatch.setattr("labeltrace.scan.dataset_copies", refused)
    scan(data.from_folder(root), out, cfg, progress=False, log=lambda s: None)
    assert pq.read_table(out / rundir.NEAR_DUPLICATES).equals(first)
    assert rundir.open_run(out).meta["near_duplicates"]["groups"] == 3
    ds = data.from_folder(root)
    held = held_copies(out, ds)
    assert held is not None and (held.near >= 0).sum() == 7
    meta = rundir.held_meta(out)
    assert held.settings == search_settings() == {"threshold": 0.98, "thumbnail": 16, "min_std": 0.03}
    for other in ({"threshold": 0.97}, {"thumbnail": 8}, {"min_std": 0.05}):  # found with another setting
        (out / rundir.RUN_JSON).write_text(json.dumps(meta | {"near_duplicates": meta["near_duplicates"] | other}))
        assert held_copies(out, ds) is None, other
    for key in ("thumbnail", "min_std"):  # an older scan's run.json, the threshold alone: its settings unknown
        older = {k: v for k, v in meta["near_duplicates"].items() if k != key}
        (out / rundir.RUN_JSON).write_text(json.dumps(meta | {"near_duplicates": older}))
        assert held_copies(out, ds) is None, key
    (out / rundir.RUN_JSON).write_text(json.dumps(meta))
    assert held_copies(out, ds, search_settings(threshold=0.97)) is None  # asked for other settings
    assert held_copies(out, ds, search_settings()) is not None
    (out / rundir.NEAR_DUPLICATES).unlink()
    assert held_copies(out, ds) is None  # its table is gone
    monkeypatch.undo()
    scan(ds, out, cfg, progress=False, log=lambda s: None)  # looked for again, and written again
    assert pq.read_table(out / rundir.NEAR_DUPLICATES).equals(first)
    img = Image.open(root / "c1" / "011.png")
    img.putpixel((0, 0), (img.getpixel((0, 0)) + 1) % 256)
    img.save(root / "c1" / "011.png")
    assert held_copies(out, data.from_folder(root)) is None  # a file changed: looked for again


def test_the_copies_say_the_settings_they_were_found_with(tmp_path: Path) -> None:
    """dataset_copies(threshold=...) searched at that threshold but run.json's near_duplicates said
    0.98 (the module's constant) whatever was used: the copies carry their settings now, and what
    is written records them."""
    from labeltrace.data.near_duplicates import dataset_copies
    from labeltrace.scan_outputs import write_near_duplicates

    x = _edited(24)
    y = np.arange(24) % 2
    ds = data.from_arrays(x, y)
    got = dataset_copies(ds, threshold=0.999, min_std=0.05, chunk=7)
    assert got.settings == {"threshold": 0.999, "thumbnail": 16, "min_std": 0.05}
    assert np.array_equal(got.near, find_near_duplicates(x, threshold=0.999, min_std=0.05))
    assert dataset_copies(ds).settings == search_settings()
    meta = write_near_duplicates(tmp_path, ds, got.near, got.closest, got.exact, y, settings=got.settings)
    assert {k: meta[k] for k in ("threshold", "thumbnail", "min_std")} == got.settings


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), fold=st.integers(1, 40))
def test_the_scans_search_folding_pairs_into_groups_finds_what_every_pair_finds(seed: int, fold: int) -> None:
    """Look-alikes make pairs by the square of their number (8,000 held 32 M pairs, 2.2 GB): the
    scan's search folds them into links of their groups past FOLD_PAIRS; its groups and closest
    cosines are those of all pairs held (near_pairs, near_groups, the best cosine per sample)."""
    import labeltrace.data.near_duplicates as nd

    rng = np.random.default_rng(seed)
    base = rng.normal(size=(6, 16))
    sig = base[rng.integers(0, 6, 60)] + rng.normal(scale=0.05, size=(60, 16))  # 6 clusters of look-alikes
    sig[rng.integers(0, 60, 10)] = rng.normal(size=(10, 16))  # some loners
    sig = (sig - sig.mean(1, keepdims=True)) / np.linalg.norm(sig - sig.mean(1, keepdims=True), axis=1, keepdims=True)
    ok = rng.random(60) > 0.1
    exact = np.full(60, -1)
    exact[[3, 7, 11]] = 0  # an exact-copy group (its rows need not look alike here: the links join them)
    exact[[20, 21]] = 1
    i, j, cos = near_pairs(sig, ok, 0.95, chunk=7)
    want = near_groups(60, i, j, exact)
    best = np.full(60, -np.inf)
    np.maximum.at(best, i, cos)
    np.maximum.at(best, j, cos)
    best[exact >= 0] = 1.0
    want_close = np.where(want >= 0, np.minimum(best, 1.0), np.nan).astype(np.float32)
    old = nd.FOLD_PAIRS
    nd.FOLD_PAIRS = fold
    try:
        got, close = nd._near_of(sig.astype(np.float32), ok, exact, 0.95, 7)
    finally:
        nd.FOLD_PAIRS = old
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(close, want_close)
