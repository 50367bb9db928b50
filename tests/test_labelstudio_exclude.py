"""Label Studio and the "exclude — not any class" decision: the review control's choice, an
imported exclude (with a class ticked, with unsure too), JSON-MIN, a class named ``exclude``, and
the tasks carrying an excluded sample's review."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runfactory import decision_rows, make_run

from labeltrace.cli import main
from labeltrace.export import export_run, import_labelstudio
from labeltrace.export.labelstudio import labelstudio_config
from labeltrace.relabel.runstore import run_store
from labeltrace.rundir import open_run

AT = "2025-01-01T10:00:00Z"


def _ann(*, label: str | None = None, review: list[str] | None = None) -> dict:
    result = []
    if label is not None:
        result.append({"type": "choices", "from_name": "label", "to_name": "image", "value": {"choices": [label]}})
    if review is not None:
        result.append({"type": "choices", "from_name": "review", "to_name": "image", "value": {"choices": review}})
    return {"completed_by": 1, "updated_at": AT, "created_at": AT, "was_cancelled": False, "result": result}


def _full(path: Path, *tasks: tuple[int, dict]) -> Path:
    path.write_text(json.dumps([{"id": 100 + sid, "data": {"labeltrace_id": sid}, "annotations": [ann]}
                                for sid, ann in tasks]))  # fmt: skip
    return path


def test_the_review_control_offers_exclude() -> None:
    cfg = labelstudio_config(["cat", "exclude"])
    review = cfg[cfg.index('<Choices name="review"'):]
    assert '<Choice value="unsure"/>' in review and '<Choice value="exclude"' in review
    assert cfg.index('<Choice value="exclude"/>') < cfg.index('<Choices name="review"')  # the class, in the class control


def test_an_imported_exclude_is_an_exclude_decision(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    classes = open_run(rd).classes
    f = _full(tmp_path / "ls.json",
              (0, _ann(review=["exclude"])),
              (1, _ann(label=classes[0], review=["exclude"])),  # a class ticked too: no class, as said
              (2, _ann(label=classes[0], review=["unsure", "exclude"])),  # both (an edited export): a doubt
              (3, _ann(review=["unsure"])))  # fmt: skip
    assert main(["export", str(rd), "--from-labelstudio", str(f)]) == 0
    assert ("0 labels changed, 0 confirmed, 2 unsure, 0 skipped, 2 excluded as of no class"
            in capsys.readouterr().out)
    assert [r[:3] for r in decision_rows(rd)] == [(0, "exclude", "exclude"), (1, "exclude", "exclude"),
                                                  (2, "unsure", "unsure"), (3, "unsure", "unsure")]  # fmt: skip
    assert import_labelstudio(rd, f) == 0  # the same file again: nothing new


def test_json_min_exclude_and_a_class_named_exclude(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=1, classes=["cat", "exclude", "unsure-ish"])
    mini = tmp_path / "min.json"
    mini.write_text(json.dumps([
        {"id": 100, "labeltrace_id": 0, "label": "exclude", "updated_at": AT},  # the class
        {"id": 101, "labeltrace_id": 1, "review": "exclude", "updated_at": AT},
        {"id": 102, "labeltrace_id": 2, "label": "cat", "review": {"choices": ["exclude"]}, "updated_at": AT},
        {"id": 103, "labeltrace_id": 3, "review": ["exclude", "unsure"], "updated_at": AT},
    ]))  # fmt: skip
    import_labelstudio(rd, mini)
    assert [r[:3] for r in decision_rows(rd)] == [(0, "label", "exclude"), (1, "exclude", "exclude"),
                                                  (2, "exclude", "exclude"), (3, "unsure", "unsure")]  # fmt: skip
    full = _full(tmp_path / "ls.json", (4, _ann(label="exclude")))  # the class, in the class control
    import_labelstudio(rd, full)
    assert decision_rows(rd)[-1][:3] == (4, "label", "exclude")


def test_the_tasks_carry_an_excluded_samples_review(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    run_store(open_run(rd)).add(3, "exclude", kind="exclude", reviewer="ada")
    export_run(rd, "labelstudio", str(tmp_path / "tasks.json"))
    tasks = {t["data"]["labeltrace_id"]: t for t in json.loads((tmp_path / "tasks.json").read_text())}
    assert tasks[3]["data"]["review_decision"] == "exclude" and tasks[3]["data"]["review_status"] == "excluded"
    assert "reviewed: exclude (excluded)" in tasks[3]["data"]["info"]


def test_an_import_under_agree_2_says_which_of_its_votes_settle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from labeltrace.relabel.consensus import ConsensusRule

    rd = make_run(tmp_path, n=12, k=3, seed=1)
    run = open_run(rd)
    given = [str(g) for g in run.column("given_label")]
    other = [next(c for c in run.classes if c != g) for g in given]
    store = run_store(run)
    store.set_rule(ConsensusRule(agree=2))  # review --agree 2
    store.add(0, other[0], reviewer="ada")  # the page's vote, which the file's joins
    f = _full(tmp_path / "ls.json",
              (0, _ann(label=other[0])),  # settles with ada's: a changed label
              (1, _ann(label=other[1])),  # one vote: waits
              (2, _ann(review=["exclude"])))  # one vote: waits  # fmt: skip
    assert main(["export", str(rd), "--from-labelstudio", str(f)]) == 0
    out = capsys.readouterr().out
    assert "2 labels changed, 0 confirmed, 0 unsure, 0 skipped, 1 excluded as of no class" in out  # the file's votes
    assert ("each is one reviewer's vote under the review's rule (2 agreeing reviews, more than any other label): "
            "1 of the 3 samples voted on is settled now (1 label changed, 0 excluded), 2 wait for more votes, "
            "keeping their given labels meanwhile") in out  # fmt: skip
    rd1 = make_run(tmp_path / "one", n=12, k=3, seed=1)  # one vote settles: the counts are the changes
    assert main(["export", str(rd1), "--from-labelstudio", str(f)]) == 0
    assert "reviewer's vote" not in capsys.readouterr().out
