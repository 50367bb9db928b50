"""The report's figures: the recording the signed-entropy figure draws, the cutoff's legend, and the
PNG folder written atomically without another run's figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from runfactory import make_run

from labeltrace.report import write_report
from labeltrace.report.content import figures, read_report_data
from labeltrace.rundir import open_run


def test_a_cross_fitted_run_draws_the_in_sample_recording_its_sei_comes_from(tmp_path: Path) -> None:
    """The groups are quartiles of the in-sample SEI: drawn over the held-out recording, the
    'easy' curve sat below zero."""
    run = open_run(make_run(tmp_path, n=40, k=3, crossfit=True))
    d = read_report_data(run)
    assert d.traj_view == "in-sample"
    ins = run.in_sample_dynamics(0)
    assert ins is not None
    np.testing.assert_array_equal(d.signed_entropy, ins.epochs("signed_entropy"))
    assert not np.array_equal(d.signed_entropy, run.dynamics(0, held_out=True).epochs("signed_entropy"))
    caption = figures(d, seed=0)["signed_entropy_trajectories"][0]
    assert "in-sample: each sample as seen by the model(s) that trained on its label" in caption
    # a cross-fitted run without an in-sample companion draws its held-out recording, and says so
    (run.path / "dynamics" / "run0_in_sample.npz").unlink()
    d = read_report_data(open_run(run.path))
    assert d.traj_view == "held-out"
    np.testing.assert_array_equal(d.signed_entropy, run.dynamics(0, held_out=True).epochs("signed_entropy"))
    assert "held-out: each sample as seen by the cross-fitted model" in figures(d, seed=0)["signed_entropy_trajectories"][0]


def test_an_in_sample_run_draws_its_own_recording(tmp_path: Path) -> None:
    run = open_run(make_run(tmp_path, n=30, k=3))
    d = read_report_data(run)
    assert d.traj_view == "in-sample"
    page = write_report(run.path, top=3).read_text(encoding="utf-8")
    assert "Signed entropy over training, in-sample" in page


def _tie_cutoff(rd: Path) -> float:
    """Set the run's cutoff just above its flagged scores' largest (a top-k cut of a whole-number
    score such as forgetting: -6.999999999999999 for flagged samples at -7); return that score."""
    from labeltrace.rundir import RUN_JSON, write_json

    run = open_run(rd)
    top = float(run.column("score")[run.column("is_suspect").astype(bool)].max())
    meta = run.meta
    meta["detector"] = {**meta["detector"], "cutoff": float(np.nextafter(top, np.inf)), "rule": "top-k"}
    write_json(rd / RUN_JSON, meta)
    return top


def test_card_and_histogram_word_a_tie_cutoff_as_the_summary_does(tmp_path: Path, monkeypatch) -> None:
    from labeltrace.report import plots

    rd = make_run(tmp_path, n=30, k=3)
    top = _tie_cutoff(rd)
    legends: list[str] = []
    draw = plots.figure_png

    def spy(fig: Figure) -> bytes:  # the figure's legend texts, then the PNG
        legends.extend(t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts())
        return draw(fig)

    monkeypatch.setattr(plots, "figure_png", spy)
    page = write_report(rd, top=3).read_text(encoding="utf-8")
    flagged = int(open_run(rd).column("is_suspect").sum())
    assert f"flags sei ≤ {top:.4g} · rule top-k" in page and f"cutoff {np.nextafter(top, np.inf):.3g}" not in page
    assert f"sei ≤ {top:.4g} ({flagged} flagged)" in legends


def test_png_folder_keeps_only_this_reports_figures_written_atomically(tmp_path: Path, monkeypatch) -> None:
    """A folder holding another run's figures: those this report does not draw (no true labels: no
    precision-recall; top 0: no suspects) go, the rest are replaced through the atomic writer."""
    from labeltrace.report import html as report_html

    folder = tmp_path / "figs"
    with_truth = make_run(tmp_path / "a", n=30, k=3)
    write_report(with_truth, folder, format="png", top=5)
    assert sorted(p.name for p in folder.iterdir()) == ["precision_recall.png", "score_histogram.png",
                                                        "signed_entropy_trajectories.png", "top_suspects.png"]
    written: list[str] = []
    atomic = report_html.atomic_write_bytes
    monkeypatch.setattr(report_html, "atomic_write_bytes", lambda p, b: written.append(Path(p).name) or atomic(p, b))
    without = make_run(tmp_path / "b", n=30, k=3, with_truth=False, with_files=False)
    write_report(without, folder, format="png", top=0)
    assert sorted(p.name for p in folder.iterdir()) == ["score_histogram.png", "signed_entropy_trajectories.png"]
    assert sorted(written) == ["score_histogram.png", "signed_entropy_trajectories.png"]
    (folder / "notes.txt").write_text("mine")  # a file of the user's is never touched
    write_report(without, folder, format="png", top=2)
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "top_suspects.png").is_file()
