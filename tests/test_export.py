"""Exports: Label Studio tasks + config, Label Studio results read back, CSV/Parquet, FiftyOne."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import sqlite3
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pyarrow as pa
import pyarrow.csv  # noqa: F401 - pa.csv
import pyarrow.parquet as pq
import pytest
from fake_fiftyone import fake_fiftyone
from PIL import Image
from runfactory import csv_rows, make_run

from labeltrace.data.errors import MissingDependencyError
from labeltrace.export import export_run, import_labelstudio, labelstudio_config
from labeltrace.export.cleaned import export_labels
from labeltrace.relabel.runstore import run_store
from labeltrace.rundir import open_run, write_table


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("exp"), n=24, k=3, seed=2)


def _decode(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))


def test_labelstudio_tasks(run_dir: Path, tmp_path: Path) -> None:
    out = export_run(run_dir, "labelstudio", tmp_path / "tasks.json")
    tasks = json.loads(Path(out).read_text())
    run = open_run(run_dir)
    rank = run.column("rank")
    assert [t["data"]["labeltrace_id"] for t in tasks] == np.argsort(rank, kind="stable").tolist()
    t0 = tasks[0]
    i = t0["data"]["labeltrace_id"]
    assert t0["data"]["given_label"] == run.column("given_label")[i]
    assert t0["data"]["rank"] == 1
    # the current (here the given) label last: Label Studio pre-selects the last prediction's model
    # version on a project's first import, and a Submit unchanged took the model's suggestion (Label Studio 1.23.2)
    sugg_pred, given_pred = t0["predictions"]
    assert given_pred["model_version"] == "current-label"
    assert given_pred["result"] == [
        {
            "from_name": "label",
            "to_name": "image",
            "type": "choices",
            "value": {"choices": [run.column("given_label")[i]]},
        }
    ]
    assert sugg_pred["result"][0]["value"]["choices"] == [run.column("suggested_label")[i]]
    assert sugg_pred["score"] == pytest.approx(run.column("suggested_prob")[i])
    img = _decode(t0["data"]["image"])
    orig = np.asarray(Image.open(run.data_root / run.column("path")[i]).convert("RGB"))
    assert img.shape == (256, 256, 3) and np.array_equal(img[::32, ::32], orig)
    cfg = ET.fromstring(Path(out).with_name("tasks.config.xml").read_text())
    label = cfg.find("Choices[@name='label']")
    assert [c.get("value") for c in label.findall("Choice")] == run.classes
    assert label.get("toName") == cfg.find("Image").get("name") == "image"


def test_labelstudio_local_files_and_subset(run_dir: Path, tmp_path: Path) -> None:
    run = open_run(run_dir)
    out = export_run(
        run_dir, "labelstudio", tmp_path / "t.json", images="local-files", only_suspects=True
    )
    tasks = json.loads(Path(out).read_text())
    assert len(tasks) == int(run.column("is_suspect").sum())
    for t in tasks:  # under the folder above the data root, by default: the data root is the storage
        u = urlparse(t["data"]["image"])
        assert u.path == "/data/local-files/"
        assert parse_qs(u.query)["d"] == ["data/" + run.column("path")[t["data"]["labeltrace_id"]]]
    out = export_run(
        run_dir,
        "labelstudio",
        tmp_path / "t2.json",
        images="local-files",
        document_root=run.data_root.parent.parent,
    )
    t = json.loads(Path(out).read_text())[0]
    assert parse_qs(urlparse(t["data"]["image"]).query)["d"] == [
        f"{run.data_root.parent.name}/data/" + run.column("path")[t["data"]["labeltrace_id"]]
    ]
    with pytest.raises(ValueError, match="outside the Label Studio document root"):
        export_run(
            run_dir,
            "labelstudio",
            tmp_path / "t3.json",
            images="local-files",
            document_root=tmp_path,
        )


def test_local_files_need_files(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=20, k=3, with_files=False)
    with pytest.raises(ValueError, match="data-uri"):
        export_run(rd, "labelstudio", images="local-files")
    tasks = json.loads(Path(export_run(rd, "labelstudio")).read_text())
    i = tasks[0]["data"]["labeltrace_id"]
    assert np.array_equal(
        _decode(tasks[0]["data"]["image"])[::32, ::32], np.load(rd / "images.npy")[i]
    )


def test_config_escapes_class_names() -> None:
    names = ["a<b", 'say "hi"', "x&y"]
    cfg = ET.fromstring(labelstudio_config(names))
    assert [c.get("value") for c in cfg.find("Choices[@name='label']").findall("Choice")] == names


def _annotation(
    choice: str | None, *, at: str, unsure: bool = False, cancelled: bool = False
) -> dict:
    result = []
    if choice is not None:
        result.append(
            {
                "id": "x1",
                "from_name": "label",
                "to_name": "image",
                "type": "choices",
                "value": {"choices": [choice]},
                "origin": "manual",
            }
        )
    if unsure:
        result.append(
            {
                "id": "x2",
                "from_name": "review",
                "to_name": "image",
                "type": "choices",
                "value": {"choices": ["unsure"]},
            }
        )
    return {
        "id": 100,
        "completed_by": 1,
        "result": result,
        "was_cancelled": cancelled,
        "ground_truth": False,
        "created_at": at,
        "updated_at": at,
        "lead_time": 3.2,
    }


def test_import_labelstudio_round_trip(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=24, k=3, seed=4)
    tasks = json.loads(Path(export_run(rd, "labelstudio")).read_text())
    by_id = {t["data"]["labeltrace_id"]: t for t in tasks}
    given = open_run(rd).column("given_label")
    export = []
    for k, (sid, anns) in enumerate(
        {
            0: [_annotation("bird", at="2024-05-01T10:00:00.000000Z")],
            1: [
                _annotation("cat", at="2024-05-01T10:00:00Z"),
                _annotation("airplane", at="2024-05-02T09:00:00Z"),
            ],
            2: [_annotation(None, at="2024-05-01T10:00:00Z", unsure=True)],
            3: [_annotation(None, at="2024-05-01T10:00:00Z", cancelled=True)],
            4: [],
            5: [_annotation(str(given[5]), at="2024-05-03T08:00:00+02:00")],
        }.items()
    ):
        task = dict(by_id[sid], id=500 + k, annotations=anns, project=1)
        export.append(task)
    f = tmp_path / "ls_export.json"
    f.write_text(json.dumps(export))
    assert import_labelstudio(rd, f) == 5
    con = sqlite3.connect(rd / "reviews.db")
    rows = con.execute(
        "SELECT sample_id, kind, decision, reviewer, decided_at, source FROM decisions ORDER BY seq"
    ).fetchall()
    con.close()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (0, "label", "bird"),
        (1, "label", "airplane"),
        (2, "unsure", "unsure"),
        (3, "skip", "skip"),
        (5, "label", str(given[5])),
    ]
    assert {r[3] for r in rows} == {"labelstudio"} and {r[5] for r in rows} == {"labelstudio"}
    assert rows[4][4] == "2024-05-03T06:00:00.000+00:00"
    assert import_labelstudio(rd, f) == 0  # idempotent
    out = export_labels(rd)
    labels = [r["label"] for r in csv_rows(out)]
    want = list(given)
    want[0], want[1] = "bird", "airplane"
    assert labels == want


def test_import_labelstudio_min_and_errors(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=24, k=3)
    ext = open_run(rd).column("external_id")
    f = tmp_path / "min.json"
    f.write_text(
        json.dumps(
            [
                {"image": "x", "labeltrace_id": 7, "label": "cat", "id": 1},
                {"image": "x", "external_id": str(ext[8]), "review": "unsure", "id": 2},
                {"image": "x", "labeltrace_id": 9, "id": 3, "annotator": None, "annotation_id": None,
                 "created_at": None, "updated_at": None, "lead_time": None},  # never annotated, as exported
            ]
        )
    )
    told: list[str] = []  # the third task was never annotated: nothing to say of it
    assert import_labelstudio(rd, f, warn=told.append) == 2
    assert import_labelstudio(rd, f, warn=told.append) == 0  # no times in a JSON-MIN export: a re-import repeats nothing
    assert len(told) == 2 and all("is a JSON-MIN export, which leaves skipped (cancelled) annotations and ground-truth marks out" in t
                                  for t in told)  # fmt: skip
    f.write_text(json.dumps([{"image": "x", "labeltrace_id": 9, "id": 3, "annotator": 4, "annotation_id": 7}]))
    with pytest.warns(UserWarning, match="sample 9 holds no class"):  # annotated, but empty
        assert import_labelstudio(rd, f) == 0
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            [
                {
                    "data": {"labeltrace_id": 1},
                    "annotations": [_annotation("bird", at="2024-01-01T00:00:00Z")],
                },
                {
                    "data": {"labeltrace_id": 2},
                    "annotations": [_annotation("zebra", at="2024-01-01T00:00:00Z")],
                },
            ]
        )
    )
    with pytest.raises(ValueError, match="zebra"):
        import_labelstudio(rd, bad)
    bad.write_text(json.dumps([{"data": {"labeltrace_id": 99}, "annotations": []}]))
    with pytest.raises(ValueError, match="no sample matches"):
        import_labelstudio(rd, bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        import_labelstudio(rd, bad)
    con = sqlite3.connect(rd / "reviews.db")
    assert (
        con.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 2
    )  # failed imports wrote nothing
    con.close()


def test_csv_and_parquet(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=24, k=3)
    write_table(
        rd / "queue.parquet",
        pa.table(
            {
                "id": np.array([5, 2, 9], np.int64),
                "priority": [1.0, 2.0, 3.0],
                "rank": np.array([2, 1, 3], np.int64),
            }
        ),
    )
    f = tmp_path / "d.json"
    f.write_text(json.dumps([{"labeltrace_id": 2, "label": "bird"}]))
    import_labelstudio(rd, f)
    t = pq.read_table(export_run(rd, "parquet"))
    assert t.num_rows == 24 and t.column("id").to_pylist()[:3] == [2, 5, 9]  # the queue first, then the rest
    assert t.column("queue_position").to_pylist() == [1, 2, 3] + [None] * 21  # the queue file's rank
    assert t.column("review_decision").to_pylist()[:3] == ["bird", None, None]
    assert t.column("reviewer").to_pylist()[0] == "labelstudio"
    given = open_run(rd).column("given_label")
    assert t.column("final_label").to_pylist()[:3] == ["bird", given[5], given[9]]
    rows = csv_rows(export_run(rd, "csv", tmp_path / "e.csv"))
    assert [r["id"] for r in rows][:3] == ["2", "5", "9"] and len(rows) == 24
    with pytest.raises(ValueError, match=r"\.csv"):
        export_run(rd, "csv", tmp_path / "e.txt")
    with pytest.raises(ValueError, match="unknown export target"):
        export_run(rd, "cvat")  # type: ignore[arg-type]


@pytest.mark.skipif(
    importlib.util.find_spec("fiftyone") is not None,
    reason="fiftyone installed: not exercised here",
)
def test_fiftyone_missing_names_the_extra(run_dir: Path) -> None:
    with pytest.raises(MissingDependencyError, match=r"labeltrace\[fiftyone\]"):
        export_run(run_dir, "fiftyone")


def _fake_fiftyone(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    return fake_fiftyone(monkeypatch)


def test_fiftyone_fields_say_what_they_hold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run without an SEI column has no `sei` field (its score went there under SEI's name)."""
    made = _fake_fiftyone(monkeypatch)
    rd = make_run(tmp_path / "a", n=12, k=3, seed=0)
    run = open_run(rd)
    assert "sei" in run.samples.column_names
    export_run(rd, "fiftyone", "with")
    sei, score = run.column("sei"), run.column("score")
    for s in made["with"].samples:  # type: ignore[attr-defined]
        i = s["labeltrace_id"]
        assert s["sei"] == pytest.approx(float(sei[i])) and s["score"] == pytest.approx(float(score[i]))
    write_table(rd / "samples.parquet", run.samples.drop_columns(["sei"]))
    export_run(rd, "fiftyone", "without")
    assert all("sei" not in s and "score" in s for s in made["without"].samples)  # type: ignore[attr-defined]


def test_import_labelstudio_min_takes_the_latest_annotation_not_the_last_listed(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=24, k=3)
    f = tmp_path / "min.json"
    f.write_text(json.dumps([
        {"image": "x", "labeltrace_id": 0, "label": "bird", "updated_at": "2024-05-02T12:00:00Z", "id": 1},
        {"image": "x", "labeltrace_id": 0, "label": "cat", "updated_at": "2024-05-01T09:00:00Z", "id": 2},
    ]))  # fmt: skip
    assert import_labelstudio(rd, f) == 2  # both kept in the history
    con = sqlite3.connect(rd / "reviews.db")
    assert con.execute("SELECT decision FROM decisions ORDER BY seq").fetchall() == [("cat",), ("bird",)]
    con.close()
    labels = csv_rows(export_labels(rd, tmp_path / "clean.csv"))
    assert labels[0]["label"] == "bird"


def test_import_labelstudio_refuses_a_task_whose_two_ids_disagree(tmp_path: Path) -> None:
    """labeltrace_id 1 with sample 2's external_id: a task file of another scan would put its
    decisions on the wrong samples; refused, naming both, and saying how a rescan's file imports."""
    rd = make_run(tmp_path, n=24, k=3)
    ext = open_run(rd).column("external_id")
    f = tmp_path / "min.json"
    f.write_text(json.dumps([{"image": "x", "labeltrace_id": 1, "external_id": str(ext[2]), "label": "cat"}]))
    with pytest.raises(ValueError, match=rf"labeltrace_id 1 is this run's sample '{ext[1]}'.*\(sample 2\).*--by external_id"):
        import_labelstudio(rd, f)
    f.write_text(json.dumps([{"image": "x", "labeltrace_id": 1, "external_id": str(ext[1]), "label": "cat"}]))
    assert import_labelstudio(rd, f) == 1


def test_import_labelstudio_by_external_id_reads_a_rescan_s_tasks_onto_their_images(tmp_path: Path) -> None:
    """A task file exported from an earlier scan of the same images, which a rescan numbers otherwise
    (images added or removed): it was refused, and a finished Label Studio round could not be read into
    the rescan. ``by="external_id"`` matches each task by the image's name; the samples whose task
    numbered another are named."""
    rd = make_run(tmp_path, n=24, k=3)
    run = open_run(rd)
    ext, classes = run.column("external_id"), run.classes
    f = tmp_path / "min.json"
    earlier = {1: 2, 2: 1, 7: 7}  # the earlier scan's numbers → this run's samples (7 numbered alike)
    f.write_text(json.dumps([{"image": "x", "labeltrace_id": old, "external_id": str(ext[now]),
                              "label": classes[now % 3], "id": old + 1} for old, now in earlier.items()]))  # fmt: skip
    told: list[str] = []
    assert import_labelstudio(rd, f, info=told.append, by="external_id") == 3
    cur = run_store(open_run(rd)).current()
    assert {i: cur[i].decision for i in cur} == {1: classes[1], 2: classes[2], 7: classes[1]}
    said = [t for t in told if "matched by external_id" in t]
    assert len(said) == 1 and "2 samples whose task numbered another" in said[0] and "samples 1, 2" in said[0]
    # by external_id, a task without one names no image; an unknown `by` is refused
    f.write_text(json.dumps([{"image": "x", "labeltrace_id": 5, "label": classes[0], "id": 9}]))
    with pytest.raises(ValueError, match="task 9: has no external_id"):
        import_labelstudio(rd, f, by="external_id")
    with pytest.raises(ValueError, match="by must be one of labeltrace_id, external_id"):
        import_labelstudio(rd, f, by="path")


def test_only_suspects_applies_to_tables_and_is_refused_for_fiftyone(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=30, k=3)
    run = open_run(rd)
    n_sus = int(run.column("is_suspect").sum())
    assert 0 < n_sus < 30
    for to in ("csv", "parquet"):
        out = export_run(rd, to, tmp_path / f"s.{to}", only_suspects=True)
        table = pq.read_table(out) if to == "parquet" else pa.csv.read_csv(out)
        assert table.num_rows == n_sus and all(table.column("is_suspect").to_pylist())
    with pytest.raises(ValueError, match="does not apply to a FiftyOne export"):
        export_run(rd, "fiftyone", only_suspects=True)


def test_fiftyone_never_replaces_an_existing_dataset_unasked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:  # fmt: skip
    made = _fake_fiftyone(monkeypatch)
    rd = make_run(tmp_path, n=12, k=3, seed=0)
    theirs = sys.modules["fiftyone"].Dataset("mine")  # the user's own dataset of that name
    with pytest.raises(ValueError, match=r"'mine' already exists \(not an export of this run\); pass --overwrite"):
        export_run(rd, "fiftyone", "mine")
    assert made["mine"] is theirs
    assert export_run(rd, "fiftyone", "mine", overwrite=True) == "mine" and made["mine"] is not theirs
    first = made["mine"]  # now an export of this run: the tags and edits made in FiftyOne since are its user's
    with pytest.raises(ValueError, match=r"'mine' already exists \(an earlier export of this run\); pass --update \(update=True\).*--overwrite"):
        export_run(rd, "fiftyone", "mine")
    assert made["mine"] is first
    assert export_run(rd, "fiftyone", "mine", overwrite=True) == "mine" and made["mine"] is not first
    other = make_run(tmp_path / "b", n=12, k=3, seed=1)
    with pytest.raises(ValueError, match="not an export of this run"):
        export_run(other, "fiftyone", "mine")


def test_a_table_export_lists_every_sample_when_the_queue_holds_a_subset(tmp_path: Path) -> None:
    """A queue file of three samples: the CSV export held those three rows, and a decision on a
    sample outside the queue was in the cleaned labels but not in the export."""
    from labeltrace.relabel.runstore import run_store
    from labeltrace.rundir import QUEUE, open_run, write_table

    rd = make_run(tmp_path, n=10, k=3, seed=4)
    write_table(rd / QUEUE, pa.table({"id": pa.array([3, 1, 2], pa.int64()), "priority": [3.0, 2.0, 1.0],
                                      "rank": pa.array([1, 2, 3], pa.int64())}))  # fmt: skip
    run = open_run(rd)
    relabel = run.classes[(run.column("given_label_id")[7] + 1) % 3]
    run_store(run).add(7, relabel, reviewer="ann")
    rows = csv_rows(export_run(rd, "csv", tmp_path / "export.csv"))
    rank = run.column("rank")
    rest = sorted(set(range(10)) - {1, 2, 3}, key=lambda i: (rank[i], i))
    assert [int(r["id"]) for r in rows] == [3, 1, 2, *rest]
    assert [r["queue_position"] for r in rows] == ["1", "2", "3"] + [""] * 7
    (seven,) = [r for r in rows if r["id"] == "7"]
    assert (seven["review_decision"], seven["final_label"]) == (relabel, relabel)


def test_labelstudio_export_writes_the_tasks_one_at_a_time(run_dir: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The export built every task (each data-URI task holding its image) in one list, then one
    JSON string: GBs at 10^5 images. It streams them now, and writes the same tasks."""
    import labeltrace.export as ex
    from labeltrace.export.labelstudio import labelstudio_tasks

    want = labelstudio_tasks(open_run(run_dir))
    monkeypatch.setattr(ex, "labelstudio_tasks", lambda *a, **k: pytest.fail("the whole list in memory"))
    out = export_run(run_dir, "labelstudio", tmp_path / "tasks.json")
    assert json.loads(Path(out).read_text()) == want
    none = np.zeros(open_run(run_dir).num_samples, bool)
    monkeypatch.setattr(type(open_run(run_dir)), "column",
                        lambda self, name, _c=type(open_run(run_dir)).column: none if name == "is_suspect" else _c(self, name))
    out = export_run(run_dir, "labelstudio", tmp_path / "empty.json", only_suspects=True)
    assert json.loads(Path(out).read_text()) == []


def test_the_fiftyone_and_label_studio_exports_carry_the_review(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:  # fmt: skip
    """After a review both exports held only the model's view: a Label Studio round trip then
    undid the expert's corrections without anyone seeing them."""
    from labeltrace.export.labelstudio import labelstudio_tasks
    from labeltrace.relabel.runstore import run_store

    made = _fake_fiftyone(monkeypatch)
    rd = make_run(tmp_path, n=12, k=3, classes=["cat", "dog", "fox"], seed=0)
    run = open_run(rd)
    given = run.column("given_label_id")
    other = ["cat", "dog", "fox"][(int(given[4]) + 1) % 3]
    run_store(run).add(4, other, reviewer="ada")
    run_store(run).add(5, "unsure", reviewer="ada")
    export_run(rd, "fiftyone", "fo")
    by_id = {s["labeltrace_id"]: s for s in made["fo"].samples}  # type: ignore[attr-defined]
    assert (by_id[4]["review_decision"], by_id[4]["review_status"]) == (other, "consensus")
    assert by_id[4]["final"]["label"] == other and by_id[4]["given"]["label"] != other
    assert by_id[5]["review_status"] == "unsure" and by_id[5]["final"]["label"] == by_id[5]["given"]["label"]
    assert "review_status" not in by_id[6]
    tasks = {t["data"]["labeltrace_id"]: t["data"] for t in labelstudio_tasks(run, images="data-uri")}
    assert (tasks[4]["review_decision"], tasks[4]["review_status"]) == (other, "consensus")
    assert f"reviewed: {other} (consensus)" in tasks[4]["info"] and "review_status" not in tasks[6]


def test_a_large_label_studio_export_with_embedded_images_is_warned_of(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Every image re-encoded into the JSON: 2,000 photos took 2 minutes and 541 MB, 300k hours and
    tens of GB, in silence."""
    import labeltrace.export as ex

    rd = make_run(tmp_path, n=12, k=3, classes=["cat", "dog", "fox"], seed=1)
    monkeypatch.setattr(ex, "LARGE_DATA_URI", 10)
    told: list[str] = []
    ex.export_run(rd, "labelstudio", tmp_path / "t.json", warn=told.append)
    assert any("12 tasks each embed their image as a data URI" in t and "--images local-files" in t for t in told)
    told.clear()
    ex.export_run(rd, "labelstudio", tmp_path / "t2.json", images="local-files", warn=told.append)
    assert not any("data URI" in t for t in told)


def test_local_files_a_browser_cannot_show_are_embedded_and_named(tmp_path: Path) -> None:
    """A DICOM scan's tasks linked /data/local-files/?d=...dcm (a blank task in the annotator's
    browser), a 12-bit image in a 16-bit PNG nearly black."""
    from labeltrace.report.images import browser_shows as _shown_as_is

    rd = make_run(tmp_path, n=20, k=3, seed=4)
    run = open_run(rd)
    i = 5
    f = run.data_root / run.column("path")[i]
    Image.fromarray((np.arange(64, dtype=np.uint16).reshape(8, 8) * 60)).save(f)  # 12-bit values, 16-bit PNG
    assert Image.open(f).mode.startswith("I") and not _shown_as_is(f)
    said: list[str] = []
    out = export_run(rd, "labelstudio", tmp_path / "t.json", images="local-files", warn=said.append)
    tasks = {t["data"]["labeltrace_id"]: t for t in json.loads(Path(out).read_text())}
    assert tasks[i]["data"]["image"].startswith("data:image/png;base64,")
    shown = _decode(tasks[i]["data"]["image"])
    assert shown.max() > 200  # display-scaled, not nearly black
    assert all(t["data"]["image"].startswith("/data/local-files/") for j, t in tasks.items() if j != i)
    assert len(said) == 1 and "1 of 20 images is a file a browser does not show" in said[0]
    assert f"sample {i} ({run.column('path')[i]})" in said[0]
    for name, data in (("a.dcm", b"\0" * 200), ("a.tif", b"II*\0"), ("a.JPG", b"\xff\xd8")):
        (tmp_path / name).write_bytes(data)
        assert _shown_as_is(tmp_path / name) == (name == "a.JPG")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "eight.png")
    assert _shown_as_is(tmp_path / "eight.png")


def test_the_cli_reads_a_rescan_s_label_studio_file_with_by_external_id(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from labeltrace.cli import main

    rd = make_run(tmp_path, n=12, k=3, classes=["a", "b", "c"], seed=1)
    ext = open_run(rd).column("external_id")
    f = tmp_path / "ls.json"
    f.write_text(json.dumps([{"image": "x", "labeltrace_id": 3, "external_id": str(ext[4]), "label": "b", "id": 1}]))
    assert main(["export", str(rd), "--from-labelstudio", str(f)]) == 2
    assert "--by external_id" in capsys.readouterr().err
    assert main(["export", str(rd), "--from-labelstudio", str(f), "--by", "external_id"]) == 0
    assert "1 sample whose task numbered another" in capsys.readouterr().out
    assert run_store(open_run(rd)).current()[4].decision == "b"


def test_export_options_that_would_be_ignored_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--from-labelstudio with --to ran the import and wrote no CSV; --overwrite on a file export and
    --images / --document-root on a CSV were accepted and ignored (an audit's finding)."""
    from labeltrace.cli import main

    rd = make_run(tmp_path, n=12, k=3, classes=["a", "b", "c"], seed=1)
    (tmp_path / "ls.json").write_text("[]")
    assert main(["export", str(rd), "--from-labelstudio", str(tmp_path / "ls.json"), "--to", "csv"]) == 2
    assert "--from-labelstudio reads the relabels back into the run and writes no export; leave out --to" in \
        capsys.readouterr().err
    for extra, said in ((["--to", "csv", "--overwrite"], "--overwrite replaces an existing FiftyOne dataset"),
                        (["--to", "parquet", "--images", "local-files"], "a parquet export names its images by path"),
                        (["--to", "csv", "--document-root", str(tmp_path)], "a csv export names its images by path"),
                        (["--to", "labelstudio", "--document-root", str(tmp_path)], "a data-URI export embeds them"),
                        (["--to", "labelstudio", "--by", "external_id"], "--by says how --from-labelstudio matches")):
        assert main(["export", str(rd), *extra]) == 2, extra
        assert said in capsys.readouterr().err
    assert not (rd / "export.csv").exists() and not (rd / "export.parquet").exists()
    assert main(["export", str(rd), "--to", "csv"]) == 0 and (rd / "export.csv").is_file()
