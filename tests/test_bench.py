"""labeltrace bench: the quick grid end to end (CSV / markdown / plots), resume without
retraining, automatic pick-up of new detectors, config validation and the report tables."""

from __future__ import annotations

import csv
import math
import platform
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from labeltrace.bench import cells, parse_config, run_bench
from labeltrace.bench.cells import CSV_COLUMNS, CURVE_COLUMNS, CellRunner
from labeltrace.bench.config import apply_quick, load_config, resolve_detectors
from labeltrace.bench.grid import expand, load_dataset
from labeltrace.bench.report import markdown_report, plot_f1_vs_rate, summarize, text_table
from labeltrace.decide import detectors
from labeltrace.train import protocol

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "benchmarks" / "configs" / "quick.toml"
METRICS = ("precision", "recall", "f1", "auroc", "ap", "f1_at_true_rate")


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as fh:
        r = csv.DictReader(fh)
        return list(r.fieldnames or []), list(r)


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("bench")
    cfg = replace(load_config(QUICK), cache_dir=str(tmp / "cache"), threads=1)
    res = run_bench(cfg, out_dir=tmp / "out", log=lambda s: None, command="pytest")
    return cfg, res, tmp


def test_quick_grid_writes_csv_markdown_and_plots(quick) -> None:
    cfg, res, tmp = quick
    assert not res.failures
    cols, rows = _read(tmp / "out" / "quick.csv")
    assert cols == list(CSV_COLUMNS)
    dets = resolve_detectors(["*"])
    assert dets == detectors.available()  # every row of the detector table
    assert {"crossfit", "sei", "aum", "se_mid", "forgetting", "knn_vote", "cl", "cleanlab"} <= set(dets)
    cells = expand(cfg)
    assert len(cells) == 2  # digits x {symmetric:0.2, confusion:0.4} x 1 seed x small-cnn
    assert len(rows) == len(cells) * len(dets)
    assert {(r["labels"], r["detector"]) for r in rows} == {(c.labels, d) for c in cells for d in dets}
    for r in rows:
        assert r["dataset"] == "digits" and r["model"] == "small-cnn" and r["seed"] == "0"
        assert r["note"] == "" or r["note"].startswith(("failed:", "warning: flags"))
        if r["note"]:
            continue
        for m in METRICS:
            v = float(r[m])
            assert 0.0 <= v <= 1.0, (r["detector"], m, v)
        p, rc, f1 = (float(r[k]) for k in ("precision", "recall", "f1"))
        assert f1 == pytest.approx(0.0 if p + rc == 0 else 2 * p * rc / (p + rc), abs=1e-5)
        assert int(r["n"]) == 300 and 0 <= int(r["n_flagged"]) <= 300
        assert int(r["n_noisy"]) == round(float(r["true_rate"]) * 300)
        assert float(r["wall_seconds"]) > 0
        # crossfit_knn: 5, its embedding is the fold models' common one, kept by the cross-fitted recording
        expect_fits = 5 if r["detector"].startswith(("crossfit", "cl")) else \
            1 if r["detector"].startswith(("single", "knn")) else 2  # fmt: skip
        assert int(r["n_trainings"]) == expect_fits
    # noise is injected at the configured rate, exactly
    for r in rows:
        assert float(r["true_rate"]) == pytest.approx(float(r["rate"]), abs=1 / 300)
    # our confident learning and the cleanlab package flag the same samples
    by = {(r["labels"], r["detector"]): r for r in rows}
    for c in cells:
        assert by[(c.labels, "cl")]["n_flagged"] == by[(c.labels, "cleanlab")]["n_flagged"]
        assert by[(c.labels, "cl")]["precision"] == by[(c.labels, "cleanlab")]["precision"]

    ccols, curve = _read(tmp / "out" / "quick_sei_epochs.csv")
    assert ccols == list(CURVE_COLUMNS)
    assert len(curve) == len(cells) * cfg.models["small-cnn"].epochs
    assert all(0 <= float(r["f1_at_true_rate"]) <= 1 for r in curve)

    md = (tmp / "out" / "quick.md").read_text()
    for needle in ("## F1 (own decision rule)", "## F1 at the true noise rate", "## AUROC", "## Cost",
                   "machine: Linux" if platform.system() == "Linux" else "machine:", "torch", "cores", "**"):  # fmt: skip
        assert needle in md
    for d in dets:
        assert f" {d} |" in md
    # F1-vs-rate needs two rates of one noise kind; the quick grid has one of each
    assert not (tmp / "out" / "quick_f1_vs_rate.png").exists()
    assert (tmp / "out" / "quick_sei_epochs.png").stat().st_size > 1000


def test_sei_row_matches_an_independent_computation(quick) -> None:
    """Recompute SEI (two runs, auxiliary-mean cutoff) from the raw per-epoch signed entropy."""
    cfg, res, _ = quick
    cell = expand(cfg)[0]
    runner = CellRunner(cell, load_dataset(cell.dataset, cfg.cache_path, log=lambda s: None), cfg,
                        log=lambda s: None)  # fmt: skip
    runs = runner.in_sample().runs
    per = [np.nanmean(r.dynamics.epochs("signed_entropy"), axis=0) for r in runs]
    a, b = runs[0].is_auxiliary, runs[1].is_auxiliary
    sei = np.where(a, per[1], np.where(b, per[0], (per[0] + per[1]) / 2))
    cutoff = np.concatenate([per[0][a], per[1][b]]).mean()
    flagged = sei < cutoff
    truth = runner.truth
    row = next(r for r in res.rows if r["detector"] == "sei" and r["labels"] == cell.labels)
    assert row["n_flagged"] == int(flagged.sum())
    assert row["precision"] == pytest.approx((flagged & truth).sum() / flagged.sum())
    assert row["recall"] == pytest.approx((flagged & truth).sum() / truth.sum())
    assert row["cutoff"] == pytest.approx(cutoff, rel=1e-5)
    # threshold-free: the n_noisy lowest SEI
    k = int(truth.sum())
    lowest = np.argsort(sei, kind="stable")[:k]
    assert row["f1_at_true_rate"] == pytest.approx(truth[lowest].mean())
    # the epochs curve ends at the full integral
    last = [c for c in res.curve if c["labels"] == cell.labels][-1]
    assert last["epochs"] == runs[0].dynamics.num_epochs
    assert last["f1"] == pytest.approx(row["f1"])


def test_training_time_is_counted_once(quick, monkeypatch) -> None:
    """A detector's cost = the fits' recorded seconds + its own compute; the first detector that
    triggers (or loads) a fit must not count that time again as its own compute. The clock of the
    cell runner is a fake one that jumps 100 s when the cross-fitted recording is first fetched."""
    cfg, _, _ = quick
    cell = expand(cfg)[0]
    runner = CellRunner(cell, load_dataset(cell.dataset, cfg.cache_path, log=lambda s: None), cfg,
                        log=lambda s: None)  # fmt: skip
    clock = [0.0]
    monkeypatch.setattr(cells, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    fetch = runner.held_out

    def slow_fetch():  # noqa: ANN202
        if "held_out" not in runner._recordings:
            clock[0] += 100.0
        return fetch()

    monkeypatch.setattr(runner, "held_out", slow_fetch)
    first, second = runner.detector("crossfit_clcount"), runner.detector("crossfit_rate")
    fits = sum(runner.held_out().seconds)
    assert first["wall_seconds"] == pytest.approx(fits)
    assert second["wall_seconds"] == pytest.approx(fits)
    assert first["n_trainings"] == second["n_trainings"] == cfg.n_folds


def test_rerun_trains_nothing_and_picks_up_new_detectors(quick, monkeypatch) -> None:
    cfg, res, tmp = quick

    def no_training(*a, **k):
        raise AssertionError("a cached training was recomputed")

    monkeypatch.setattr(protocol, "train_recorded", no_training)
    monkeypatch.setattr(protocol, "crossfit_recorded", no_training)
    # a detector registered later under "default" (one row of the table) appears without harness changes
    monkeypatch.setitem(detectors._TABLE, "default", detectors.get("sei"))
    res2 = run_bench(cfg, out_dir=tmp / "out2", log=lambda s: None, plots=False)
    assert not res2.failures
    new = [r for r in res2.rows if r["detector"] == "default"]
    assert len(new) == 2
    old = {(r["labels"], r["detector"]): r for r in res.rows}
    for r in new:
        assert r["f1"] == old[(r["labels"], "sei")]["f1"]
    for r in res2.rows:
        if r["detector"] != "default":
            o = old[(r["labels"], r["detector"])]
            assert r.keys() == o.keys()
            assert all(r[k] == o[k] or (r[k] != r[k] and o[k] != o[k]) for k in r)  # NaN == NaN


def _raw() -> dict:
    return {
        "name": "t",
        "models": {"m": {"kind": "small-cnn", "epochs": 2}},
        "datasets": [{"name": "digits", "source": "digits", "labels": ["symmetric:0.2"], "models": ["m"]}],
    }


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (lambda r: r.update(bogus=1), "unknown keys ['bogus']"),
        (lambda r: r["datasets"][0].update(models=["nope"]), "models ['nope'] are not defined"),
        (lambda r: r["datasets"][0].update(labels=["gaussian:0.2"]), "labels 'gaussian:0.2': must look like"),
        (lambda r: r["datasets"][0].update(source="web"), "source must be one of"),
        (lambda r: r["models"]["m"].update(kind="vit"), "kind must be one of"),
        (lambda r: r["models"]["m"].update(epochs=0), "'epochs' must be >= 1"),
        (lambda r: r.update(seeds=[]), "'seeds' must be a non-empty list"),
        (lambda r: r["datasets"].append(dict(r["datasets"][0])), "dataset names must be unique"),
        (lambda r: r["datasets"][0].update(source="cifar10n", labels=["aggre"]), "needs 'path'"),
        (lambda r: r["datasets"][0].update(source="cifar10n", path="x.zip", labels=["sym"]),
         "got 'sym'; or a label set of the source"),
        (lambda r: r["datasets"][0].update(classes=[3]), "at least two distinct class ids"),
        (lambda r: r["datasets"][0].update(classes=[3, 3]), "at least two distinct class ids"),
        (lambda r: r["datasets"][0].update(classes=[3, "5"]), "at least two distinct class ids"),
        (lambda r: r["datasets"][0].update(source="cifar10n", path="x.zip", labels=["aggre"], classes=[3, 5]),
         "only synthetic noise and 'clean' labels are allowed, got ['aggre']"),
        (lambda r: r["models"]["m"].update(resolution=224), "'resolution' is the fine-tuned effnet-lite0's"),
        (lambda r: r.update(quick={"labels": ["symetric:0.2"]}), "labels ['symetric:0.2'] are not in the config"),
        (lambda r: r.update(quick={"models": ["cnn"]}), "models ['cnn'] are not in the config"),
        (lambda r: r.update(quick={"datasets": ["digit"]}), "datasets ['digit'] are not in the config"),
        (lambda r: r.update(quick={"seeds": 0}), "[quick]: 'seeds' must be a non-empty list"),
        (lambda r: r.update(quick={"epochs": 0}), "[quick]: 'epochs' must be >= 1"),
        (lambda r: r.update(quick={"subset": "300"}), "[quick]: 'subset' must be"),
        (lambda r: r.update(quick={"detectors": "sei"}), "[quick]: 'detectors' must be a non-empty list"),
        (lambda r: r.update(quick=[1]), "[quick]: must be a table"),
        (lambda r: r.update(seeds=[0, 0, 1]), "'seeds' lists 0 more than once"),
        (lambda r: r["datasets"][0].update(labels=["clean", "symmetric:0.2", "clean"]), "'labels' lists 'clean' more than once"),
        (lambda r: r["datasets"][0].update(models=["m", "m"]), "'models' lists 'm' more than once"),
        (lambda r: r.update(threads=0), "threads must be >= 1"),
        (lambda r: r["models"]["m"].update(cv="logreg"), "cv = 'logreg' fits a logistic regression on frozen features"),
        (lambda r: r.update(name="x/../../escape"), "a plain file stem"),
        (lambda r: r.update(name=""), "a plain file stem"),
        (lambda r: r["models"]["m"].update(epochs="2"), "'epochs' must be an integer, got '2'"),
        (lambda r: r["datasets"][0].update(path="digits.npz"), "source 'digits' does not read 'path'"),
        (lambda r: r["datasets"][0].update(source="cifar10n", path="x.zip", labels=["aggre"], split="test"),
         "source 'cifar10n' does not read 'split'"),
    ],
)
def test_config_errors_name_the_problem(patch, message: str) -> None:
    raw = _raw()
    patch(raw)
    with pytest.raises(ValueError, match=_re(message)):
        parse_config(raw)


def _re(s: str) -> str:
    import re

    return re.escape(s)


@pytest.mark.parametrize("subset", [None, 100])
def test_dataset_classes_keep_and_renumber(tmp_path: Path, subset: int | None) -> None:
    from sklearn.datasets import load_digits

    target = load_digits().target
    raw = _raw()
    raw["datasets"][0].update(classes=[7, 2], **({"subset": subset} if subset else {}))
    spec = parse_config(raw).datasets[0]
    assert spec.classes == (7, 2)
    d = load_dataset(spec, tmp_path, log=lambda s: None)
    want = int(np.isin(target, [7, 2]).sum()) if subset is None else subset
    assert d.num_classes == 2 and d.n == want and d.subset_idx is not None
    np.testing.assert_array_equal(target[d.subset_idx], np.where(d.clean == 0, 7, 2))  # 7 -> 0, 2 -> 1
    assert abs((d.clean == 0).mean() - (target == 7).sum() / np.isin(target, [7, 2]).sum()) < 0.02
    noisy = d.given_labels("symmetric:0.2", 0)
    assert set(np.unique(noisy)) <= {0, 1} and 0 < (noisy != d.clean).mean() < 0.35
    from labeltrace.bench.grid import Cell

    model = parse_config(raw).models["m"]
    cifar = replace(spec, source="cifar10n")
    assert [Cell(cifar, lab, model, 0).noise_kind for lab in ("confusion:0.3", "aggre", "clean")] == [
        "confusion", "real", "clean"]  # synthetic noise on a source with real label sets is not "real"
    with pytest.raises(ValueError, match=r"classes \[12\] do not exist"):
        load_dataset(replace(spec, classes=(1, 12)), tmp_path, log=lambda s: None)


def test_dataset_exclude_leaves_out_the_test_cells_images(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    from labeltrace.data.base import stratified_subset

    target = load_digits().target
    raw = _raw()
    raw["datasets"][0].update(subset=1000)
    test_spec = parse_config(raw).datasets[0]
    test_idx = load_dataset(test_spec, tmp_path, log=lambda s: None).subset_idx
    np.testing.assert_array_equal(test_idx, stratified_subset(target, 1000))
    for subset, want in ((None, target.size - 1000), (500, 500)):
        spec = replace(test_spec, exclude=1000, subset=subset)
        d = load_dataset(spec, tmp_path, log=lambda s: None)
        assert d.n == want and not np.isin(d.subset_idx, test_idx).any()  # disjoint from the test cells
        np.testing.assert_array_equal(d.clean, target[d.subset_idx])
    both = load_dataset(replace(test_spec, classes=(7, 2), exclude=100, subset=None), tmp_path, log=lambda s: None)
    pair = np.flatnonzero(np.isin(target, [7, 2]))
    assert both.n == pair.size - 100 and set(both.subset_idx) < set(pair)
    np.testing.assert_array_equal(target[both.subset_idx], np.where(both.clean == 0, 7, 2))
    with pytest.raises(ValueError, match="leaves nothing"):
        load_dataset(replace(test_spec, exclude=5000, subset=None), tmp_path, log=lambda s: None)


def test_unknown_detector_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown detector 'magic'"):
        resolve_detectors(["sei", "magic"])
    assert resolve_detectors(["cl", "*", "cl"]).count("cl") == 1


def test_quick_overrides_and_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(
        'name = "x"\nseeds = [0, 1, 2]\n[models.m]\nkind = "small-cnn"\nepochs = 20\n'
        '[[datasets]]\nname = "digits"\nsource = "digits"\nlabels = ["symmetric:0.2", "symmetric:0.4"]\n'
        'models = ["m"]\n'
        '[[datasets]]\nname = "b"\nsource = "npz"\npath = "data/b.npz"\nlabels = ["clean"]\nmodels = ["m"]\n'
        '[quick]\nseeds = [1]\nepochs = 3\nsubset = 100\ndatasets = ["digits"]\nlabels = ["symmetric:0.4"]\n'
    )
    full = load_config(tmp_path / "c.toml")
    assert full.datasets[1].path == str((tmp_path / "data" / "b.npz").resolve())
    assert len(expand(full)) == 2 * 3 + 1 * 3
    q = load_config(tmp_path / "c.toml", quick=True)
    assert q.name == "x-quick" and q.seeds == (1,)
    assert [d.name for d in q.datasets] == ["digits"]
    assert q.datasets[0].labels == ("symmetric:0.4",) and q.datasets[0].subset == 100
    assert q.models["m"].epochs == 3
    assert apply_quick(replace(full, quick={})).seeds == (0,)  # built-in defaults


def test_summary_tables_mean_std_and_best() -> None:
    rows = [
        {"dataset": "d", "labels": "l", "model": "m", "detector": det, "seed": s, "f1": v}
        for det, vals in (("sei", [0.5, 0.7]), ("cl", [0.8, 0.8]), ("bad", [float("nan"), 0.1]))
        for s, v in enumerate(vals)
    ]
    cells, dets, stats = summarize(rows, "f1")
    assert cells == [("d", "l", "m")] and dets == ["sei", "cl", "bad"]
    assert stats[(cells[0], "sei")] == pytest.approx((0.6, 0.02**0.5, 2))  # sample std (ddof 1)
    assert stats[(cells[0], "bad")] == pytest.approx((0.1, 0.0, 1))  # NaN left out
    md = markdown_report(rows, name="n", command="c", seeds=[0, 1])
    assert "| d | l | m | 0.600 ± 0.141 | **0.800 ± 0.000** | 0.100 (1/2 seeds) |" in md
    assert "| d | l | m | 0.600 | cl | 0.800 | -0.200 |" in md  # SEI minus best other
    txt = text_table(rows)
    assert "0.800*" in txt and "0.600 " in txt
    assert not math.isnan(stats[(cells[0], "cl")][0])


def test_bench_seeds_option_is_checked_like_the_config(tmp_path: Path) -> None:
    from labeltrace.bench import run_from_args
    from labeltrace.cli import build_parser

    for seeds, msg in (("0,0,1", "'seeds' lists 0 more than once"), ("-1", "non-empty list of ints >= 0")):
        args = build_parser().parse_args(["bench", "--config", str(QUICK), "--seeds", seeds, "--out", str(tmp_path)])
        with pytest.raises(ValueError, match=_re(msg)):
            run_from_args(args)


def test_bench_options_that_select_nothing_or_a_part_over_the_whole_are_refused(tmp_path: Path) -> None:
    """--only , ran nothing and overwrote the results; a subset run under the config's name replaced
    the whole grid's CSV; --name x/../y wrote outside --out; --device cuda on a CPU machine died in
    torch's AssertionError inside the first training."""
    from labeltrace.bench import run_from_args
    from labeltrace.cli import build_parser

    def run(*extra: str) -> None:
        run_from_args(build_parser().parse_args(["bench", "--config", str(QUICK), "--out", str(tmp_path), *extra]))

    for flag in ("--only", "--detectors", "--models", "--seeds"):
        with pytest.raises(ValueError, match=f"{flag} names nothing"):
            run(flag, ",")
    whole = "dataset,labels,model,seed,detector\ndigits,symmetric:0.2,small-cnn,0,sei\ndigits,symmetric:0.2,small-cnn,1,sei\n"
    (tmp_path / "quick.csv").write_text(whole)
    with pytest.raises(ValueError, match=r"holds 1 rows this run would not write \(e.g. digits symmetric:0.2 small-cnn "
                                         r"seed 1 sei\).*its own --name"):
        run("--seeds", "0")
    with pytest.raises(ValueError, match="a plain file stem"):
        run("--name", "x/../../escape")
    with pytest.raises(ValueError, match="'gpu' is not a torch device"):
        run("--device", "gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            run("--device", "cuda")
    assert (tmp_path / "quick.csv").read_text() == whole


def test_a_part_of_the_grid_resumes_under_the_grids_name(tmp_path: Path, monkeypatch) -> None:
    """The first refusal of a subset run over the grid's name also refused the same command run again
    (it had written the file itself): a subset's own rows are no loss. A config's device may be
    overridden on the command line before it is checked."""
    import labeltrace.bench as bench
    from labeltrace.cli import build_parser, main

    calls = []
    monkeypatch.setattr(bench, "run_bench", lambda cfg, **k: calls.append(cfg) or bench.BenchResult([], []))
    (tmp_path / "quick.csv").write_text("dataset,labels,model,seed,detector\ndigits,symmetric:0.2,small-cnn,0,sei\n")
    cfg = tmp_path / "q.toml"
    cfg.write_text(QUICK.read_text().replace("threads = 1", 'threads = 1\ndevice = "gpu-that-is-not"'))
    args = ["bench", "--config", str(cfg), "--out", str(tmp_path), "--seeds", "0", "--device", "cpu"]
    assert bench.run_from_args(build_parser().parse_args(args)) == 0 and calls[-1].device == "cpu"
    with pytest.raises(ValueError, match="q.toml: device 'gpu-that-is-not' is not a torch device"):
        bench.run_from_args(build_parser().parse_args(args[:-2]))

    def interrupted(cfg, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench, "run_bench", interrupted)
    assert main(args) == 130  # labeltrace bench, not only python -m labeltrace.bench


def test_a_config_error_names_its_file(tmp_path: Path) -> None:
    p = tmp_path / "mine.toml"
    p.write_text('name = "t"\nthreads = "2"\n[models.m]\nkind = "small-cnn"\n'
                 '[[datasets]]\nname = "digits"\nsource = "digits"\nlabels = ["clean"]\nmodels = ["m"]\n')
    with pytest.raises(ValueError, match=_re(f"{p}: bench config (top level): 'threads' must be an integer")):
        load_config(p)


def test_threads_limit_the_maths_libraries_too(tmp_path: Path, monkeypatch) -> None:
    """cleanlab's logistic regression ran on every core while the trainings had --threads: its cost
    in the bench was 30-65x what it is on the same cores."""
    from threadpoolctl import threadpool_info

    import labeltrace.bench as bench

    seen = {}

    def cells(*a, **k):
        seen["threads"] = {p["num_threads"] for p in threadpool_info()}
        return bench.BenchResult([], [])

    monkeypatch.setattr(bench, "_run_cells", cells)
    cfg = replace(load_config(QUICK), cache_dir=str(tmp_path / "cache"), threads=1)
    run_bench(cfg, out_dir=tmp_path / "out", log=lambda s: None)
    if not threadpool_info():
        pytest.skip("numpy reports no maths library to limit")
    assert seen["threads"] == {1}


def test_cached_rows_say_when_other_code_computed_them(quick, monkeypatch) -> None:
    """A cached row keeps the digest of the code that computed it; a rerun under other detector or
    metric code reuses it but says so, and --recompute-scores computes it again."""
    cfg, res, tmp = quick
    log: list[str] = []
    run_bench(cfg, out_dir=tmp / "same", log=log.append, plots=False)
    assert not any("other code" in line for line in log)
    monkeypatch.setattr(cells, "code_digest", lambda: "another")
    log.clear()
    res2 = run_bench(cfg, out_dir=tmp / "other", log=log.append, plots=False)
    notes = [line for line in log if "were computed by other code" in line]
    assert len(notes) == 2 and f"{len(res.rows) // 2} cached rows" in notes[0]  # both cells, every row
    assert all("_code" not in r for r in res2.rows)  # the digest stays in the cache, out of the CSV
    log.clear()
    run_bench(cfg, out_dir=tmp / "again", log=log.append, plots=False, recompute_scores=True)
    assert not any("other code" in line for line in log)


def test_the_rows_code_digest_reads_the_versions_of_the_packages_they_call(monkeypatch) -> None:
    """A cached cleanlab row was served unsaid under another cleanlab, whose version the report then
    named (a bench audit's finding): the versions are part of the digest a rerun compares."""
    import importlib.metadata

    real = importlib.metadata.version
    first = cells.code_digest()
    cells.code_digest.cache_clear()
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.9.9" if name == "cleanlab" else real(name))
    try:
        assert cells.code_digest() != first
    finally:
        cells.code_digest.cache_clear()


def test_row_key_has_the_auxiliary_draw_and_failures_are_not_cached(quick, monkeypatch) -> None:
    cfg, res, tmp = quick
    cell = expand(cfg)[0]
    data = load_dataset(cell.dataset, cfg.cache_path, log=lambda s: None)
    key = CellRunner(cell, data, cfg).key
    monkeypatch.setattr(protocol, "AUX_DRAW", protocol.AUX_DRAW + 1)
    assert CellRunner(cell, data, cfg).key != key  # the in-sample rows came from another draw
    monkeypatch.undo()
    calls = []

    def failing(name, ev):
        calls.append(name)
        raise ValueError("the scores are not bimodal")

    monkeypatch.setattr(detectors, "detect", failing)
    rows, _ = cells.run_cell(cell, data, cfg, ["sei"], recompute_scores=True, log=lambda s: None)
    assert rows[0]["note"] == "failed: the scores are not bimodal"
    assert not (CellRunner(cell, data, cfg).result_dir / "sei.json").exists()
    rows, _ = cells.run_cell(cell, data, cfg, ["sei"], log=lambda s: None)
    assert calls == ["sei", "sei"]  # computed again, not read from the cache


def test_a_stale_recording_fails_the_cell_instead_of_becoming_a_row(quick, monkeypatch) -> None:
    from labeltrace.record.recording import FingerprintMismatch

    cfg, res, tmp = quick
    cell = expand(cfg)[0]
    data = load_dataset(cell.dataset, cfg.cache_path, log=lambda s: None)

    def stale(name, ev):
        raise FingerprintMismatch("runs/abc holds a recording of another configuration")

    monkeypatch.setattr(detectors, "detect", stale)
    with pytest.raises(FingerprintMismatch):
        cells.run_cell(cell, data, cfg, ["sei"], recompute_scores=True, log=lambda s: None)


def test_recall_at_200_is_undefined_without_errors(tmp_path: Path) -> None:
    cfg = replace(parse_config({
        "models": {"m": {"kind": "linear", "epochs": 1}},
        "datasets": [{"name": "d", "source": "digits", "subset": 60, "labels": ["clean"], "models": ["m"]}],
        "detectors": ["knn_vote"],
    }), cache_dir=str(tmp_path))  # fmt: skip
    (cell,) = expand(cfg)
    rows, _ = cells.run_cell(cell, load_dataset(cell.dataset, tmp_path, log=lambda s: None), cfg, ["knn_vote"],
                             log=lambda s: None)  # fmt: skip
    assert math.isnan(rows[0]["recall_at_200"]) and math.isnan(rows[0]["f1"])


def test_cli_parses_bench() -> None:
    from labeltrace.cli import build_parser

    args = build_parser().parse_args(["bench", "--config", str(QUICK), "--quick", "--seeds", "0,1"])
    assert args.quick and args.seeds == "0,1" and args.func.__name__ == "_cmd_bench"


def test_f1_vs_rate_plot(tmp_path: Path) -> None:
    rows = [
        {"dataset": "d", "labels": f"symmetric:{r}", "noise": "symmetric", "rate": r, "model": "m",
         "detector": det, "seed": 0, "f1": 1 - r}
        for r in (0.1, 0.2) for det in ("sei", "cl")
    ]  # fmt: skip
    assert plot_f1_vs_rate(rows, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert not plot_f1_vs_rate(rows[:2], tmp_path / "q.png")  # one rate: nothing to draw
    assert not (tmp_path / "q.png").exists()


def test_cached_rows_are_keyed_by_the_truth_and_the_cell(tmp_path: Path) -> None:
    """Two cells with the same images and given labels but another truth, dataset name or model
    name must not share cached rows (each row names its cell and is scored against its truth); the
    trainings they read are the same. (One noise written two ways, symmetric:0.2 and
    symmetric:0.20, is one label set since the config reads it so.)"""
    cfg = parse_config({
        "models": {"m": {"kind": "small-cnn", "epochs": 1}, "m2": {"kind": "small-cnn", "epochs": 1}},
        "datasets": [
            {"name": "a", "source": "digits", "subset": 60, "labels": ["symmetric:0.2"], "models": ["m", "m2"]},
            {"name": "b", "source": "digits", "subset": 60, "labels": ["symmetric:0.2"], "models": ["m"]},
        ],
    })  # fmt: skip
    cfg = replace(cfg, cache_dir=str(tmp_path))
    cells = expand(cfg)
    assert len(cells) == 3  # a: 2 models; b: 1
    runners = [CellRunner(c, load_dataset(c.dataset, tmp_path, log=lambda s: None), cfg) for c in cells]
    assert len({r.key for r in runners}) == 3
    assert len({r.given.tobytes() for r in runners}) == 1  # the same labels trained on: only the cells differ
    # the same cell with another truth (the same given labels): another key
    r0 = runners[0]
    other = CellRunner(cells[0], load_dataset(cells[0].dataset, tmp_path, log=lambda s: None), cfg)
    assert other.key == r0.key
    i = int(np.flatnonzero(~other.truth)[0])  # a clean sample becomes a wrong label: the truth differs
    other.data.clean = other.data.clean.copy()
    other.data.clean[i] = (other.data.clean[i] + 1) % other.k
    assert CellRunner(cells[0], other.data, cfg).key != r0.key


def test_extracted_archive_is_redone_when_the_archive_changes(tmp_path: Path) -> None:
    import os
    import zipfile

    from labeltrace.bench.grid import extract_zip

    def archive(path: Path, rows: int, mtime: int) -> Path:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("labels.csv", "file,clean\n" + "".join(f"{i}.png,{i}\n" for i in range(rows)))
        os.utime(path, ns=(mtime, mtime))
        return path

    dest = tmp_path / "data" / "cifar10n"
    v1, v2 = archive(tmp_path / "v1.zip", 4, 10**18), archive(tmp_path / "v2.zip", 6, 10**18)
    assert (extract_zip(v1, dest) / "labels.csv").read_text().count("\n") == 5
    (dest / "labels.csv").write_text((dest / "labels.csv").read_text() + "# kept\n")
    assert "# kept" in (extract_zip(v1, dest) / "labels.csv").read_text()  # the same archive: reused
    assert (extract_zip(v2, dest) / "labels.csv").read_text().count("\n") == 7  # another: extracted again
    archive(v2, 3, 2 * 10**18)  # the same path, changed
    assert (extract_zip(v2, dest) / "labels.csv").read_text().count("\n") == 4
    # the same content again (another copy, another time): the same files, the same timestamps
    first = (dest / "labels.csv").stat().st_mtime
    (dest / ".archive.json").unlink()  # an extraction from before the file: adopted, its marker being the archive's
    os.utime(dest / "labels.csv", (1.0, 1.0))
    extract_zip(v2, dest)
    assert (dest / "labels.csv").stat().st_mtime == 1.0 and (dest / ".archive.json").is_file()
    (dest / "labels.csv").write_text("file,clean\n")  # a legacy extraction of another archive: redone
    (dest / ".archive.json").unlink()
    assert extract_zip(v2, dest).joinpath("labels.csv").stat().st_mtime == first


def test_cifar10h_truth_keeps_an_original_label_that_ties_for_the_most_votes(tmp_path: Path) -> None:
    """No majority disagrees with a label that ties for the most votes: it is not counted wrong
    (argmax would break the tie towards the lower class index)."""
    from labeltrace.bench.grid import _read_cifar10h

    (tmp_path / "classes.txt").write_text("cat\ndog\nbird\n")
    rows = [  # original, votes cat / dog / bird
        (1, 26, 26, 0),  # dog ties cat: kept (argmax says cat)
        (0, 10, 30, 11),  # a majority for dog: wrong
        (2, 20, 20, 5),  # cat and dog tie above bird: wrong either way, the lower index named
        (0, 40, 1, 1),  # agrees
    ]
    lines = ["file,original_label,votes_cat,votes_dog,votes_bird"]
    lines += [f"{i}.png,{o},{a},{b},{c}" for i, (o, a, b, c) in enumerate(rows)]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    original, truth, classes = _read_cifar10h(tmp_path)
    assert classes == ["cat", "dog", "bird"]
    np.testing.assert_array_equal(original, [1, 0, 2, 0])
    np.testing.assert_array_equal(truth, [1, 1, 0, 0])


def test_a_width_less_cnn_is_keyed_by_the_default_width_it_is_built_with(monkeypatch) -> None:
    """The training cache keyed a width-less small CNN as width None: a change of the default (32 ->
    16 for images up to 32 px, once) reused trainings of the other network."""
    from labeltrace.train import recipe

    raw = _raw()
    spec = parse_config(raw).models["m"]
    assert spec.width is None
    key = spec.key()
    monkeypatch.setattr(recipe, "SMALL_CNN_WIDTH", (32, 32, 32))
    assert spec.key() != key
    raw["models"]["m"]["width"] = 16  # an explicit width keys as it always did
    assert parse_config(raw).models["m"].key()["width"] == 16


def test_the_sei_curve_is_drawn_only_when_sei_is_benchmarked(quick, monkeypatch) -> None:
    """--detectors cleanlab trained the 2 in-sample runs of the SEI-vs-epochs curve all the same."""
    cfg, _, tmp = quick

    def no_curve(self):
        raise AssertionError("the SEI curve (and its in-sample runs) without sei among the detectors")

    monkeypatch.setattr(CellRunner, "sei_curve", no_curve)
    res = run_bench(replace(cfg, detectors=("aum",)), out_dir=tmp / "no-sei", log=lambda s: None, plots=False,
                    recompute_scores=True)  # fmt: skip
    assert not res.failures and res.curve == [] and {r["detector"] for r in res.rows} == {"aum"}


def test_a_failed_detector_is_listed_under_failures() -> None:
    """A detector failing in every cell showed only as '–' in the markdown, its reason in the CSV."""
    row = {"dataset": "digits", "labels": "symmetric:0.2", "model": "m", "seed": 0, "detector": "cl", "f1": math.nan,
           "note": "failed: features must be 2-D"}  # fmt: skip
    md = markdown_report([row], name="t", command="x", seeds=(0,), elapsed=1.0)
    assert "## Failures" in md and "digits symmetric:0.2 m seed 0 / cl: features must be 2-D" in md


def test_rows_name_their_settings(quick) -> None:
    cfg, res, tmp = quick
    _, rows = _read(tmp / "out" / "quick.csv")
    made = {r["settings"] for r in rows}
    assert len(made) == 1 and len(next(iter(made))) == 12
    cell = expand(cfg)[0]
    longer = replace(cfg, models={k: replace(m, epochs=m.epochs + 1) for k, m in cfg.models.items()})
    assert cells.settings_digest(expand(longer)[0], longer) != cells.settings_digest(cell, cfg)
    moved = replace(cell, dataset=replace(cell.dataset, path="/elsewhere/d.npz"))  # the file's place is no setting
    assert cells.settings_digest(moved, cfg) == cells.settings_digest(cell, cfg)


def test_a_detector_failed_on_some_seeds_shows_its_count_and_is_not_best() -> None:
    """aum's one surviving seed was printed in bold as the cell's best mean over 2 seeds."""
    rows = [{"dataset": "d", "labels": "l", "model": "m", "detector": det, "seed": s, "f1": v}
            for det, vals in (("aum", [0.848, float("nan")]), ("knn_vote", [0.81, 0.804])) for s, v in enumerate(vals)]
    md = markdown_report(rows, name="n", command="c", seeds=[0, 1])
    assert "| d | l | m | 0.848 (1/2 seeds) | **0.807 ± 0.004** |" in md
    assert "0.848?" in text_table(rows) and "0.807*" in text_table(rows)


def test_one_seed_cannot_tell_seed_noise() -> None:
    from labeltrace.bench.paired import bar_lines

    rows = [{"dataset": "d", "labels": "symmetric:0.2", "model": "m", "detector": det, "seed": 0, "f1": f1,
             "auroc": 0.8} for det, f1 in (("crossfit", 0.5), ("cleanlab", 0.6))]  # fmt: skip
    text = "\n".join(bar_lines(rows, "crossfit"))
    assert "not assessable with one seed" in text and "0 of 1" not in text


def test_a_run_over_the_grids_name_keeps_the_last_whole_runs_files_until_it_is_done(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    """A killed rerun left a partial CSV of new settings beside the old run's markdown."""
    cfg = replace(load_config(QUICK), cache_dir=str(tmp_path / "cache"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "quick.csv").write_text("the last whole run\n")
    (out / "quick.md").write_text("the last whole run\n")
    done = []

    def one_cell(cell, data, cfg, names, **kw):
        if done:
            raise KeyboardInterrupt
        done.append(cell)
        return [{"dataset": "digits", "labels": cell.labels, "model": "small-cnn", "seed": 0, "detector": "sei",
                 "f1": 0.5}], []  # fmt: skip

    monkeypatch.setattr(cells, "run_cell", one_cell)
    with pytest.raises(KeyboardInterrupt):
        run_bench(replace(cfg, detectors=("sei",)), out_dir=out, log=lambda s: None, plots=False)
    assert (out / "quick.csv").read_text() == (out / "quick.md").read_text() == "the last whole run\n"
    assert "symmetric:0.2" in (out / "quick.csv.partial").read_text()
    done.clear()
    monkeypatch.setattr(cells, "run_cell", lambda cell, *a, **k: one_cell(cell, *a, **k) if not done.clear() else 0)
    res = run_bench(replace(cfg, detectors=("sei",)), out_dir=out, log=lambda s: None, plots=False)
    assert len(res.rows) == 2 and not (out / "quick.csv.partial").exists()
    assert "confusion:0.4" in (out / "quick.csv").read_text() and "the last" not in (out / "quick.md").read_text()
    (out / "quick.md").write_text("the last whole run\n")

    def failing(cell, *a, **k):
        raise ValueError("no data")

    monkeypatch.setattr(cells, "run_cell", failing)  # every cell fails: nothing replaces the last run's files
    res = run_bench(replace(cfg, detectors=("sei",)), out_dir=out, log=lambda s: None, plots=False)
    assert len(res.failures) == 2 and (out / "quick.md").read_text() == "the last whole run\n"
    assert "confusion:0.4" in (out / "quick.csv").read_text()


def test_what_cannot_run_is_refused_before_any_training(tmp_path: Path, monkeypatch) -> None:
    """A missing dataset file was found when its turn came, after the others had trained, and the
    run exited 0; a selection of no cell wrote an empty CSV and a malformed table."""
    import labeltrace.bench as bench
    from labeltrace.cli import build_parser

    cfg = replace(load_config(QUICK), cache_dir=str(tmp_path / "cache"))
    d = cfg.datasets[0]
    missing = replace(cfg, datasets=(d, replace(d, name="mine", source="npz", path=str(tmp_path / "no.npz"))))
    monkeypatch.setattr(cells, "run_cell", lambda *a, **k: pytest.fail("trained before refusing"))
    with pytest.raises(ValueError, match=r"dataset files not found: mine: .*no.npz"):
        run_bench(missing, out_dir=tmp_path / "o", log=lambda s: None)
    with pytest.raises(ValueError, match=r"this selection runs no cell \(digits: models \[\]"):
        run_bench(replace(cfg, datasets=(replace(d, models=()),)), out_dir=tmp_path / "o", log=lambda s: None)
    (tmp_path / "o" / "quick.csv").write_text(
        "dataset,labels,model,seed,detector\ndigits,symmetric:0.9,small-cnn,0,sei\n")  # a label set since dropped
    args = build_parser().parse_args(["bench", "--config", str(QUICK), "--out", str(tmp_path / "o")])
    with pytest.raises(ValueError, match=r"holds 1 rows this run would not write \(e.g. digits symmetric:0.9"):
        bench.run_from_args(args)
    (tmp_path / "o" / "quick.csv").unlink()
    monkeypatch.setattr(bench, "run_bench", lambda cfg, **k: bench.BenchResult([{"f1": 1.0}], [], failures=["x"]))
    assert bench.run_from_args(args) == 1  # a failed cell: its rows are missing


def test_a_failed_sei_curve_keeps_the_cells_rows(quick, monkeypatch) -> None:
    cfg, _, tmp = quick

    def broken(self):
        raise ValueError("the auxiliary set is empty")

    monkeypatch.setattr(CellRunner, "sei_curve", broken)
    said: list[str] = []
    res = run_bench(replace(cfg, detectors=("sei", "aum")), out_dir=tmp / "curve", log=said.append, plots=False,
                    recompute_scores=True)  # fmt: skip
    assert not res.failures and {r["detector"] for r in res.rows} == {"sei", "aum"} and res.curve == []
    assert any("sei curve FAILED: the auxiliary set is empty" in s for s in said)


def test_quick_without_a_quick_table_keeps_the_configs_datasets(tmp_path: Path) -> None:
    """--quick on a config without [quick] named a 'digits' dataset the user never wrote."""
    (tmp_path / "c.toml").write_text(
        'name = "x"\nseeds = [0, 1]\n[models.m]\nkind = "small-cnn"\nepochs = 20\n'
        '[[datasets]]\nname = "mine"\nsource = "npz"\npath = "b.npz"\nlabels = ["symmetric:0.3", "confusion:0.4"]\n'
        'models = ["m"]\n')  # fmt: skip
    q = load_config(tmp_path / "c.toml", quick=True)
    assert [d.name for d in q.datasets] == ["mine"] and q.datasets[0].labels == ("confusion:0.4",)
    assert q.seeds == (0,) and q.models["m"].epochs == 4 and q.datasets[0].subset == 300


def test_clean_cells_show_how_many_each_detector_accuses() -> None:
    """On a cell without errors every metric read '–' or 0.000, and the number that matters there,
    the false accusations (cl 6.5 against aum 66.5), was missing."""
    rows = [{"dataset": "d", "labels": "clean", "model": "m", "detector": det, "seed": s, "n_noisy": 0,
             "n_flagged": n, "f1": float("nan")}
            for det, ns in (("cl", [6, 7]), ("aum", [66, 67]), ("gmm", [-1, 5])) for s, n in enumerate(ns)]  # fmt: skip
    md = markdown_report(rows, name="n", command="c", seeds=[0, 1])
    assert "## Flagged on cells without label errors" in md
    assert "| d | clean | m | 6.500 ± 0.707 | 66.500 ± 0.707 | 5.000 (1/2 seeds) |" in md


def test_a_flagged_set_that_looks_like_a_collapsed_model_is_warned_of() -> None:
    """Three detectors flagged the same 83 minority-label samples of a model that collapsed to the
    majority class; the tables showed only a low F1 among the other seeds' rows."""
    given = np.array([0] * 20 + [1] * 10 + [2] * 10 + [3] * 2)
    assert cells.flag_warning(np.zeros(42, bool), given, 4) == ""
    some = np.zeros(42, bool)
    some[[0, 20, 21]] = True
    assert cells.flag_warning(some, given, 4) == ""
    rare = given == 1
    assert cells.flag_warning(rare, given, 4) == "warning: flags every sample labelled class 1 (10)"
    assert cells.flag_warning(given == 3, given, 4) == ""  # a class of two: says little
    most = (given == 1) | (given == 2)
    most[:2] = True
    assert cells.flag_warning(most, given, 4) == (
        "warning: flags 22 of 42 samples (52%); flags every sample labelled class 1 (10), class 2 (10)")
    assert cells.flag_warning(np.ones(42, bool), given, 4) == "warning: flags 42 of 42 samples (100%)"
    row = {"dataset": "d", "labels": "l", "model": "m", "seed": 0, "detector": "aum", "f1": 0.2,
           "note": cells.flag_warning(rare, given, 4)}
    md = markdown_report([row], name="t", command="x", seeds=(0,), elapsed=1.0)
    assert "## Warnings" in md and "d l m seed 0 / aum: flags every sample labelled class 1 (10)" in md
    assert "0.200" in md and cells.failure(row) is None  # a warning is a row like any other


def test_one_noise_written_two_ways_is_one_label_set() -> None:
    """symmetric:0.2 and symmetric:0.20 were two cells, apart in every table and never paired."""
    raw = {"name": "x", "seeds": [0], "detectors": ["aum"], "models": {"m": {"kind": "small-cnn", "epochs": 2}},
           "datasets": [{"name": "digits", "source": "digits", "labels": ["symmetric:0.20", "confusion:.4", "clean"],
                         "models": ["m"]}]}  # fmt: skip
    assert parse_config(raw).datasets[0].labels == ("symmetric:0.2", "confusion:0.4", "clean")
    raw["datasets"][0]["labels"] = ["symmetric:0.2", "clean", "symmetric:0.20"]
    with pytest.raises(ValueError, match="labels 'symmetric:0.2' and 'symmetric:0.20' are the same label set"):
        parse_config(raw)


def test_a_cell_keeps_exact_copies_in_one_fold_as_the_scan_does(quick, monkeypatch) -> None:
    """The bench's cross-fitted recording and K-fold probabilities went through the scan's folds
    without the copies; now they get the dataset's copies, and a cell with copies keys its cached
    recordings and rows apart from the same cell scanned before (a cell without keeps its keys)."""
    cfg, _, _ = quick
    cell = expand(cfg)[0]
    data = load_dataset(cell.dataset, cfg.cache_path, log=lambda s: None)
    plain = CellRunner(cell, data, cfg, log=lambda s: None)
    assert (data.copies() == -1).all() and plain._copies_key == {}  # digits: no copies, keys as before
    copies = np.full(data.n, -1)
    copies[[0, 5]] = 0
    monkeypatch.setattr(data, "copies", lambda: copies)
    runner = CellRunner(cell, data, cfg, log=lambda s: None)
    assert runner.key != plain.key
    seen = {}

    def record(plan, *a, **kw):  # noqa: ANN202
        seen[type(plan).__name__] = (kw.get("copies"), kw["directory"])
        raise RuntimeError("stop")

    def cv(*a, **kw):  # noqa: ANN202
        seen["cv"] = kw.get("copies")
        raise RuntimeError("stop")

    monkeypatch.setattr(protocol, "record", record)
    monkeypatch.setattr(protocol, "cross_validated_probs", cv)
    got = []
    for fetch in (runner.held_out, plain.held_out, runner.cv_probs):
        with pytest.raises(RuntimeError, match="stop"):
            fetch()
        got.append(seen.pop("CrossFit", None) or seen.pop("cv"))
    (with_copies, d_copies), (without, d_plain), cv_copies = got
    assert with_copies is copies and (without == -1).all() and cv_copies is copies
    assert d_copies != d_plain  # another cached recording


def test_code_digest_covers_the_copies_neighbour_groups(monkeypatch) -> None:
    """The kNN votes of a row leave a sample's exact copies out of its neighbours
    (data/duplicates.py); a change there changed the rows without changing the digest, so a
    resumed benchmark reused rows of the old rule in silence."""
    from pathlib import Path

    before = cells.code_digest.__wrapped__()
    read = Path.read_text

    def edited(self: Path, *a: object, **kw: object) -> str:
        text = read(self, *a, **kw)  # type: ignore[arg-type]
        return text + "\n# edited" if self.as_posix().endswith("labeltrace/data/duplicates.py") else text

    monkeypatch.setattr(Path, "read_text", edited)
    assert cells.code_digest.__wrapped__() != before


def test_two_benches_on_one_cache_take_turns_at_an_entry(quick, tmp_path: Path, monkeypatch) -> None:
    """Two benches started side by side on one cache wrote one recording's files at once and left it
    damaged for good, each later run failing the cell with exit code 0 (an audit's finding): a
    recording and the K-fold probabilities are made under the entry's lock, the second waiting."""
    import threading
    import time

    cfg, _, _ = quick
    cfg = replace(cfg, cache_dir=str(tmp_path / "cache"))
    cell = expand(cfg)[0]
    data = load_dataset(cell.dataset, cfg.cache_path, log=lambda s: None)
    inside, most, lock = [0], [0], threading.Lock()

    def making(*a: object, **kw: object) -> np.ndarray:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.3)
        with lock:
            inside[0] -= 1
        return np.full((1, 1), 0.5)  # what the caller keeps of it is not looked at here

    monkeypatch.setattr(protocol, "record", making)
    monkeypatch.setattr(protocol, "cross_validated_probs", lambda *a, **kw: making())
    runners = [CellRunner(cell, data, cfg, log=lambda s: None) for _ in range(2)]
    for make in (lambda r: r._record(protocol.CrossFit(3), "crossfit", "cross-fit"), lambda r: r.cv_probs()):
        most[0] = 0
        threads = [threading.Thread(target=make, args=(r,)) for r in runners]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert most[0] == 1  # one at a time (two at once without the lock)


@pytest.mark.parametrize(("model", "named"), [
    ({"kind": "small-cnn", "cv_C": 1.0}, "'cv_C'"),  # cv = 'same': K trainings of the CNN, no regression
    ({"kind": "small-cnn", "hidden": 64}, "'hidden'"),
    ({"kind": "mlp", "width": 8, "image_size": 16}, "'width', 'image_size'"),
    ({"kind": "linear", "hidden": 64, "cv": "logreg", "cv_C": 0.1}, "'hidden'"),
])  # fmt: skip
def test_a_model_setting_its_kind_does_not_read_is_refused(model: dict, named: str) -> None:
    """Accepted, such a setting retrained every cell with identical numbers, and the summary then
    refused to pool the rows with the earlier ones (a bench audit's finding)."""
    raw = {"models": {"m": model},
           "datasets": [{"name": "d", "source": "digits", "models": ["m"], "labels": ["symmetric:0.2"]}]}
    with pytest.raises(ValueError, match=f"{named}: not read by a "):
        parse_config(raw)
    for k in [k for k in model if k not in ("kind", "cv")]:  # read where the kind reads it
        ok = {"kind": {"width": "small-cnn", "image_size": "small-cnn", "hidden": "mlp"}.get(k, "mlp"),
              **({"cv": "logreg"} if k.startswith("cv_") else {}), k: model[k]}
        parse_config({**raw, "models": {"m": ok}})


def test_an_unknown_detector_in_the_config_is_named_with_its_key() -> None:
    """The one config error that named neither its table nor its key (a bench audit's finding)."""
    raw = {"detectors": ["aum", "aumm"], "models": {"m": {"kind": "small-cnn"}},
           "datasets": [{"name": "d", "source": "digits", "models": ["m"], "labels": ["symmetric:0.2"]}]}
    with pytest.raises(ValueError, match=r"^bench config \(top level\): detectors: unknown detector 'aumm'; available"):
        parse_config(raw)


@pytest.mark.parametrize(("change", "message"), [
    (dict(source="npz", split="tset"), r"mine: .*d.npz: missing keys \['tset_images'"),
    (dict(classes=(0, 1, 12)), r"mine: .*classes \[12\] do not exist"),
    (dict(exclude=5000), r"mine: exclude = 5000 leaves nothing"),
    (dict(subset=6), r"mine: subset = 6 keeps no sample of 4 of its 10 classes"),
])  # fmt: skip
def test_a_datasets_problem_is_said_before_any_cell_trains(tmp_path: Path, monkeypatch, change: dict,
                                                           message: str) -> None:  # fmt: skip
    """Found when the dataset's turn came: every cell of it failed, after the others had trained."""
    from sklearn.datasets import load_digits

    d = load_digits()
    npz = tmp_path / "d.npz"
    np.savez(npz, train_images=d.images.astype(np.uint8), train_labels=d.target)
    cfg = replace(load_config(QUICK), cache_dir=str(tmp_path / "cache"))
    first = cfg.datasets[0]
    mine = replace(first, name="mine", **({"path": str(npz)} if change.get("source") == "npz" else {}), **change)
    monkeypatch.setattr(cells, "run_cell", lambda *a, **k: pytest.fail("trained before refusing"))
    with pytest.raises(ValueError, match=r"before any training: " + message):
        run_bench(replace(cfg, datasets=(first, mine)), out_dir=tmp_path / "o", log=lambda s: None)


def test_fewer_samples_than_folds_is_said_before_any_cell_trains(tmp_path: Path, monkeypatch) -> None:
    cfg = replace(load_config(QUICK), cache_dir=str(tmp_path / "cache"), n_folds=5)
    d = replace(cfg.datasets[0], classes=(0, 1), subset=4)
    monkeypatch.setattr(cells, "run_cell", lambda *a, **k: pytest.fail("trained before refusing"))
    with pytest.raises(ValueError, match=r"digits: 4 samples, fewer than n_folds = 5"):
        run_bench(replace(cfg, datasets=(d,)), out_dir=tmp_path / "o", log=lambda s: None)


def test_a_plot_not_drawn_this_run_is_not_left_beside_its_tables(quick, monkeypatch) -> None:
    """An earlier run's PNGs stayed beside the new tables (a run with --no-plots, or one whose grid
    has a single noise rate, showed the other run's curves), and the F1-vs-rate plot was skipped
    without a word."""
    cfg, _, tmp = quick
    out = tmp / "stale"
    out.mkdir()
    for name in ("quick_f1_vs_rate.png", "quick_sei_epochs.png"):
        (out / name).write_bytes(b"an earlier run's plot")
    for name in ("train_recorded", "crossfit_recorded"):  # from the fixture's cache
        monkeypatch.setattr(protocol, name, lambda *a, **k: pytest.fail("trained again"))
    said: list[str] = []
    run_bench(cfg, out_dir=out, log=said.append)
    assert not (out / "quick_f1_vs_rate.png").exists()  # one rate per kind: not drawn, and not left
    assert (out / "quick_sei_epochs.png").read_bytes() != b"an earlier run's plot"
    assert any(s.startswith("no quick_f1_vs_rate.png: ") and "more than one rate" in s for s in said)
    run_bench(cfg, out_dir=out, log=lambda s: None, plots=False)
    assert not (out / "quick_sei_epochs.png").exists()


def test_the_first_dataset_checked_is_not_read_again_for_its_cells(quick, monkeypatch) -> None:
    """The pre-flight read every dataset, and the first cell read its dataset again: an npz read
    twice, its notes said twice."""
    from labeltrace.bench import grid

    cfg, _, tmp = quick
    reads: list[str] = []
    real = grid.load_dataset
    monkeypatch.setattr(grid, "load_dataset", lambda spec, *a, **k: reads.append(spec.name) or real(spec, *a, **k))
    for name in ("train_recorded", "crossfit_recorded"):  # from the fixture's cache
        monkeypatch.setattr(protocol, name, lambda *a, **k: pytest.fail("trained again"))
    run_bench(cfg, out_dir=tmp / "once", log=lambda s: None, plots=False)
    assert reads == [d.name for d in cfg.datasets]


def test_a_training_cached_under_another_torch_is_not_served(quick, monkeypatch) -> None:
    """A recording's key did not name the torch that trained it: a cache filled under one torch was
    served under another, unsaid. The trainings cached under the tested torch keep their keys."""
    import torch

    from labeltrace.bench.keys import torch_key

    cfg, _, tmp = quick
    monkeypatch.setattr(torch, "__version__", "2.13.0+cpu")
    assert torch_key() == {}
    for name in ("train_recorded", "crossfit_recorded"):  # the fixture's cache serves the tested torch
        monkeypatch.setattr(protocol, name, lambda *a, **k: pytest.fail("trained again"))
    run_bench(cfg, out_dir=tmp / "same-torch", log=lambda s: None, plots=False)
    monkeypatch.setattr(torch, "__version__", "2.14.1")
    assert torch_key() == {"torch": "2.14.1"}
    with pytest.raises(BaseException, match="trained again"):
        run_bench(cfg, out_dir=tmp / "other-torch", log=lambda s: None, plots=False)
