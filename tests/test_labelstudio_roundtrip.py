"""What a real Label Studio (1.23.2) does with the export, and what its exports hold, as a review
that ran the round trip found: the storage it refuses, the prediction it pre-selects, a colleague's
skip, ground truth, drafts, and JSON-MIN's missing skips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pyarrow as pa
import pytest
from runfactory import link_into_store, make_run

from labeltrace.cli import main
from labeltrace.export import export_run, import_labelstudio
from labeltrace.relabel.runstore import run_store
from labeltrace.relabel.verdicts import final_labels
from labeltrace.rundir import open_run, write_table


def _tasks(path: Path | str) -> list[dict]:
    return json.loads(Path(path).read_text())


def _ann(label: str | None, at: str, *, cancelled: bool = False, ground_truth: bool = False, who: int = 1) -> dict:
    result = [] if label is None else [{"type": "choices", "from_name": "label", "to_name": "image",
                                        "value": {"choices": [label]}}]  # fmt: skip
    return {"completed_by": who, "updated_at": at, "created_at": at, "was_cancelled": cancelled,
            "ground_truth": ground_truth, "result": result}  # fmt: skip


def _full(path: Path, *tasks: tuple[int, list[dict]], drafts: dict[int, list[dict]] | None = None) -> Path:
    path.write_text(json.dumps([{"id": 100 + sid, "data": {"labeltrace_id": sid}, "annotations": anns,
                                 **({"drafts": drafts[sid]} if drafts and sid in drafts else {})}
                                for sid, anns in tasks]))  # fmt: skip
    return path


def test_local_files_link_below_a_root_above_the_data_root_and_name_the_storage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The printed setup had the storage at the document root (the data root), which Label Studio
    refuses ("cannot be the same as LOCAL_FILES_DOCUMENT_ROOT"): every image 404ed."""
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    run = open_run(rd)
    root = run.data_root.resolve()
    said: list[str] = []
    tasks = _tasks(export_run(rd, "labelstudio", tmp_path / "t.json", images="local-files", info=said.append))
    for t in tasks:
        d = parse_qs(urlparse(t["data"]["image"]).query)["d"][0]
        assert d == f"{root.name}/{run.column('path')[t['data']['labeltrace_id']]}"
        assert (root.parent / d).is_file()  # what Label Studio joins: the document root and the link
    assert len(said) == 1 and f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={root.parent}," in said[0]
    assert f"whose absolute local path is {root} (a folder strictly below the document root" in said[0]
    assert main(["export", str(rd), "--to", "labelstudio", "--images", "local-files", "--out", str(tmp_path / "u.json")]) == 0
    assert said[0] in capsys.readouterr().out
    # the data root itself as the document root: the images spread over its class folders, and no
    # one storage below it holds them all
    with pytest.raises(ValueError, match=rf"no common folder below the Label Studio document root {root}.*"
                                         rf"--document-root {root.parent} "):  # fmt: skip
        export_run(rd, "labelstudio", tmp_path / "v.json", images="local-files", document_root=root)
    # a root further up: the storage is still the data root (a folder higher up would serve the run
    # directory beside it too)
    export_run(rd, "labelstudio", tmp_path / "w.json", images="local-files", document_root=root.parent.parent,
               info=said.append)  # fmt: skip
    assert f"DOCUMENT_ROOT={root.parent.parent}," in said[-1] and f"absolute local path is {root} " in said[-1]
    # the suspects alone, of a class or two: the data root still, so one project serves every export
    export_run(rd, "labelstudio", tmp_path / "x.json", images="local-files", only_suspects=True, info=said.append)
    assert f"absolute local path is {root} " in said[-1]


def test_images_directly_in_the_document_root_are_refused(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    run = open_run(rd)
    flat = [p.replace("/", "_") for p in run.column("path")]
    for p, f in zip(run.column("path"), flat, strict=True):
        shutil.move(run.data_root / p, run.data_root / f)
    write_table(rd / "samples.parquet", run.samples.set_column(run.samples.column_names.index("path"), "path",
                                                                pa.array(flat)))  # fmt: skip
    root = run.data_root.resolve()
    with pytest.raises(ValueError, match="some lie in it directly"):
        export_run(rd, "labelstudio", tmp_path / "t.json", images="local-files", document_root=root)
    said: list[str] = []
    tasks = _tasks(export_run(rd, "labelstudio", tmp_path / "t.json", images="local-files", info=said.append))
    assert parse_qs(urlparse(tasks[0]["data"]["image"]).query)["d"][0].startswith(f"{root.name}/")
    assert f"absolute local path is {root} " in said[0]


def test_a_colleagues_skip_does_not_erase_a_relabel(tmp_path: Path) -> None:
    """A annotated 'bird', then B skipped the task: the import stored 'skip', A's relabel lost, no word."""
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    classes = open_run(rd).classes
    f = _full(tmp_path / "ls.json",
              (0, [_ann(classes[1], "2025-01-01T10:00:00Z", who=1), _ann(None, "2025-01-01T11:00:00Z", cancelled=True, who=2)]),
              (1, [_ann(None, "2025-01-01T11:00:00Z", cancelled=True)]))  # fmt: skip
    told: list[str] = []
    assert import_labelstudio(rd, f, warn=told.append) == 2
    cur = run_store(open_run(rd)).current()
    assert (cur[0].kind, cur[0].decision) == ("label", classes[1])
    assert cur[1].kind == "skip"  # skipped by everyone who saw it: a skip
    assert told == []


def test_a_ground_truth_annotation_counts_before_a_later_one(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    classes = open_run(rd).classes
    f = _full(tmp_path / "ls.json", (3, [_ann(classes[2], "2025-01-01T10:00:00Z", ground_truth=True, who=1),
                                         _ann(classes[0], "2025-01-01T12:00:00Z", who=2)]))  # fmt: skip
    told: list[str] = []
    import_labelstudio(rd, f, warn=told.append)
    assert run_store(open_run(rd)).current()[3].decision == classes[2]
    assert len(told) == 1 and "sample 3 disagree" in told[0] and "one marked ground truth first" in told[0]


def test_drafts_never_submitted_are_named(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    classes = open_run(rd).classes
    f = _full(tmp_path / "ls.json", (5, []), (6, [_ann(classes[0], "2025-01-01T10:00:00Z")]),
              drafts={5: [{"result": [], "created_at": "2025-01-01T10:00:00Z"}]})  # fmt: skip
    told: list[str] = []
    assert import_labelstudio(rd, f, warn=told.append) == 1
    assert len(told) == 1 and "1 task not imported: sample 5 holds only a draft" in told[0]


def test_json_min_after_json_of_the_same_snapshot_calls_nothing_an_older_export(tmp_path: Path) -> None:
    """JSON-MIN lists every annotation: the ones its latest superseded were called '(an older export?)'."""
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    classes = open_run(rd).classes
    a, b = "2025-01-01T10:00:00Z", "2025-01-01T12:00:00Z"
    full = _full(tmp_path / "ls.json", (2, [_ann(classes[0], a, who=1), _ann(classes[1], b, who=2)]))
    assert import_labelstudio(rd, full) == 1
    mini = tmp_path / "min.json"
    mini.write_text(json.dumps([{"id": 102, "labeltrace_id": 2, "label": classes[0], "updated_at": a},
                                {"id": 102, "labeltrace_id": 2, "label": classes[1], "updated_at": b}]))
    told: list[str] = []
    assert import_labelstudio(rd, mini, warn=told.append) == 0
    assert not any("older export" in t for t in told)
    assert any("JSON-MIN export, which leaves skipped (cancelled) annotations and ground-truth marks out" in t for t in told)
    assert run_store(open_run(rd)).current()[2].decision == classes[1]


def test_an_unknown_class_names_the_sample(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    ext = open_run(rd).column("external_id")
    f = _full(tmp_path / "ls.json", (4, [_ann("other", "2025-01-01T10:00:00Z")]))
    with pytest.raises(ValueError, match=rf"task 104 \(sample 4, external_id '{ext[4]}'\): unknown class 'other'"):
        import_labelstudio(rd, f)


def test_the_cli_says_what_an_import_decided(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """'imported 20 decisions' of 16 samples, with no word of what changed."""
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    run = open_run(rd)
    classes, given = run.classes, run.column("given_label_id").astype(int)
    other = classes[(given[0] + 1) % 3]
    f = _full(tmp_path / "ls.json", (0, [_ann(classes[given[0]], "2025-01-01T10:00:00Z"),
                                         _ann(other, "2025-01-01T11:00:00Z")]),
              (1, [_ann(classes[given[1]], "2025-01-01T10:00:00Z")]),
              (2, [_ann(None, "2025-01-01T10:00:00Z", cancelled=True)]))  # fmt: skip
    assert main(["export", str(rd), "--from-labelstudio", str(f)]) == 0
    out = capsys.readouterr().out
    assert ("imported 3 annotations into" in out and "of the 3 samples this file decides, 1 label changed, "
            "1 confirmed, 0 unsure, 1 skipped" in out)  # fmt: skip
    assert main(["export", str(rd), "--from-labelstudio", str(f)]) == 0
    assert "imported nothing new into" in capsys.readouterr().out
    assert np.array_equal(run.column("given_label_id").astype(int), given)  # the scan's labels untouched


def test_a_class_name_label_studio_reads_as_a_task_field_is_warned_of(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, classes=["a b", "$5", "x,y"])
    told: list[str] = []
    export_run(rd, "labelstudio", tmp_path / "t.json", warn=told.append)
    assert len(told) == 1 and "class name '$5': Label Studio's labeling page reads '$'" in told[0]


def test_a_json_export_after_the_json_min_one_says_whose_decision_stays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """JSON-MIN has no ground-truth marks: its newer annotation stayed current when the JSON export's
    older ground truth came next, and the summary counted the ground truth's label as changed."""
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    run = open_run(rd)
    classes, given = run.classes, int(run.column("given_label_id")[2])
    truth, later = classes[(given + 1) % 3], classes[given]
    a, b = "2025-01-01T10:00:00Z", "2025-01-01T12:00:00Z"
    mini = tmp_path / "min.json"
    mini.write_text(json.dumps([{"id": 102, "labeltrace_id": 2, "label": truth, "updated_at": a},
                                {"id": 102, "labeltrace_id": 2, "label": later, "updated_at": b}]))
    told: list[str] = []
    import_labelstudio(rd, mini, warn=told.append)
    assert any("leaves skipped (cancelled) annotations and ground-truth marks out" in t for t in told)
    assert any("disagree" in t and "ground truth" not in t for t in told)
    full = _full(tmp_path / "ls.json", (2, [_ann(truth, a, ground_truth=True, who=1), _ann(later, b, who=2)]))
    told.clear()
    said: list[str] = []
    import_labelstudio(rd, full, warn=told.append, info=said.append)
    assert run_store(open_run(rd)).current()[2].decision == later
    assert any("the ground-truth annotation of sample 2 is older than the Label Studio decision imported before, "
               "which stays current" in t for t in told)
    assert not any("older export" in t or "is not this file's" in t for t in told)
    assert len(said) == 1 and "imported nothing new" in said[0]


def test_the_summary_counts_the_files_decisions_that_stand(tmp_path: Path) -> None:
    """'of the 2 samples this file decides, 2 labels changed': one of them kept a newer decision."""
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    run = open_run(rd)
    classes, given = run.classes, run.column("given_label_id").astype(int)
    newer = tmp_path / "day2.json"
    newer.write_text(json.dumps([{"id": 1, "labeltrace_id": 2, "label": classes[given[2]],
                                  "updated_at": "2025-01-02T10:00:00Z"}]))  # fmt: skip
    import_labelstudio(rd, newer, warn=lambda m: None)
    older = _full(tmp_path / "day1.json", (2, [_ann(classes[(given[2] + 1) % 3], "2025-01-01T10:00:00Z")]),
                  (4, [_ann(classes[(given[4] + 1) % 3], "2025-01-01T10:00:00Z")]))  # fmt: skip
    said: list[str] = []
    told: list[str] = []
    assert import_labelstudio(rd, older, warn=told.append, info=said.append) == 1
    assert said[0].endswith("of the 2 samples this file decides, 1 label changed, 0 confirmed, 0 unsure, 0 skipped, "
                            "1 keeps a decision stored before")  # fmt: skip
    assert len(told) == 1 and "no newer than the Label Studio decision already stored for sample 2" in told[0]


def test_links_into_a_store_of_files_without_a_suffix_are_linked_as_listed(tmp_path: Path) -> None:
    """DVC's cache keeps files under their hashes, no suffix: every image counted as one a browser
    cannot show (all embedded, 'DICOM, TIFF, a 16-bit PNG' said of .png paths) and a wrong
    --document-root was no longer refused."""
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    store = tmp_path / "cache"
    link_into_store(rd, store, lambda k: f"{k:032x}")
    told: list[str] = []
    tasks = _tasks(export_run(rd, "labelstudio", tmp_path / "t.json", images="local-files", warn=told.append))
    assert all(t["data"]["image"].startswith("/data/local-files/?d=data/") for t in tasks) and told == []
    with pytest.raises(ValueError, match=rf"no common folder below the Label Studio document root {store} .*"
                                         rf"--document-root {tmp_path} "):  # fmt: skip
        export_run(rd, "labelstudio", tmp_path / "u.json", images="local-files", document_root=store)


def test_json_min_passes_an_unknown_class_a_later_annotation_replaced(tmp_path: Path) -> None:
    """JSON-MIN refused a whole file for an unknown class in an annotation a later one replaced, where
    the JSON export of the same project imported (the second review of the round trip)."""
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    classes = open_run(rd).classes
    f = tmp_path / "min.json"
    f.write_text(json.dumps([{"id": 109, "labeltrace_id": 2, "label": "autre", "updated_at": "2025-01-01T10:00:00Z"},
                             {"id": 109, "labeltrace_id": 2, "label": classes[1], "updated_at": "2025-01-01T11:00:00Z"}]))
    told: list[str] = []
    assert import_labelstudio(rd, f, warn=told.append) == 1
    assert run_store(open_run(rd)).current()[2].decision == classes[1]
    assert any("the annotations of sample 2 disagree" in t for t in told)
    f.write_text(json.dumps([{"id": 109, "labeltrace_id": 3, "label": classes[1], "updated_at": "2025-01-01T10:00:00Z"},
                             {"id": 109, "labeltrace_id": 3, "label": "autre", "updated_at": "2025-01-01T11:00:00Z"}]))
    with pytest.raises(ValueError, match=r"task 109 \(sample 3, .*unknown class 'autre'"):
        import_labelstudio(rd, f)


def test_an_unknown_class_written_like_a_known_one_says_which(tmp_path: Path) -> None:
    """'unknown class 'café'; classes are [... 'café' ...]': a decomposed é (a macOS copy of the
    config) printed exactly like the class it missed, among all 120 names."""
    import unicodedata

    classes = [unicodedata.normalize("NFC", "café")] + [f"c{j:03d}" for j in range(119)]
    rd = make_run(tmp_path, n=240, k=120, classes=classes, seed=2)
    f = tmp_path / "min.json"
    f.write_text(json.dumps([{"labeltrace_id": 0, "label": unicodedata.normalize("NFD", "café"), "id": 1,
                              "updated_at": "2024-05-01T10:00:00Z"}]))  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown class '[^']*' \('cafe\\u0301': the class 'caf\\xe9' written "
                                         r"another way\); classes are .*\(and 70 more\)"):  # fmt: skip
        import_labelstudio(rd, f)


def test_the_cli_names_the_labeling_config_to_paste(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the tasks alone give a project no 'unsure' / 'exclude' choice: the export said only "wrote tasks.json"
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    out = tmp_path / "tasks.json"
    assert main(["export", str(rd), "--to", "labelstudio", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"wrote {out}"
    config = tmp_path / "tasks.config.xml"
    assert config.is_file() and '<Choice value="exclude"' in config.read_text()
    assert printed[1].startswith(f"the labeling config: {config} — paste it into the Label Studio project")


def test_a_labelstudio_export_named_like_another_file_type_is_refused(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """`export --to labelstudio --out x.csv` wrote the tasks' JSON into x.csv (and x.config.xml beside),
    where --to csv --out x.parquet is refused."""
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    assert main(["export", str(rd), "--to", "labelstudio", "--out", str(tmp_path / "x.csv")]) == 2
    assert f"{tmp_path / 'x.csv'}: a labelstudio export must end in .json" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.config.xml").exists()


def _submitted_unchanged(tasks: list[dict], at: str) -> list[tuple[int, list[dict]]]:
    """Each task submitted with its pre-ticked (last) prediction, as an annotator clicking through does."""
    return [(t["data"]["labeltrace_id"], [{"completed_by": 1, "updated_at": at, "created_at": at,
                                           "was_cancelled": False, "ground_truth": False,
                                           "result": t["predictions"][-1]["result"]}]) for t in tasks]  # fmt: skip


def test_a_second_round_opens_with_the_reviewed_label_ticked(tmp_path: Path) -> None:
    """Tasks exported after a round of relabels still opened with the given label ticked: a second
    round clicked through took back every relabel, and the import said '0 labels changed, N confirmed'."""
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    run = open_run(rd)
    classes, given = run.classes, run.column("given_label_id").astype(int)
    moved = {sid: classes[(given[sid] + 1) % 3] for sid in (0, 3, 5)}
    import_labelstudio(rd, _full(tmp_path / "r1.json", *[(sid, [_ann(c, "2025-01-01T10:00:00Z")])
                                                         for sid, c in moved.items()]), warn=lambda m: None)  # fmt: skip
    tasks = _tasks(export_run(rd, "labelstudio", tmp_path / "t2.json"))
    ticked = {t["data"]["labeltrace_id"]: t["predictions"][-1]["result"][0]["value"]["choices"][0] for t in tasks}
    assert all(ticked[sid] == c for sid, c in moved.items())
    assert all(ticked[sid] == classes[given[sid]] for sid in ticked if sid not in moved)
    said: list[str] = []
    told: list[str] = []
    import_labelstudio(rd, _full(tmp_path / "r2.json", *_submitted_unchanged(tasks, "2025-01-02T10:00:00Z")),
                       warn=told.append, info=said.append)  # fmt: skip
    assert "of the 12 samples this file decides, 3 labels changed, 9 confirmed" in said[0]
    assert not told
    labels, _ = final_labels(open_run(rd))
    assert all(labels[sid] == classes.index(c) for sid, c in moved.items())


def test_an_import_that_takes_back_a_relabel_says_so(tmp_path: Path) -> None:
    """Tasks of the first export (the given label ticked), submitted unchanged after a round of relabels."""
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    run = open_run(rd)
    classes, given = run.classes, run.column("given_label_id").astype(int)
    first = _tasks(export_run(rd, "labelstudio", tmp_path / "t1.json"))
    import_labelstudio(rd, _full(tmp_path / "r1.json", (4, [_ann(classes[(given[4] + 1) % 3], "2025-01-01T10:00:00Z")])),
                       warn=lambda m: None)  # fmt: skip
    told: list[str] = []
    said: list[str] = []
    import_labelstudio(rd, _full(tmp_path / "r2.json", *_submitted_unchanged(first, "2025-01-02T10:00:00Z")),
                       warn=told.append, info=said.append)  # fmt: skip
    assert len(told) == 1 and "the import takes back the relabels stored for sample 4" in told[0]
    assert "0 labels changed, 12 confirmed" in said[0]


def test_a_label_studio_vote_against_the_review_pages_is_not_counted_as_a_change(tmp_path: Path) -> None:
    """'1 label changed' beside the warning that the sample is disputed and keeps its given label."""
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    run = open_run(rd)
    classes, given = run.classes, run.column("given_label_id").astype(int)
    run_store(run).add(7, classes[(given[7] + 1) % 3], reviewer="alice")
    said: list[str] = []
    told: list[str] = []
    import_labelstudio(rd, _full(tmp_path / "r.json", (7, [_ann(classes[(given[7] + 2) % 3], "2030-01-01T10:00:00Z")])),
                       warn=told.append, info=said.append)  # fmt: skip
    assert any("leaves sample 7 disputed" in t for t in told)
    assert "of the 1 sample this file decides, 0 labels changed, 0 confirmed, 1 disputed (the review's decisions " \
           "differ), 0 unsure, 0 skipped" in said[0]  # fmt: skip
