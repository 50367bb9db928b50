"""A second review round: the cleaned manifest of the first (``review --export``), scanned again,
says which samples experts settled; the queue asks about the others first (a review of the
hand-offs found the same samples asked again, the cleaned file's review columns read by nothing)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from runfactory import make_run

from labeltrace.export.cleaned import DECISION_COLUMN, STATUS_COLUMN, export_labels
from labeltrace.relabel import earlier
from labeltrace.relabel.queue import queue_table, write_queue
from labeltrace.relabel.runstore import run_store
from labeltrace.rundir import open_run


def _round_two(tmp_path: Path) -> tuple[Path, list[int], int]:
    """A manifest run whose first round confirmed three samples' labels and changed one; the run's
    data then points at the cleaned manifest, as a scan of it would."""
    rd = make_run(tmp_path, n=20, k=3, classes=["cat", "dog", "fox"], seed=5, kind="manifest")
    run = open_run(rd)
    given = run.column("given_label").tolist()
    store = run_store(run)
    top = [int(i) for i in queue_table(run, settled_last=False).table.column("id").to_pylist()[:4]]
    for i in top[:3]:
        store.add(i, given[i], reviewer="ada")  # confirmed
    other = next(c for c in ("cat", "dog", "fox") if c != given[top[3]])
    store.add(top[3], other, reviewer="ada")  # changed: the next scan reads the new label
    clean = export_labels(rd, tmp_path / "clean.csv")
    meta = json.loads((rd / "run.json").read_text())
    meta["data"]["source"] = str(clean)
    (rd / "run.json").write_text(json.dumps(meta))
    return rd, top[:3], top[3]


def test_the_column_names_are_the_cleaned_files() -> None:
    assert (earlier.DECISION, earlier.STATUS) == (DECISION_COLUMN, STATUS_COLUMN)


def test_samples_settled_in_an_earlier_round_are_queued_last(tmp_path: Path) -> None:
    rd, confirmed, changed = _round_two(tmp_path)
    run = open_run(rd)
    settled, note = earlier.settled_before(run)
    assert note is None and settled is not None
    assert sorted(np.flatnonzero(settled).tolist()) == sorted(confirmed)  # the changed one: its label is not
    q = queue_table(run)  # in this run still the old one, so not settled on it
    ids = q.table.column("id").to_pylist()
    assert sorted(ids[-3:]) == sorted(confirmed) and changed in ids[:-3]
    assert q.table.column("rank").to_pylist() == list(range(1, 21))
    assert q.table.column("settled_before").to_pylist() == [False] * 17 + [True] * 3
    plain = queue_table(run, settled_last=False)
    pri = dict(zip(plain.table.column("id").to_pylist(), plain.table.column("priority").to_pylist(), strict=True))
    for part in (ids[:-3], ids[-3:]):  # each group in priority order
        assert [pri[i] for i in part] == sorted((pri[i] for i in part), reverse=True)
    assert plain.table.column("id").to_pylist()[:3] == confirmed  # they led before
    assert "3 samples settled by an earlier review round" in (q.note or "")
    out = write_queue(rd, tmp_path / "q.csv")
    assert pacsv.read_csv(tmp_path / "q.csv").column("id").to_pylist() == ids
    assert out.meta["settled_before"] == {"count": 3, "last": True}


def test_the_scan_summary_says_how_many_suspects_an_earlier_round_settled(tmp_path: Path) -> None:
    """Round 2 flagged 45, 37 of them confirmed in round 1, and the summary said nothing of it (a
    new-user audit's finding): only the queue put them last."""
    import pyarrow.parquet as pq

    from labeltrace.report.summary import settled_text, summary_text

    rd, confirmed, changed = _round_two(tmp_path)
    table = pq.read_table(rd / "samples.parquet")
    suspect = np.zeros(table.num_rows, dtype=bool)
    suspect[[confirmed[0], confirmed[1], changed]] = True  # two settled ones and the changed one flagged
    table = table.set_column(table.column_names.index("is_suspect"), "is_suspect", pa.array(suspect))
    pq.write_table(table, rd / "samples.parquet")
    meta = json.loads((rd / "run.json").read_text())
    meta.update(train={"epochs": 3}, counts={"flagged": 3}, model="small-cnn")  # the summary's fields of a scan
    (rd / "run.json").write_text(json.dumps(meta))
    said = "2 of the 3 flagged were settled by an earlier review round on the label they have now"
    assert settled_text(open_run(rd)).startswith(said) and said in summary_text(rd)
    from labeltrace.report import write_report

    assert said in write_report(rd, tmp_path / "r.html").read_text()  # the report's Flagged card
    suspect[:] = False
    suspect[changed] = True
    pq.write_table(table.set_column(table.column_names.index("is_suspect"), "is_suspect", pa.array(suspect)),
                   rd / "samples.parquet")
    assert settled_text(open_run(rd)) == ""


def test_a_run_without_an_earlier_round_or_its_manifest(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=6, kind="manifest")
    assert earlier.settled_before(open_run(rd)) == (None, None)  # no review columns
    assert "settled_before" not in queue_table(open_run(rd)).table.column_names
    rd2, _, _ = _round_two(tmp_path / "b")
    Path(json.loads((rd2 / "run.json").read_text())["data"]["source"]).unlink()
    settled, note = earlier.settled_before(open_run(rd2))
    assert settled is None and note is not None and "is gone: earlier review rounds not read" in note


def test_the_review_page_without_a_queue_says_how_to_queue_them_last(tmp_path: Path, monkeypatch: object,
                                                                     capsys: object) -> None:  # fmt: skip
    rd, _, _ = _round_two(tmp_path)
    monkeypatch.setattr("labeltrace.review.server._run", lambda app, sock, **kw: sock.close())  # type: ignore[attr-defined]
    from labeltrace.review import serve

    serve(rd, port=0)
    assert "note: 3 samples were settled by an earlier review round" in capsys.readouterr().out  # type: ignore[attr-defined]
    write_queue(rd, tmp_path / "q.csv")
    serve(rd, port=0)
    assert "earlier review round" not in capsys.readouterr().out  # type: ignore[attr-defined]


def test_the_command_line(tmp_path: Path, capsys: object) -> None:
    from labeltrace.cli import main

    rd, confirmed, _ = _round_two(tmp_path)
    assert main(["queue", str(rd), "--out", str(tmp_path / "a.csv")]) == 0
    assert "3 samples settled by an earlier review round" in capsys.readouterr().err  # type: ignore[attr-defined]
    assert sorted(pacsv.read_csv(tmp_path / "a.csv").column("id").to_pylist()[-3:]) == sorted(confirmed)
    assert main(["queue", str(rd), "--out", str(tmp_path / "b.csv"), "--requeue-settled"]) == 0
    assert pacsv.read_csv(tmp_path / "b.csv").column("id").to_pylist()[:3] == confirmed


def test_a_third_round_remembers_what_the_first_settled(tmp_path: Path) -> None:
    """Each export renames the round before it (review_status_1, _2 ...): a sample the first round
    settled and the second did not look at is still settled; one the second round reopened is not."""
    rd, confirmed, _ = _round_two(tmp_path)
    man = Path(json.loads((rd / "run.json").read_text())["data"]["source"])
    t = pacsv.read_csv(man)
    names = t.column_names
    renamed = t.rename_columns([f"{c}_1" if c in (DECISION_COLUMN, STATUS_COLUMN) else c for c in names])
    n = renamed.num_rows
    paths = renamed.column("path").to_pylist()
    ext = open_run(rd).column("external_id").tolist()
    reopened = ext[confirmed[0]]  # the second round: no consensus on the first confirmed sample
    status2 = ["no consensus" if p == reopened else "" for p in paths]
    third = renamed.append_column(DECISION_COLUMN, pa.array(["no consensus" if s else "" for s in status2]))
    third = third.append_column(STATUS_COLUMN, pa.array(status2))
    pacsv.write_csv(third, man)
    settled, note = earlier.settled_before(open_run(rd))
    assert note is None and n == 20
    assert sorted(np.flatnonzero(settled).tolist()) == sorted(confirmed[1:])
