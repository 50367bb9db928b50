"""The report's figures: the recording the signed-entropy figure draws, the cutoff's legend, and the
PNG folder written atomically without another run's figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
    assert not np.array_equal(d.signed_entropy, run.dynamics(0).epochs("signed_entropy"))
    caption = figures(d, seed=0)["signed_entropy_trajectories"][0]
    assert "in-sample: each sample as seen by the models that trained on its label" in caption
    # a cross-fitted run without an in-sample companion draws its held-out recording, and says so
    (run.path / "dynamics" / "run0_in_sample.npz").unlink()
    d = read_report_data(open_run(run.path))
    assert d.traj_view == "held-out"
    np.testing.assert_array_equal(d.signed_entropy, run.dynamics(0).epochs("signed_entropy"))
    assert "held-out: each sample as seen by the cross-fitted model" in figures(d, seed=0)["signed_entropy_trajectories"][0]


def test_an_in_sample_run_draws_its_own_recording(tmp_path: Path) -> None:
    run = open_run(make_run(tmp_path, n=30, k=3))
    d = read_report_data(run)
    assert d.traj_view == "in-sample"
    page = write_report(run.path, top=3).read_text(encoding="utf-8")
    assert "Signed entropy over training, in-sample" in page
