"""What the report says agrees with itself: numbers one short of 1 are not printed as 1, a set of
nothing flagged has no precision and no dot, a tie that moves a count is told, a folder as --out
gets the page, and the PNG grid's captions fit their column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from runfactory import make_run

from labeltrace import rundir
from labeltrace.cli import main
from labeltrace.decide.flagging import top_k
from labeltrace.report import html as report_html
from labeltrace.report import plots, write_report


def test_one_short_of_one_is_not_printed_as_one() -> None:
    """2499 of 2500 printed 'precision 1' beside '1 clean samples flagged'; p 0.996 as 'p 1'."""
    assert report_html._share(2499 / 2500) == "0.999+"
    assert report_html._share(0.996, 2) == "0.99+"
    assert report_html._share(1.0) == "1.000"
    assert report_html._share(0.7) == "0.700"  # the terminal summary's 3 decimals, not '0.7'
    assert report_html._share(float("nan")) == "—" and report_html._share(None) == "—"
    assert report_html._share(1 / 2500) == "0.000+" and report_html._share(0.0) == "0.000"  # the other end
    from labeltrace.report.summary import _share as terminal

    assert terminal(2499 / 2500) == "0.999+" and terminal(None) == "n/a"  # the terminal summary too


def test_a_tie_that_moves_the_count_is_said_in_the_rule() -> None:
    """forgetting asked for 4 of 400 with 31 tied at the cut flagged none, and said only 'top-k'."""
    s = np.r_[np.full(31, -11.0), np.zeros(369)]
    d = top_k(s, 0.01, "top-k at estimated rate 0.010")
    assert int(d.flagged.sum()) == 0
    assert d.rule == ("top-k at estimated rate 0.010 (4 asked, 0 flagged: 31 samples tie at the cut, "
                      "flagged all or none)")  # fmt: skip
    plain = top_k(np.arange(400.0), 0.01, "top-k")  # no tie: the rule as before
    assert int(plain.flagged.sum()) == 4 and plain.rule == "top-k"


def _flag_nothing(rd: Path) -> None:
    t = pq.read_table(rd / rundir.SAMPLES)
    t = t.set_column(t.schema.get_field_index("is_suspect"), "is_suspect", pa.array(np.zeros(t.num_rows, bool)))
    pq.write_table(t, rd / rundir.SAMPLES)


def test_nothing_flagged_has_no_precision_and_no_dot(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=30, k=3)
    _flag_nothing(rd)
    page = write_report(rd, tmp_path / "r.html").read_text()
    assert "precision — (none flagged)" in page and "precision 0<" not in page
    assert "nothing is flagged." in page and "the dot is the flagged set" not in page


def test_a_folder_as_out_gets_the_page(tmp_path: Path) -> None:
    """`report RUN --out SOMEDIR` failed with '[Errno 21] Is a directory'."""
    rd = make_run(tmp_path, n=30, k=3)
    (tmp_path / "pages").mkdir()
    assert main(["report", str(rd), "--out", str(tmp_path / "pages")]) == 0
    assert (tmp_path / "pages" / rundir.REPORT_HTML).is_file()


def test_an_html_report_named_like_another_file_type_is_refused(tmp_path: Path, capsys) -> None:
    """`report RUN --out x.png` (the default --format html) wrote the HTML page into x.png, a file
    no image viewer opens, without a word; `export --to csv --out x.parquet` is refused."""
    rd = make_run(tmp_path, n=30, k=3)
    for name in ("x.png", "pages"):  # a figure's name; a folder that does not exist
        assert main(["report", str(rd), "--out", str(tmp_path / name)]) == 2
        assert f"{tmp_path / name}: an HTML report is written to a .html file" in capsys.readouterr().err
        assert not (tmp_path / name).exists()
    assert main(["report", str(rd), "--out", str(tmp_path / "r.HTM")]) == 0  # .htm too, either case


def test_grid_captions_fit_their_column(tmp_path: Path, monkeypatch) -> None:
    assert plots.fit("short") == "short"
    assert plots.fit("a" * 30) == "a" * 15 + "…" and len(plots.fit("a" * 30)) == 16
    rd = make_run(tmp_path, n=30, k=3, classes=["invasive ductal carcinoma", "benign fibroadenoma", "normal"])
    drawn: list[list[str]] = []
    grid = plots.suspect_grid
    monkeypatch.setattr(plots, "suspect_grid", lambda imgs, caps: drawn.append(list(caps)) or grid(imgs, caps))
    folder = write_report(rd, tmp_path / "png", format="png", top=8)
    assert (folder / "top_suspects.png").is_file() and len(drawn) == 1 and len(drawn[0]) == 8
    for cap in drawn[0]:  # "#rank given" / "→ suggested", each cut to fit the column
        first, second = cap.split("\n")[:2]
        assert first.startswith("#") and second.startswith("→ ")
        assert len(first.split(" ", 1)[1]) <= 16 and len(second) <= 18
