"""What a scan writes beside its table: the warnings it printed kept in run.json (and shown by the
report), no stale samples.csv after a re-score without --csv, honest timings of a re-score, and no
negative zeros in the score columns."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from runfactory import rare_posterior
from sklearn.datasets import load_digits

from labeltrace import scan_outputs
from labeltrace.cli import main
from labeltrace.report import write_report
from labeltrace.report.summary import summary_text
from labeltrace.rundir import open_run

torch.set_num_threads(1)
BASE = ["--model", "small-cnn", "--seed", "3", "--batch-size", "8", "--epochs", "2", "--detector", "sei",
        "--runs", "1", "--quiet"]  # fmt: skip


def _npz(path: Path, n: int = 60) -> Path:
    d = load_digits()
    idx = np.concatenate([np.flatnonzero(d.target == c)[: n // 3] for c in range(3)])
    np.savez(path, train_images=(d.images[idx] / 16 * 255).astype(np.uint8), train_labels=d.target[idx])
    return path


WORDS = "sei flags 41 of 60 samples (68%): a cut that accuses most of a dataset <says> more"


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A scan with --csv whose over-flagging warning fires: (data, run dir, its stderr)."""
    tmp = tmp_path_factory.mktemp("scan")
    data, out = _npz(tmp / "d.npz"), tmp / "R"
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(err):
        mp.setattr(scan_outputs, "overflagging", lambda *a, **k: WORDS)
        assert main(["scan", str(data), "--out", str(out), *BASE, "--csv"]) == 0
    return data, out, err.getvalue()


def test_the_scans_warnings_are_kept_in_run_json_and_shown_by_the_report(scanned: tuple[Path, Path, str]) -> None:
    _, out, err = scanned
    assert f"warning: {WORDS}" in err
    assert open_run(out).meta["warnings"] == [WORDS]
    page = write_report(out, out / "r.html", top=3).read_text(encoding="utf-8")
    assert '<div class="quality warn">sei flags 41 of 60 samples (68%): a cut that accuses most of a dataset ' \
           "&lt;says&gt; more.</div>" in page  # fmt: skip


def test_no_negative_zero_in_the_score_columns(scanned: tuple[Path, Path, str]) -> None:
    """forgetting is a negated count: -0.0 for a sample never forgotten, written "-0" in the CSV."""
    run = open_run(scanned[1])
    forgetting = run.column("forgetting")
    assert (forgetting == 0).any() and not np.signbit(forgetting[forgetting == 0]).any()
    for col in [*run.score_columns(), "score", "suggested_prob"]:
        v = run.column(col)
        assert not np.signbit(v[v == 0]).any(), col
    csv = (scanned[1] / "samples.csv").read_text()
    assert ",-0," not in csv and ",-0\n" not in csv


def test_a_rescore_without_csv_removes_the_old_csv_and_keeps_honest_timings(scanned: tuple[Path, Path, str],
                                                                              tmp_path: Path) -> None:  # fmt: skip
    data, first_dir, _ = scanned
    out = tmp_path / "R"
    shutil.copytree(first_dir, out)
    first = open_run(out).meta["timings"]
    assert (out / "samples.csv").exists()
    assert main(["scan", str(data), "--out", str(out), *BASE]) == 0  # the same scan: re-scored
    assert not (out / "samples.csv").exists()
    assert "samples.csv" not in summary_text(out).splitlines()[-1]  # the "files:" line
    t = json.loads((out / "run.json").read_text())["timings"]
    assert t["train"] == first["train"] and "train_now" in t and "total_now" in t
    assert t["total"] >= t["train"]  # was 0.31 s beside 16.09 s of training
    assert abs(t["total"] - (t["train"] + t["total_now"] - t["train_now"])) < 1e-9


def test_a_finished_scan_that_trains_again_writes_its_own_timings(scanned: tuple[Path, Path, str],
                                                                   tmp_path: Path) -> None:  # fmt: skip
    """A finished scan whose recording is gone trains again: run.json kept the first training's time
    and creation as if re-scored, and the summary would have called it re-scored (a review's finding)."""
    data, first_dir, _ = scanned
    out = tmp_path / "R"
    shutil.copytree(first_dir, out)
    first = open_run(out).meta
    shutil.rmtree(out / "dynamics")  # the saved recording
    assert main(["scan", str(data), "--out", str(out), *BASE]) == 0  # trained again
    again = json.loads((out / "run.json").read_text())
    assert "train_now" not in again["timings"] and "rescored" not in again
    assert again["timings"]["train"] != first["timings"]["train"]
    assert "re-scored" not in summary_text(out).splitlines()[0]


def test_models_no_better_than_one_class_are_warned_of() -> None:
    """BreastMNIST val (78 expert-labelled images): the held-out models agreed with 70.6 % of the
    labels, less than answering 'benign' for all (73.1 %), yet the scan flagged 15 % and said nothing
    of it (a review of scans on near-clean medical sets)."""
    from labeltrace.diagnostics import agreement, no_better_than_one_class

    classes = ["benign", "malignant"]
    given = np.array([0] * 57 + [1] * 21)
    suggested = np.r_[np.zeros(55, int), np.ones(2, int), np.zeros(21, int)]  # 55 + 0 agree: 70.5 %
    assert agreement(suggested, given, classes) == (55 / 78, 57 / 78, "benign")
    words = no_better_than_one_class(suggested, given, classes)
    assert words is not None and "agree with 70.5% of the given labels" in words
    assert "answering 'benign' for every sample would (73.1%)" in words and "in any class, 'benign' included" in words
    better = np.r_[np.zeros(57, int), np.ones(10, int), np.zeros(11, int)]  # 67 of 78 agree: 85.9 %
    assert no_better_than_one_class(better, given, classes) is None


def test_a_tenth_or_more_flagged_is_read_with_a_caution() -> None:
    """A fifth of 2,000 nearly clean CIFAR-10 test photos (0.75 % wrong) was flagged with no word
    that the count follows how often a weak model contradicts the labels (an audit of clean data)."""
    from labeltrace.diagnostics import many_accused

    given = np.zeros(100, int)
    suggested = np.r_[np.ones(30, int), np.zeros(70, int)]
    words = many_accused("crossfit", np.arange(100) < 20, suggested, given)
    assert words is not None and words.startswith("crossfit flags 20 of 100 samples (20%), the models contradicting "
                                                  "30% of the given labels: without clean labels")  # fmt: skip
    assert "look at a random handful of the flagged images" in words
    assert many_accused("crossfit", np.arange(100) < 9, suggested, given) is None  # under a tenth
    assert many_accused("crossfit", np.arange(100) < 60, suggested, given) is None  # most: overflagging's


def test_the_report_says_how_often_the_models_agree_with_the_labels(scanned: tuple[Path, Path, str]) -> None:
    """The summary's one measure of how much the models learned was missing from the report."""
    run = open_run(scanned[1])
    agree = float((run.column("suggested_label_id") == run.column("given_label_id")).mean())
    page = write_report(scanned[1], scanned[1] / "agree.html", top=3).read_text(encoding="utf-8")
    assert (f'<div class="quality" id="agreement">The models agree with {agree:.1%} of the given labels (models that '
            "trained on them); answering &#x27;0&#x27; for every sample would agree with 33.3%.</div>") in page


def test_the_summary_says_how_often_the_models_agree_with_the_labels(scanned: tuple[Path, Path, str]) -> None:
    run = open_run(scanned[1])
    agree = float((run.column("suggested_label_id") == run.column("given_label_id")).mean())
    text = summary_text(scanned[1])
    assert f"the models agree with {agree:.1%} of the given labels (models that trained on them)" in text
    assert "answering '0' for every sample would agree with 33.3%" in text  # 20 of each of 3 classes: ties -> 0
    assert f"(the HTML report: labeltrace report {scanned[1]})" in text


@pytest.mark.parametrize(("protocol", "runs", "words"), [
    ({"kind": "k-fold", "dynamics": "none", "folds": 5}, 0, "the models agree with {a} of the given labels (held out)"),
    ({"kind": "none", "dynamics": "none"}, 0, "the kNN vote (leave-one-out) agrees with {a} of the given labels;"),
])  # fmt: skip
def test_the_agreement_line_says_what_made_the_suggestions(scanned: tuple[Path, Path, str], tmp_path: Path,
                                                          protocol: dict, runs: int, words: str) -> None:  # fmt: skip
    """A cl run's out-of-fold probabilities are held out; the kNN vote on frozen features trained no model."""
    out = tmp_path / "R"
    shutil.copytree(scanned[1], out)
    meta = json.loads((out / "run.json").read_text())
    meta["protocol"], meta["runs"] = protocol, runs
    (out / "run.json").write_text(json.dumps(meta))
    run = open_run(out)
    agree = float((run.column("suggested_label_id") == run.column("given_label_id")).mean())
    assert words.format(a=f"{agree:.1%}") in summary_text(out)


def test_a_crossfit_runs_held_out_accuracy_is_its_last_epochs(tmp_path: Path) -> None:
    """run.json's held_out_accuracy was the mean over every epoch (the first, poor ones included), beside
    in-sample runs' final_train_accuracy of their last epoch: two kinds of number under one name."""
    out = tmp_path / "R"
    assert main(["scan", str(_npz(tmp_path / "d.npz")), "--out", str(out), "--model", "small-cnn", "--seed", "3",
                 "--batch-size", "8", "--epochs", "3", "--folds", "2", "--quiet"]) == 0  # fmt: skip
    rows = out / "dynamics" / "run0.rows"  # the held-out rows: epoch-major (epoch, sample), as store.json says
    correct = np.fromfile(rows / "correct.f32", dtype="<f4").reshape(3, 60)
    seen = np.fromfile(rows / "seen.u8", dtype=np.uint8).reshape(3, 60).astype(bool)
    train = json.loads((out / "run.json").read_text())["train"]
    assert train["held_out_accuracy"] == [pytest.approx(correct[2][seen[2]].mean())]
    assert train["held_out_accuracy_over_epochs"] == [pytest.approx(np.mean([correct[t][seen[t]].mean() for t in range(3)]))]
    # the summary said "the models agree with X% (held out)", X the suggested labels' agreement (the held-out
    # probabilities averaged over every epoch), beside run.json's held_out_accuracy of the last epoch: it
    # says which X is, and gives run.json's number too
    run = open_run(out)
    agree = float((run.column("suggested_label_id") == run.column("given_label_id")).mean())
    text = summary_text(out)
    assert (f"the models agree with {agree:.1%} of the given labels (held out: the suggested labels, from their "
            f"probabilities averaged over every epoch; the last epoch's predictions alone "
            f"{train['held_out_accuracy'][0]:.1%}, run.json's held_out_accuracy); answering") in text  # fmt: skip
    meta = json.loads((out / "run.json").read_text())  # an older run.json: held_out_accuracy a mean over epochs
    meta["train"] = {k: v for k, v in meta["train"].items() if k != "held_out_accuracy_over_epochs"}
    (out / "run.json").write_text(json.dumps(meta))
    assert (f"the models agree with {agree:.1%} of the given labels (held out: the suggested labels, from their "
            "probabilities averaged over every epoch); answering") in summary_text(out)  # fmt: skip


def test_a_noise_rate_a_rare_class_inflates_is_warned_of() -> None:
    """15 pneumonia images among 755 chest X-rays (PneumoniaMNIST, clean labels, frozen features): the
    held-out models called every one 'normal' (mean p(pneumonia) 0.007), and confident learning's
    threshold for 'pneumonia' — that mean — let 324 'normal' labels the models agree with count as
    wrong: "estimated noise rate 44.2%" on a clean set, unexplained (a review of rare-class sets)."""
    from labeltrace.diagnostics import inflated_estimate
    from labeltrace.score.confident import estimate_noise_rate

    classes = ["normal", "pneumonia"]
    post, given = rare_posterior(np.random.default_rng(1).uniform(0.001, 0.015, 15))
    assert estimate_noise_rate(post, given) > 0.3  # the inflated estimate itself
    words = inflated_estimate(post, given, classes)
    assert words is not None
    assert "is far above the share of labels the models contradict, 2.0% (15)" in words
    assert "counts a label as really 'pneumonia' when its p('pneumonia') reaches 0.00" in words
    assert "Read the rate as inflated" in words
    # a model that recognises the rare class: its threshold is high, and nothing is said
    post, given = rare_posterior(np.random.default_rng(1).uniform(0.6, 0.99, 15))
    assert inflated_estimate(post, given, classes) is None
    # a class whose labels are mostly wrong (160 'pneumonia' labels, the models contradict 150): the
    # estimate stays within twice the labels the models contradict, and nothing is said
    rng = np.random.default_rng(2)
    post, given = rare_posterior(np.r_[rng.uniform(0.001, 0.3, 150), rng.uniform(0.6, 0.99, 10)])
    assert inflated_estimate(post, given, classes) is None


def test_a_class_with_fewer_samples_than_folds_is_named() -> None:
    from labeltrace.diagnostics import small_classes

    given = np.r_[np.zeros(300, int), np.ones(2, int), np.full(4, 2)]
    names = ["normal", "pneumonia", "covid"]
    assert small_classes(given, names, None) is None  # no folds (an in-sample run)
    assert small_classes(given, names, 2) is None  # every class has 2 samples or more
    assert small_classes(given, names, 3) == (
        "class 'pneumonia' (2 samples) has fewer samples than the 3 folds: the model that judges each of its samples "
        "held out trained on at most 1 other of its class, so its verdict on these labels is weak evidence either way; "
        "more images of the class help, fewer --folds do not")
    words = small_classes(given, names, 5)
    assert words is not None and words.startswith("classes 'pneumonia' (2 samples), 'covid' (4 samples) have fewer")
    assert "trained on at most 3 others of its class" in words


@pytest.mark.parametrize("detector", ["crossfit", "cl"])
def test_a_scan_names_a_class_smaller_than_its_folds(tmp_path: Path, detector: str, capsys) -> None:  # noqa: ANN001
    """2 pneumonia images among 302 chest X-rays, 5 folds: the default scan said nothing of it, the
    K-fold detectors printed scikit-learn's warning with its source line ('The least populated class
    in y has only 2 members, which is less than n_splits=5.')."""
    import warnings

    from labeltrace.data import from_arrays
    from labeltrace.scan import ScanConfig, scan

    x, y = load_digits(return_X_y=True)
    keep = np.r_[np.flatnonzero(y == 0)[:40], np.flatnonzero(y == 1)[:2]]  # a class of 2
    ds = from_arrays((x[keep].reshape(-1, 8, 8) * 16).clip(0, 255).astype(np.uint8), (y[keep] == 1).astype(int),
                     classes=["normal", "pneumonia"])  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # scikit-learn's own warning is not repeated
        scan(ds, tmp_path / "run", ScanConfig(model="small-cnn", epochs=1, folds=5, batch_size=64, seed=0,
                                               detector=detector), progress=False, log=lambda s: None)  # fmt: skip
    (w,) = [w for w in open_run(tmp_path / "run").meta["warnings"] if "fewer samples than the 5 folds" in w]
    assert w.startswith("class 'pneumonia' (2 samples) has fewer samples than the 5 folds")
    assert f"warning: {w}" in capsys.readouterr().err


def test_models_hardly_better_than_one_class_are_warned_of_too() -> None:
    """PneumoniaMNIST test (624 images), a CNN trained 3 epochs: 62.7 % agreement against 62.5 %
    for answering 'pneumonia' — the scan flagged 20 % and warned of nothing, 0.2 points being
    'better'."""
    from labeltrace.diagnostics import no_better_than_one_class

    classes = ["normal", "pneumonia"]
    given = np.array([0] * 234 + [1] * 390)
    suggested = np.r_[np.ones(233, int), np.zeros(1, int), np.ones(390, int)]  # 391 of 624 agree: 62.7 %
    words = no_better_than_one_class(suggested, given, classes)
    assert words is not None and "agree with 62.7% of the given labels, hardly more than answering 'pneumonia'" in words
    assert "(62.5%; within two standard errors on 624 samples, ±3.9%)" in words
    clear = np.r_[np.zeros(30, int), np.ones(204, int), np.ones(390, int)]  # 420 of 624: 67.3 %, beyond 66.4 %
    assert no_better_than_one_class(clear, given, classes) is None


def test_models_that_agree_with_every_label_are_not_hardly_better_than_one_class() -> None:
    """On 5 samples (3 of one class) two standard errors are ±43.8 %, and on 300 with 3 of the other
    class ±1.1 % over 99 %: models agreeing with every label were said to agree 'hardly more' than
    answering the common class, though they contradict none."""
    from labeltrace.diagnostics import no_better_than_one_class, one_class_phrase

    classes = ["a", "b"]
    for given in (np.array([0, 0, 0, 1, 1]), np.array([0] * 297 + [1] * 3)):
        assert one_class_phrase(given, given, classes) is None
        assert no_better_than_one_class(given, given, classes) is None
    given = np.array([0, 0, 0, 1, 1])
    words = one_class_phrase(np.array([0, 0, 0, 1, 0]), given, classes)  # 4 of 5: within ±43.8 % still
    assert words is not None and "hardly more than answering 'a'" in words
    assert one_class_phrase(np.zeros(5, int), given, classes) is not None  # the common class itself: no more


def _scanned_twice(tmp_path: Path, flags: list[str]) -> tuple[Path, dict, dict]:
    """A small scan with ``flags`` and the same scan again (re-scored): its run dir, both run.json."""
    data, out = _npz(tmp_path / "d.npz"), tmp_path / "R"
    cmd = ["scan", str(data), "--out", str(out), "--model", "small-cnn", "--seed", "3", "--batch-size", "8",
           "--epochs", "2", "--quiet", *flags]  # fmt: skip
    assert main(cmd) == 0
    meta = json.loads((out / "run.json").read_text())
    assert main(cmd) == 0  # nothing trained
    return out, meta, json.loads((out / "run.json").read_text())


@pytest.mark.parametrize(("flags", "trainings"), [
    (["--detector", "crossfit", "--folds", "2"], 2), (["--detector", "sei", "--runs", "1"], 1),
    (["--detector", "single"], 1), (["--detector", "cl", "--folds", "2"], 2),
])  # fmt: skip
def test_run_json_cost_is_the_wall_time_of_the_trainings(tmp_path: Path, flags: list[str], trainings: int) -> None:
    """cost.seconds summed the epochs of a recorded scan but was the whole training stage of a cl scan
    (the fits, then every detector's detection), and a cl scan re-scored put the re-score's time there."""
    out, meta, again = _scanned_twice(tmp_path, flags)
    cost, t = meta["cost"], meta["timings"]
    assert cost["trainings"] == trainings and 0 < cost["seconds"] <= t["train"] <= t["total"]  # spans that nest
    if (out / "dynamics" / "recording.json").is_file():  # the recorded epochs' times, summed
        recorded = json.loads((out / "dynamics" / "recording.json").read_text())["seconds"]
        assert cost["seconds"] == pytest.approx(sum(recorded))
    assert again["cost"] == cost and again["timings"]["train"] == t["train"]  # re-scored: what the training took


@pytest.mark.parametrize(("flags", "runs", "folds"), [
    (["--detector", "crossfit", "--folds", "2"], None, 2), (["--detector", "sei", "--runs", "1"], 1, None),
    (["--detector", "single"], 1, None),  # one run, whatever --runs (2 by default) says
    (["--detector", "cl", "--folds", "2"], None, 2),
])  # fmt: skip
def test_run_json_config_says_the_runs_and_folds_the_detector_used(tmp_path: Path, flags: list[str],
                                                                   runs: int | None, folds: int | None) -> None:  # fmt: skip
    """config.runs said 2 on scans that recorded one in-sample run (single) or none (crossfit, cl),
    config.folds 5 on in-sample scans, which train no fold; the top-level runs said otherwise."""
    _, meta, again = _scanned_twice(tmp_path, flags)
    assert (meta["config"]["runs"], meta["config"]["folds"]) == (runs, folds)
    assert again["config"] == meta["config"]
    assert meta["runs"] == (runs or (1 if "crossfit" in flags else 0))
    accuracy = {k for k in meta["train"] if "accuracy" in k}  # a cl scan's said final_train_accuracy: [] of 5 fits
    assert accuracy == ({"held_out_accuracy", "held_out_accuracy_over_epochs"} if "crossfit" in flags else
                        set() if "cl" in flags else {"final_train_accuracy"})  # fmt: skip


def test_a_run_json_written_before_still_reports(scanned: tuple[Path, Path, str], tmp_path: Path) -> None:
    """A run.json of an older scan (config.runs 2 and folds 5 on a one-run scan, cost.seconds of the
    training stage, held_out_accuracy a mean over epochs, no accuracy beside it) and a review with
    a skip: the summary and the report read it as before, the review counted as the page counts it."""
    from labeltrace.relabel.runstore import run_store

    out = tmp_path / "R"
    shutil.copytree(scanned[1], out)
    meta = json.loads((out / "run.json").read_text())
    meta["config"] |= {"runs": 2, "folds": 5}
    meta["cost"] = {"trainings": 1, "seconds": meta["timings"]["train"]}
    meta["train"] = {k: v for k, v in meta["train"].items() if k != "final_train_accuracy"} | {"held_out_accuracy": [0.5]}
    (out / "run.json").write_text(json.dumps(meta))
    run = open_run(out)
    given = [int(g) for g in run.column("given_label_id")]
    st = run_store(run)
    st.add(0, run.classes[given[0]], reviewer="ada")
    st.add(1, "skip", kind="skip", reviewer="ada")
    assert summary_text(out).startswith("labeltrace scan — 60 samples, 3 classes, model small-cnn, 2 epochs x 1 run")
    page = write_report(out, out / "r.html", top=3).read_text(encoding="utf-8")
    assert "<b>1</b> of 60 samples reviewed" in page and "1 skipped." in page and "2 epochs × 1 run" in page


def test_run_json_timings_hold_the_model_and_resolution_probes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--model auto`` / ``--resolution auto`` probe before anything else (on frozen features: extracted
    at 96 and 224 px, 200 of a 204 s BreastMNIST scan) and no timing held that time: run.json's stages
    summed to 7 s of its 204 s ``total``. A clock the probe moves by 100 s shows where it went."""
    import time as real_time
    from types import SimpleNamespace

    from labeltrace import scan as scan_module

    offset = [0.0]
    clock = SimpleNamespace(perf_counter=lambda: real_time.perf_counter() + offset[0], strftime=real_time.strftime)
    monkeypatch.setattr(scan_module, "time", clock)
    monkeypatch.setattr(scan_outputs, "time", clock)
    picked = scan_module.resolve_model

    def slow_probe(config, ds):  # noqa: ANN001, ANN202 - the probe as it is, 100 s later
        offset[0] += 100.0
        return picked(config, ds)

    monkeypatch.setattr(scan_module, "resolve_model", slow_probe)
    data, out = _npz(tmp_path / "d.npz"), tmp_path / "R"
    assert main(["scan", str(data), "--out", str(out), *BASE]) == 0
    t = json.loads((out / "run.json").read_text())["timings"]
    assert t["probe"] >= 100.0 and t["total"] >= 100.0
    stages = ("probe", "duplicates", "prepare_inputs", "train", "score")
    assert sum(t[s] for s in stages) <= t["total"]


def test_what_reading_the_images_warned_of_is_kept_in_run_json_and_shown_by_the_report(tmp_path: Path) -> None:
    """The data's warnings (16-bit files beside 8-bit ones, files not read, ...) were printed once
    and lost: run.json kept only the scoring's, and the report said nothing of them."""
    from PIL import Image

    d = load_digits()
    for k in range(30):
        folder = tmp_path / "imgs" / f"c{d.target[k] % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        pix = d.images[k] / 16
        if k % 3:
            Image.fromarray((pix * 255).astype(np.uint8)).save(folder / f"{k}.png")
        else:  # 12-bit values in a 16-bit file
            Image.fromarray((pix * 4095).astype(np.uint16)).save(folder / f"{k}_deep.png")
    (tmp_path / "imgs" / "c0" / "scan.tif.bak").write_text("a backup")
    out = tmp_path / "R"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["scan", str(tmp_path / "imgs"), "--out", str(out), *BASE]) == 0
    kept = open_run(out).meta["warnings"]
    said = [w for w in kept if "are 16-bit files whose brightest pixel" in w]
    assert len(said) == 1 and f"warning: {said[0]}" in err.getvalue()
    assert any("are not read" in w and "c0/scan.tif.bak" in w for w in kept)
    page = write_report(out, out / "r.html", top=3).read_text(encoding="utf-8")
    assert "are 16-bit files whose brightest pixel is at most 50% of their range" in page


def test_the_caution_is_left_out_where_the_true_labels_are_known(tmp_path: Path) -> None:
    """With --noise the precision says how good the flags are: the caution fired on the README's own
    quick start (323 of 1,797 flagged at 20 % injected noise)."""
    out = tmp_path / "R"
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["scan", str(_npz(tmp_path / "d.npz", n=90)), "--out", str(out), *BASE, "--noise",
                     "symmetric:0.2"]) == 0  # fmt: skip
    run = open_run(out)
    assert run.column("is_suspect").astype(bool).mean() >= 0.1  # a share the caution would otherwise say
    assert not any("without clean labels a count of wrong labels" in w for w in run.meta["warnings"])
