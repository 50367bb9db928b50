"""Manifests (issue 11 §8): missing-value labels, the ``id`` column, one-class datasets, and a
property-based fuzz test of the manifest reader."""

from __future__ import annotations

import csv
import re
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from labeltrace.cli import _load_dataset, _truth_labels, build_parser
from labeltrace.data import DataError, from_arrays, from_folder, from_manifest


def _gray(path: Path, value: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4), value, dtype=np.uint8)).save(path)
    return path


def _images(root: Path, n: int = 6) -> list[str]:
    return [_gray(root / "img" / f"{k}.png", 40 * k).relative_to(root).as_posix() for k in range(n)]


# --------------------------------------------------------------------------- missing labels
@pytest.mark.parametrize("marker", ["NaN", "nan", "N/A", "n/a", "NA", "null", "NULL", "None", "-",
                                    "<NA>", "#N/A", "", "  "])  # fmt: skip
def test_missing_value_labels_are_missing_not_classes(tmp_path: Path, marker: str) -> None:
    paths = _images(tmp_path)
    labels = ["cat", marker, "dog", "cat", marker, "dog"]
    with open(tmp_path / "m.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["path", "label"], *zip(paths, labels)])
    with pytest.raises(DataError, match=r"missing 'label' in 2 rows") as e:
        from_manifest(tmp_path / "m.csv")
    assert "row 2 (img/1.png)" in str(e.value) and "row 5 (img/4.png)" in str(e.value)


def test_missing_labels_in_parquet(tmp_path: Path) -> None:
    paths = _images(tmp_path)
    pq.write_table(pa.table({"path": paths, "label": ["a", None, "b", "a", "N/A", "b"]}),
                   tmp_path / "s.parquet")  # fmt: skip
    with pytest.raises(DataError, match=r"missing 'label' in 2 rows.*row 2 \(img/1\.png\).*row 5"):
        from_manifest(tmp_path / "s.parquet")
    pq.write_table(pa.table({"path": paths, "label": [0.0, 1.0, float("nan"), 0.0, 1.0, 1.0]}),
                   tmp_path / "f.parquet")  # fmt: skip
    with pytest.raises(DataError, match=r"missing 'label' in 1 row.*row 3 \(img/2\.png\)"):
        from_manifest(tmp_path / "f.parquet")


def test_missing_values_can_be_switched_off_for_a_class_named_NA(tmp_path: Path) -> None:
    paths = _images(tmp_path)
    labels = ["NA", "EU", "NA", "EU", "NA", "EU"]  # North America, Europe
    (tmp_path / "m.csv").write_text(
        "path,label\n" + "".join(f"{p},{q}\n" for p, q in zip(paths, labels))
    )
    with pytest.raises(DataError, match="missing 'label' in 3 rows"):
        from_manifest(tmp_path / "m.csv")
    ds = from_manifest(tmp_path / "m.csv", missing_values=())
    assert ds.classes == ("EU", "NA") and ds.labels.tolist() == [1, 0, 1, 0, 1, 0]
    (tmp_path / "e.csv").write_text("path,label\n" + "".join(f"{p},{q}\n" for p, q in zip(paths, ["NA", "", *labels[2:]])))
    with pytest.raises(DataError, match=r"missing 'label' in 1 row \(empty or null; --no-missing-markers") as e:
        from_manifest(tmp_path / "e.csv", missing_values=())  # only the empty cell: the message names no marker
    assert "N/A" not in str(e.value)


# --------------------------------------------------------------------------- the id column
def test_an_id_column_is_used_without_being_named(tmp_path: Path) -> None:
    paths = _images(tmp_path)
    ids = ["s0", "dup", "s2", "s3", "dup", "s5"]
    (tmp_path / "m.csv").write_text(
        "path,label,id\n"
        + "".join(f"{p},{k % 2},{i}\n" for k, (p, i) in enumerate(zip(paths, ids)))
    )
    with pytest.raises(DataError, match=r"duplicate ids: 'dup' \(rows 2, 5\)"):
        from_manifest(tmp_path / "m.csv")
    ids[4] = "s4"
    (tmp_path / "m.csv").write_text(
        "path,label,id\n"
        + "".join(f"{p},{k % 2},{i}\n" for k, (p, i) in enumerate(zip(paths, ids)))
    )
    ds = from_manifest(tmp_path / "m.csv")
    assert ds.ids == ("s0", "dup", "s2", "s3", "s4", "s5")
    # naming the path column as the id column keeps the paths as ids
    assert from_manifest(tmp_path / "m.csv", id_column="path").ids == tuple(paths)
    with pytest.raises(DataError, match=r"missing columns \['key'\].*--path-column / --label-column / --id-column"):
        from_manifest(tmp_path / "m.csv", id_column="key")


def test_cli_records_the_id_column_it_used(tmp_path: Path) -> None:
    """The truth column and the cleaned-label export key rows by the id column the dataset used."""
    paths = _images(tmp_path)
    (tmp_path / "m.csv").write_text(
        "id,path,label,clean\n"
        + "".join(f"x{k},{p},{k % 2},{(k + (k == 3)) % 2}\n" for k, p in enumerate(paths))
    )
    args = build_parser().parse_args(["scan", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o"),
                                      "--truth-column", "clean"])  # fmt: skip
    ds, origin = _load_dataset(args)
    assert origin["id_column"] == "id" and ds.ids == tuple(f"x{k}" for k in range(6))
    truth, kept = _truth_labels(args, ds, origin)
    assert truth.tolist() == [0, 1, 0, 0, 0, 1]
    assert kept == {**origin, "truth_column": "clean"} and "truth_column" not in origin  # run.json's, a copy


# --------------------------------------------------------------------------- one class
def test_one_class_is_said_in_the_users_terms(tmp_path: Path) -> None:
    paths = _images(tmp_path)
    (tmp_path / "m.csv").write_text("path,label\n" + "".join(f"{p},cat\n" for p in paths))
    msg = r"only one class found: 'cat' \(6 samples\); a dataset needs at least two classes"
    with pytest.raises(DataError, match=msg):
        from_manifest(tmp_path / "m.csv")
    for k in range(3):
        _gray(tmp_path / "folder" / "cat" / f"{k}.png", k)
    with pytest.raises(DataError, match=r"only one class found: 'cat' \(3 samples\)"):
        from_folder(tmp_path / "folder")
    with pytest.raises(DataError, match=r"only one class found: '0' \(4 samples\)"):
        from_arrays(np.zeros((4, 2, 2), np.uint8), [0, 0, 0, 0])
    # other classes named but empty: still one class, and the empty ones are named
    with pytest.raises(DataError, match=r"only one class found: 'cat'.*'dog' \(0\)"):
        from_manifest(tmp_path / "m.csv", classes=["cat", "dog"])


# --------------------------------------------------------------------------- fuzz
MARKERS = ["", " ", "NaN", "nan", "N/A", "NA", "null", "NULL", "None", "-", "<NA>", "#N/A"]
NAMES = ["cat", "dog", "big cat", "Ünïcödé", "日本", "3x"]
KINDS = ["ok", "ok", "ok", "ok", "dotdot_in", "abs_in", "dotdot_out", "abs_out", "missing"]

file_names = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="/\\"),
    min_size=1, max_size=10,
).filter(lambda s: s == s.strip() and s not in (".", ".."))  # fmt: skip
POOLS = [["cat", "dog"], [0, 1], ["Ünïcödé", "big cat", "日本"], [0, 1, 2]]
PADS = ["", " ", "  "]


@st.composite
def manifest_rows(draw: st.DrawFn) -> list[tuple[str, str, object, str]]:
    """Rows (kind of path, file name, label, padding around the path cell). Half of the manifests
    are drawn clean -- paths inside the root, every label of a pool at least twice -- so that
    loading succeeds often; the other half anything goes."""
    if draw(st.booleans()):
        pool: list[object] = draw(st.sampled_from(POOLS))
        n = draw(st.integers(2 * len(pool), 10))
        shift = draw(st.integers(0, len(pool) - 1))
        kinds = ["ok", "ok", "dotdot_in", "abs_in"]
        labels = [pool[(k + shift) % len(pool)] for k in range(n)]
    else:
        n = draw(st.integers(0, 10))
        kinds = KINDS
        labels = [draw(st.sampled_from([*NAMES, -1, 0, 1, 2, 3, *MARKERS])) for _ in range(n)]
    return [
        (draw(st.sampled_from(kinds)), draw(file_names), lab, draw(st.sampled_from(PADS)))
        for lab in labels
    ]


def _is_missing(v: object) -> bool:
    return isinstance(v, str) and v.strip().lower() in {m.strip().lower() for m in MARKERS}


def _expected(rows_, ids, drop):
    """The problems a reader must report for this manifest (regexes), and the correct dataset when
    there are none -- worked out from what was written, independently of the reader."""
    if drop:
        return [r"missing columns"], None
    problems = []
    if not rows_:
        return [r"empty"], None
    if any(_is_missing(lab) for _, _, lab, _ in rows_):
        problems.append(r"missing 'label' in \d+ rows?")
    keys = ids if ids is not None else [cell for _, cell, _, _ in rows_]
    if len(set(keys)) < len(keys):
        problems.append(r"duplicate ids")
    if any(kind in ("dotdot_out", "abs_out") for kind, *_ in rows_):
        problems.append(r"outside the data root")
    if any(kind == "missing" for kind, *_ in rows_):
        problems.append(r"file not found")
    valid = [lab for _, _, lab, _ in rows_ if not _is_missing(lab)]
    if valid and all(isinstance(v, int) for v in valid):
        if min(valid) < 0:
            problems.append(r"negative integer labels")
            classes = None
        else:
            classes = [str(k) for k in range(max(valid) + 1)]
            if max(valid) >= len(valid):  # positions beyond N: refused before the class counts are
                problems.append(r"so label \d+ would make")
            elif min(valid) > 0:
                problems.append(r"no label is 0 \(they run from")
    else:
        classes = sorted({str(v) for v in valid})
    names = [str(v) for v in valid]
    if classes is not None:
        counts = {c: names.count(c) for c in classes}
        if sum(1 for c in classes if counts[c] > 0) == 1:
            problems.append(r"only one class found")
        elif any(c < 2 for c in counts.values()):
            problems.append(r"fewer than 2 samples")
    if problems:
        return problems, None
    return [], {"classes": tuple(classes), "labels": [str(lab) for _, _, lab, _ in rows_],
                "ids": tuple(keys)}  # fmt: skip


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(
    rows_=manifest_rows(),
    fmt=st.sampled_from(["csv", "parquet"]),
    id_kind=st.sampled_from(["none", "none", "unique", "random"]),
    id_values=st.lists(st.sampled_from("abcdefghijkl"), min_size=10, max_size=10),
    drop=st.sampled_from([None] * 8 + ["path", "label"]),
    int_column=st.booleans(),
)
def test_manifest_reader_fuzz(rows_, fmt, id_kind, id_values, drop, int_column) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root, out = base / "root", base / "out"
        root.mkdir()
        cells, files = [], []
        for k, (kind, name, _lab, pad) in enumerate(rows_):
            inside = root / f"d{k}" / name
            outside = out / f"d{k}" / name
            cell, target = {
                "ok": (f"d{k}/{name}", inside),
                "dotdot_in": (f"d{k}/../d{k}/{name}", inside),
                "abs_in": (str(inside), inside),
                "dotdot_out": (f"../out/d{k}/{name}", outside),
                "abs_out": (str(outside), outside),
                "missing": (f"d{k}/{name}", None),
            }[kind]
            if target is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(b"")
            cells.append(pad + cell + pad)
            files.append(inside.resolve() if target is None else target.resolve())
        ids = None
        if id_kind != "none":
            ids = (
                [f"u{k}" for k in range(len(rows_))]
                if id_kind == "unique"
                else id_values[: len(rows_)]
            )
        columns: dict[str, list] = {"path": cells, "label": [lab for _, _, lab, _ in rows_]}
        if ids is not None:
            columns["id"] = ids
        if drop:
            del columns[drop]
        man = root / f"m.{fmt}"
        if fmt == "csv":
            with open(man, "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(list(columns))
                w.writerows(zip(*columns.values()))
        else:
            table = {}
            for c, vals in columns.items():
                if c == "label" and int_column and all(isinstance(v, int) or v == "" for v in vals):
                    table[c] = pa.array([None if v == "" else v for v in vals], pa.int64())
                else:
                    table[c] = pa.array([str(v) for v in vals], pa.string())
            pq.write_table(pa.table(table), man)
        problems, want = _expected(
            [(kind, cells[k].strip(), lab, pad) for k, (kind, _n, lab, pad) in enumerate(rows_)],
            ids,
            drop,
        )
        # the expected ids of path-keyed rows are the paths as written (stripped, POSIX)
        try:
            ds = from_manifest(man, verify=False)
        except ValueError as exc:  # DataError included; anything else fails the test
            assert problems, f"refused a valid manifest: {exc}"
            assert any(re.search(p, str(exc)) for p in problems), (problems, str(exc))
            event(f"refused: {sorted(problems)}")
            return
        assert not problems, f"accepted a manifest with problems {problems}"
        event("loaded")
        assert ds.classes == want["classes"]
        assert [ds.classes[i] for i in ds.labels] == want["labels"]
        assert ds.ids == tuple(Path(i).as_posix() if ids is None else i for i in want["ids"])
        assert [ds.path(i) for i in range(len(ds))] == files


def _manifest(root: Path, text: str, encoding: str = "utf-8") -> Path:
    _images(root)
    (root / "m.csv").write_bytes(text.encode(encoding))
    return root / "m.csv"


def test_numeric_class_names_with_a_label_that_is_no_name_are_refused(tmp_path: Path) -> None:
    """classes.txt "1, 0": labels 1 1 0 0 read by name; one "01" among them used to switch every
    label to a position, silently swapping both classes. Now it is refused, naming the rows."""
    (tmp_path / "classes.txt").write_text("1\n0\n")
    ok = _manifest(tmp_path, "path,label\nimg/0.png,1\nimg/1.png,1\nimg/2.png,0\nimg/3.png,0\n")
    ds = from_manifest(ok, classes=["1", "0"])
    assert [ds.classes[i] for i in ds.labels] == ["1", "1", "0", "0"]
    bad = _manifest(tmp_path, "path,label\nimg/0.png,1\nimg/1.png,1\nimg/2.png,0\nimg/3.png,0\nimg/4.png,01\n")
    with pytest.raises(DataError, match=r"write one class two ways.*'1' \(row 1 \(img/0\.png\)\) / '01' \(row 5 \(img/4\.png\)\)"):
        from_manifest(bad, classes=["1", "0"])
    with pytest.raises(DataError, match="ambiguous labels"):
        from_arrays(np.zeros((4, 4, 4), np.uint8), np.array([1, 1, 0, 0]), classes=["1", "0"])


def test_csv_rows_with_other_field_counts_and_non_utf8_files_are_named(tmp_path: Path) -> None:
    extra = _manifest(tmp_path, "path,label\nimg/0.png,a\nimg/1.png,a\nimg/2.png,b\nimg/3.png,b,c\n")
    with pytest.raises(DataError, match=r"m\.csv: data rows \[4\].*2 fields of the header"):
        from_manifest(extra)
    short = _manifest(tmp_path, "path,label,id\nimg/0.png,a,x\nimg/1.png,a\n")
    with pytest.raises(DataError, match=r"data rows \[2\]"):
        from_manifest(short)
    latin = _manifest(tmp_path, "path,label\nimg/0.png,café\nimg/1.png,café\nimg/2.png,b\nimg/3.png,b\n", "latin-1")
    with pytest.raises(DataError, match=r"m\.csv: not UTF-8 text"):
        from_manifest(latin)


def test_a_classes_txt_with_a_byte_order_mark(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("cat\ndog\n", encoding="utf-8-sig")
    m = _manifest(tmp_path, "path,label\nimg/0.png,cat\nimg/1.png,cat\nimg/2.png,dog\nimg/3.png,dog\n")
    assert from_manifest(m).classes == ("cat", "dog")


@pytest.mark.parametrize("missing", [float("nan"), None])
def test_missing_labels_in_arrays_are_refused_not_a_class(missing: object) -> None:
    labels = np.array([0.0, 0.0, 1.0, 1.0, missing, missing], dtype=object if missing is None else float)
    with pytest.raises(DataError, match=r"missing labels \(empty, None or NaN\): sample 4, sample 5"):
        from_arrays(np.zeros((6, 4, 4), np.uint8), labels)


def test_truth_column_rows_match_paths_written_with_a_dot(tmp_path: Path) -> None:
    """Without an id column the samples are named by their POSIX paths (./img/0.png is
    img/0.png); the truth column's rows are keyed the same way (a KeyError before)."""
    paths = _images(tmp_path)
    (tmp_path / "m.csv").write_text(
        "path,label,clean\n" + "".join(f"./{p},{k % 2},{(k + (k == 3)) % 2}\n" for k, p in enumerate(paths))
    )
    args = build_parser().parse_args(["scan", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o"),
                                      "--truth-column", "clean"])  # fmt: skip
    ds, origin = _load_dataset(args)
    assert ds.ids == tuple(paths)
    assert _truth_labels(args, ds, origin)[0].tolist() == [0, 1, 0, 0, 0, 1]


def test_manifests_that_cannot_be_read_as_written_are_named(tmp_path: Path) -> None:
    """A stray double quote in a long CSV ended in csv.Error's traceback; a NUL byte in a path said
    only 'embedded null byte'; a cut-short Parquet file named no file; URLs and Windows paths were
    'file not found', the URL with its '//' folded."""
    rows = ["img/0.png,a", "img/1.png,a", "img/2.png,a", '"img/3.png,b'] + ["img/4.png,b"] * 15_000
    m = _manifest(tmp_path, "path,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"m\.csv: line 5 cannot be read as CSV \(field larger than field limit.*a stray double quote"):
        from_manifest(m)
    body = ["img/0.png,a", "img/1.png,a", "img/2.png,b", "img/3.png,b"]
    for bad, words in (("img/4\x00.png", r"NUL byte.*row 3 \('img/4\\x00\.png'\)"),
                       ("s3://bucket/img/4.png", r"URLs: row 3 \('s3://bucket/img/4\.png'\); labeltrace reads local files"),
                       ("img\\4.png", r"backslashes name no file: row 3 \('img\\\\4\.png'\); Windows paths\? Write them with '/'")):
        m = _manifest(tmp_path, "path,label\n" + "\n".join(body[:2] + [f"{bad},a"] + body[2:]) + "\n")
        with pytest.raises(DataError, match=r"m\.csv: paths .*" + words):
            from_manifest(m)
    pq.write_table(pa.table({"path": [r.split(",")[0] for r in body], "label": ["a", "a", "b", "b"]}), tmp_path / "m.parquet")
    data = (tmp_path / "m.parquet").read_bytes()
    (tmp_path / "m.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"m\.parquet: not a readable Parquet file \(.*magic bytes"):
        from_manifest(tmp_path / "m.parquet")


def test_a_layout_that_is_nearly_right_says_how_to_read_it(tmp_path: Path) -> None:
    """Three messages that named the symptom, not the cause: a classes.txt picked up beside the
    manifest with a name twice ('duplicate class names', no file), an `id` column of patient ids
    taken as sample ids (the user may not know it is read), a folder of images beside its
    labels.csv ('only one class found: images')."""
    (tmp_path / "classes.txt").write_text("benign\nmalignant\n\nbenign\n")
    m = _manifest(tmp_path, "path,label\nimg/0.png,benign\nimg/1.png,benign\nimg/2.png,malignant\nimg/3.png,malignant\n")
    with pytest.raises(DataError, match=r"classes\.txt: class names listed more than once: 'benign' \(lines 1, 4\)"):
        from_manifest(m)
    (tmp_path / "classes.txt").unlink()
    m = _manifest(tmp_path, "path,label,id\nimg/0.png,a,P0\nimg/1.png,a,P0\nimg/2.png,b,P1\nimg/3.png,b,P2\n")
    with pytest.raises(DataError, match=r"'P0' \(rows 1, 2\); the column 'id' is read as the sample ids.*--id-column path"):
        from_manifest(m)
    assert from_manifest(m, id_column="path").ids[:2] == ("img/0.png", "img/1.png")
    with pytest.raises(DataError, match=r"one class folder \('img'\), and a manifest beside: m\.csv; .*labeltrace scan .*m\.csv"):
        from_folder(tmp_path)
