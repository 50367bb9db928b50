"""What the product says about a run matches the run's kind (a review read every text of sei, aum,
cl, own-training and crossfit runs against what each did)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from runfactory import make_run

from labeltrace.decide.detectors import get
from labeltrace.diagnostics import identical_text
from labeltrace.report import write_report


def test_an_in_sample_detectors_summary_says_its_cut_without_auxiliary_samples() -> None:
    """run.json said "cut at the auxiliary samples' mean" of a `--runs 1` scan cut by a GMM."""
    said = ("without auxiliary samples: as many as the default counts on a cross-fitted run's held-out posterior, "
            "else (one run) as the one-training mode counts")
    for name in ("confidence", "loss"):
        assert get(name).summary.endswith(said)
    for name in ("sei", "aum"):
        assert get(name).summary.endswith(said + ", never a score >= 0")


def test_identical_copies_are_explained_without_folds() -> None:
    """"each copy backs its twin's label from fold to fold" was said of runs with no folds."""
    (text,) = identical_text([[0, 1]], np.array([0, 0]), ["cat"], ["a.png", "b.png"])
    assert "fold to fold" not in text and "has trained on the other, held out or not" in text


def test_the_suspects_note_describes_the_runs_own_score(tmp_path: Path) -> None:
    """The note described crossfit's score (the in-sample trajectory beside the held-out one) on
    sei, aum, cl and own-training reports."""
    rd = make_run(tmp_path / "sei", n=30, k=3, seed=1)
    page = Path(write_report(rd, tmp_path / "sei.html")).read_text()
    assert "is the detector's own (sei), not that probability" in page and "in-sample trajectory" not in page
    cf = make_run(tmp_path / "cf", n=30, k=3, seed=1, crossfit=True)
    meta = json.loads((cf / "run.json").read_text())
    meta["detector"]["name"] = "crossfit"
    (cf / "run.json").write_text(json.dumps(meta))
    page = Path(write_report(cf, tmp_path / "cf.html")).read_text()
    assert "also reads the in-sample trajectory beside the held-out one" in page



def test_the_crossfit_variants_suspects_note_describes_crossfits_score(tmp_path: Path) -> None:
    cf = make_run(tmp_path, n=30, k=3, seed=1, crossfit=True)
    meta = json.loads((cf / "run.json").read_text())
    meta["detector"]["name"] = "crossfit_clcount"  # crossfit's score, confident learning's count
    (cf / "run.json").write_text(json.dumps(meta))
    assert "also reads the in-sample trajectory" in Path(write_report(cf, tmp_path / "cf.html")).read_text()


def test_a_rescored_scan_s_summary_names_the_training_its_results_come_from() -> None:
    """A finished scan run again printed '20 epochs x 5 folds, 1.0 s' after a 212.6 s training (a
    new-user audit's finding): its results are that training's."""
    from labeltrace.report.summary import _rescored

    said = _rescored({"timings": {"train": 212.6, "train_now": 0.1}})
    assert said == " (re-scored from its saved recording, which trained in 212.6 s)"
    assert _rescored({"timings": {"train": 212.6}}) == ""  # a scan that trained now
    assert _rescored({}) == ""
