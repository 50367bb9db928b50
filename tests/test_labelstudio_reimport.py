"""Label Studio results read back more than once, and the export's option names in errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runfactory import make_run

from labeltrace.export import export_run, import_labelstudio
from labeltrace.relabel.runstore import run_store
from labeltrace.rundir import open_run


def _min_export(path: Path, label: str, at: str, ids: range) -> Path:
    path.write_text(json.dumps([{"image": "x", "labeltrace_id": i, "label": label, "updated_at": at,
                                 "id": i + 1} for i in ids]))  # fmt: skip
    return path


def test_an_older_export_imported_later_does_not_undo_newer_decisions(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    friday = _min_export(tmp_path / "fri.json", "bird", "2025-01-10T10:00:00Z", range(4))
    monday = _min_export(tmp_path / "mon.json", "cat", "2025-01-06T10:00:00Z", range(2, 6))
    assert import_labelstudio(rd, friday) == 4
    told: list[str] = []
    assert import_labelstudio(rd, monday, warn=told.append) == 2  # samples 4 and 5 are new
    cur = run_store(open_run(rd)).current()
    assert [cur[i].decision for i in range(6)] == ["bird"] * 4 + ["cat"] * 2
    told = [t for t in told if "JSON-MIN" not in t]  # each JSON-MIN import says it holds no skips
    assert len(told) == 1 and "2 annotations not imported" in told[0] and "samples 2, 3" in told[0]
    # a newer export still replaces, and re-importing the same file writes nothing and warns nothing
    later = _min_export(tmp_path / "later.json", "airplane", "2025-01-12T10:00:00Z", range(1))
    assert import_labelstudio(rd, later, warn=told.append) == 1
    assert import_labelstudio(rd, later, warn=told.append) == 0 and len([t for t in told if "JSON-MIN" not in t]) == 1
    assert run_store(open_run(rd)).current()[0].decision == "airplane"
    with pytest.warns(UserWarning, match="older export"):
        import_labelstudio(rd, monday)



def test_a_file_with_two_annotations_of_a_task_imports_again_without_a_warning(tmp_path: Path) -> None:
    """The same JSON-MIN file again: its older annotation of a task was called 'an older export'."""
    rd = make_run(tmp_path, n=6, k=3, seed=3)
    f = tmp_path / "min.json"
    f.write_text(json.dumps([{"labeltrace_id": 0, "label": label, "annotator": who, "id": 1, "updated_at": at}
                             for label, who, at in (("bird", "a@x", "2024-05-01T10:00:00Z"),
                                                    ("cat", "b@x", "2024-05-02T10:00:00Z"))]))  # fmt: skip
    told: list[str] = []
    assert import_labelstudio(rd, f, warn=told.append) == 2
    assert import_labelstudio(rd, f, warn=told.append) == 0
    # each import names the two annotators' disagreement; none calls the file an older export
    told = [t for t in told if "JSON-MIN" not in t]
    assert len(told) == 2 and all("disagree" in t and "older export" not in t for t in told)
    assert run_store(open_run(rd)).current()[0].decision == "cat"

def test_local_files_of_an_array_run_name_the_command_line_option(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=20, k=3, with_files=False)
    with pytest.raises(ValueError, match="--images data-uri"):
        export_run(rd, "labelstudio", images="local-files")


def _full_task(sid: int, *annotations: tuple[str, list[dict[str, object]]]) -> dict[str, object]:
    return {"id": sid + 1, "data": {"image": "x", "labeltrace_id": sid},
            "annotations": [{"id": k, "updated_at": at, "result": res} for k, (at, res) in enumerate(annotations)]}


def _choice(name: str, *values: str) -> dict[str, object]:
    return {"type": "choices", "from_name": name, "to_name": "image", "value": {"choices": list(values)}}


def test_a_class_ticked_with_unsure_imports_as_unsure(tmp_path: Path) -> None:
    """It was stored as a confident relabel, reached consensus and changed the cleaned label."""
    rd = make_run(tmp_path, n=12, k=3, seed=2)
    cls = open_run(rd).classes[1]
    f = tmp_path / "ls.json"
    f.write_text(json.dumps([_full_task(0, ("2025-01-10T10:00:00Z", [_choice("label", cls), _choice("review", "unsure")]))]))
    assert import_labelstudio(rd, f) == 1
    d = run_store(open_run(rd)).current()[0]
    assert (d.kind, d.decision) == ("unsure", "unsure")
    f.write_text(json.dumps([{"image": "x", "labeltrace_id": 1, "label": cls, "review": "unsure",
                              "updated_at": "2025-01-10T10:00:00Z"}]))  # the JSON-MIN export  # fmt: skip
    assert import_labelstudio(rd, f) == 1
    assert run_store(open_run(rd)).current()[1].kind == "unsure"


def test_a_task_whose_latest_annotation_is_empty_is_named(tmp_path: Path) -> None:
    """'imported 1 decisions' for 2 annotated tasks, and the relabel of the first annotator vanished."""
    rd = make_run(tmp_path, n=12, k=3, seed=2)
    cls = open_run(rd).classes[2]
    f = tmp_path / "ls.json"
    f.write_text(json.dumps([
        _full_task(3, ("2025-01-10T10:00:00Z", [_choice("label", cls)]), ("2025-01-11T10:00:00Z", [])),
        _full_task(4, ("2025-01-10T10:00:00Z", [_choice("label", cls)])),
    ]))  # fmt: skip
    told: list[str] = []
    assert import_labelstudio(rd, f, warn=told.append) == 1
    assert len(told) == 1 and "1 task not imported" in told[0] and "sample 3 holds no class" in told[0]
    assert set(run_store(open_run(rd)).current()) == {4}


@pytest.mark.parametrize(
    ("tasks", "match"),
    [
        # a full export: an annotation with two classes ticked
        ([{"id": 7, "data": {"labeltrace_id": 0}, "annotations": [{"updated_at": "2025-01-06T10:00:00Z", "result": [
            {"type": "choices", "from_name": "label", "value": {"choices": ["bird", "cat"]}}]}]}],
         r"task 7 \(sample 0, external_id '[^']+'\): expected one class choice, got \['bird', 'cat'\]"),
        # JSON-MIN: the control's value a list of two
        ([{"id": 8, "labeltrace_id": 1, "label": ["bird", "cat"]}], r"task 8 \(sample 1, external_id '[^']+'\): expected one class choice"),
        (3, "expected a JSON list of tasks"),
        ("tasks", "expected a JSON list of tasks"),
    ],
)
def test_a_malformed_export_is_refused_and_nothing_is_imported(tmp_path: Path, tasks: object, match: str) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    good = {"id": 1, "labeltrace_id": 2, "label": "cat"}  # checked first, written never: all tasks are checked before
    f = tmp_path / "ls.json"
    f.write_text(json.dumps([good, *tasks] if isinstance(tasks, list) else tasks))
    with pytest.raises(ValueError, match=match):
        import_labelstudio(rd, f)
    assert run_store(open_run(rd)).history() == []


def test_an_external_id_this_run_does_not_have_is_refused(tmp_path: Path) -> None:
    """An image renamed or replaced since the export: its task was imported onto whatever sample
    had its labeltrace_id."""
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    f = tmp_path / "ls.json"
    f.write_text(json.dumps([{"id": 1, "labeltrace_id": 5, "external_id": "one/img9999_removed.png", "label": "cat"}]))
    with pytest.raises(ValueError, match="names external_id 'one/img9999_removed.png', which no sample of this run has"):
        import_labelstudio(rd, f)
    assert run_store(open_run(rd)).history() == []


def _task(tid: int, sid: int, *labels_at: tuple[str, str]) -> dict:
    return {"id": tid, "data": {"labeltrace_id": sid}, "annotations": [
        {"completed_by": k, "updated_at": at, "result": [{"type": "choices", "from_name": "label",
                                                          "value": {"choices": [label]}}]}
        for k, (label, at) in enumerate(labels_at)]}  # fmt: skip


def test_disagreeing_annotators_and_new_disputes_are_told(tmp_path: Path) -> None:
    """Three annotators on one task (zero, zero, then two) imported as 'two' from one reviewer, and
    an import that contradicted an expert's correction made a dispute: both without a word."""
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    run = open_run(rd)
    classes = run.classes
    given = [int(g) for g in run.column("given_label_id")]
    fixed = classes[(given[2] + 1) % 3]
    run_store(run).add(2, fixed, reviewer="ada")
    f = tmp_path / "ls.json"
    f.write_text(json.dumps([
        _task(1, 0, (classes[0], "2025-01-01T10:00:00Z"), (classes[0], "2025-01-01T11:00:00Z"),
              (classes[1], "2025-01-01T12:00:00Z")),
        _task(2, 1, (classes[2], "2025-01-01T10:00:00Z"), (classes[2], "2025-01-01T11:00:00Z")),  # agree
        _task(3, 2, (classes[given[2]], "2025-01-01T10:00:00Z")),  # the given label, against ada's fix
    ]))  # fmt: skip
    told: list[str] = []
    assert import_labelstudio(rd, f, warn=told.append) == 3
    assert len(told) == 2
    assert "the annotations of sample 0 disagree" in told[0] and "only the latest annotation of each counts" in told[0]
    assert "the import leaves sample 2 disputed" in told[1]


def test_json_min_entries_that_disagree_are_told(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    classes = open_run(rd).classes
    f = tmp_path / "min.json"
    f.write_text(json.dumps([{"id": 1, "labeltrace_id": 4, "label": classes[0], "updated_at": "2025-01-01T10:00:00Z"},
                             {"id": 1, "labeltrace_id": 4, "label": classes[2], "updated_at": "2025-01-01T11:00:00Z"},
                             {"id": 2, "labeltrace_id": 5, "label": classes[1], "updated_at": "2025-01-01T11:00:00Z"}]))
    told: list[str] = []
    assert import_labelstudio(rd, f, warn=told.append) == 3
    told = [t for t in told if "JSON-MIN" not in t]
    assert len(told) == 1 and "the annotations of sample 4 disagree" in told[0]


def test_a_task_names_its_sample_through_a_decomposed_name_or_a_float_id() -> None:
    """A file name that went through macOS (NFD accents) was refused as naming no sample, in a
    message whose two names print alike; a labeltrace_id read back as 397.0 (pandas) named none."""
    import unicodedata
    from types import SimpleNamespace

    from labeltrace.export.labelstudio_import import _external_ids, _sample_of

    ids = ["imgs/ñandú é 1.jpg", "imgs/plain.jpg", "imgs/b.jpg"]
    by_ext = _external_ids(ids)
    run = SimpleNamespace(num_samples=3)
    nfd = unicodedata.normalize("NFD", ids[0])
    assert nfd != ids[0]
    assert _sample_of(run, {"external_id": nfd}, "t", by_ext, ids)[0] == 0  # type: ignore[arg-type]
    assert _sample_of(run, {"labeltrace_id": 0, "external_id": nfd}, "t", by_ext, ids)[0] == 0  # type: ignore[arg-type]
    assert _sample_of(run, {"labeltrace_id": 2.0, "external_id": "imgs/b.jpg"}, "t", by_ext, ids)[0] == 2  # type: ignore[arg-type]
    assert _sample_of(run, {"labeltrace_id": "1.0"}, "t", by_ext, ids)[0] == 1  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no sample matches"):
        _sample_of(run, {"labeltrace_id": 1.5}, "t", by_ext, ids)  # type: ignore[arg-type]
    twins = [unicodedata.normalize("NFC", "é.jpg"), unicodedata.normalize("NFD", "é.jpg")]  # two files on Linux
    both = _external_ids(twins)
    assert [_sample_of(run, {"external_id": e}, "t", both, twins)[0] for e in twins] == [0, 1]  # type: ignore[arg-type]
    third = ["x_\u1ec7.png", "x_e\u0323\u0302.png"]  # one name, composed and decomposed: two files
    with pytest.raises(ValueError, match="the name of 2 samples of this run once its accents"):  # fits both: neither taken
        _sample_of(run, {"external_id": "x_\u1eb9\u0302.png"}, "t", _external_ids(third), third)  # type: ignore[arg-type]


def test_an_annotation_of_two_classes_or_of_another_control_is_refused_by_name() -> None:
    """Two class results in one annotation: the last was taken, unsaid; a class ticked under a
    renamed control was read as an empty submission; 'Cat' had no word of 'cat'."""
    from labeltrace.export.labelstudio_results import decision_of

    def choice(name: str, *values: str) -> dict:
        return {"type": "choices", "from_name": name, "to_name": "image", "value": {"choices": list(values)}}

    classes = {"cat", "dog"}
    assert decision_of([choice("label", "dog"), choice("label", "dog")], classes, "t") == ("label", "dog")
    with pytest.raises(ValueError, match=r"t: one annotation ticks two classes, 'cat' and 'dog'"):
        decision_of([choice("label", "cat"), choice("label", "dog")], classes, "t")
    with pytest.raises(ValueError, match=r"t: a choice 'Cat' under the control 'choice', which the labeling config "
                                         r"labeltrace wrote does not have .* \(the class 'cat' in another case\?\)"):  # fmt: skip
        decision_of([choice("choice", "Cat")], classes, "t")
    with pytest.raises(ValueError, match=r"unknown class 'Dog' \(the class 'dog' in another case\?\)"):
        decision_of([choice("label", "Dog")], classes, "t")
