"""`labeltrace queue` on a small run directory and `labeltrace simulate` on a tiny vote table."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import torch
from runfactory import make_run, recorded_posterior

from labeltrace import rundir
from labeltrace.cli import main
from labeltrace.relabel.order import review_order

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("q"), n=60, k=3, epochs=8, noise=0.2)


def _read(path: Path) -> dict[str, np.ndarray]:
    t = pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path)
    return {c: t.column(c).to_numpy(zero_copy_only=False) for c in t.column_names}


def _posterior(run_dir: Path, last: int | None) -> np.ndarray:
    return recorded_posterior(run_dir, last)  # from the logits recorded, not labeltrace's posterior


@pytest.mark.parametrize("method", ["joint", "cross_entropy", "sei", "sei_joint", "random"])
def test_queue_order_and_files(run_dir: Path, tmp_path: Path, method: str) -> None:
    out = tmp_path / f"q_{method}.csv"
    assert (
        main(["queue", str(run_dir), "--method", method, "--out", str(out), "--posterior", "mean"])
        == 0
    )
    q = _read(out)
    run = rundir.open_run(run_dir)
    n = run.num_samples
    assert sorted(q["id"].tolist()) == list(range(n))
    np.testing.assert_array_equal(q["rank"], np.arange(1, n + 1))
    assert np.all(np.diff(q["priority"]) <= 0)  # queue order = priority order, highest first
    ids = q["id"]
    given = run.column("given_label_id")
    np.testing.assert_array_equal(q["given_label_id"], given[ids])
    np.testing.assert_array_equal(q["given_label"], run.column("given_label")[ids])
    np.testing.assert_array_equal(q["external_id"], run.column("external_id")[ids])
    np.testing.assert_array_equal(q["path"], run.column("path")[ids])
    # priorities recomputed by hand from the trajectory-mean posterior and the given labels (the posterior
    # from the logits recorded: they were recorded in float32, hence 1e-6)
    p = _posterior(run_dir, None)[ids]
    k = p.shape[1]
    ce = -np.log(np.clip(p[np.arange(n), given[ids]], 1e-12, 1)) / math.log(k)
    h = -(p * np.log(np.clip(p, 1e-12, 1))).sum(1) / math.log(k)
    pen = np.maximum(h - 0.3, 0)
    sei = run.column("sei")[ids]
    if method == "joint":
        np.testing.assert_allclose(q["priority"], ce - pen, atol=1e-6)
    elif method == "cross_entropy":
        np.testing.assert_allclose(q["priority"], ce, atol=1e-6)
    elif method == "sei":
        np.testing.assert_allclose(q["priority"], -sei, atol=1e-12)
    elif method == "sei_joint":
        rank01 = np.argsort(np.argsort(-sei)) / (n - 1)  # no ties in continuous SEI
        np.testing.assert_allclose(q["priority"], rank01 - pen, atol=1e-6)
    names = np.array(run.classes)
    np.testing.assert_array_equal(q["suggested_label"], names[p.argmax(1)])
    np.testing.assert_allclose(q["suggested_prob"], p.max(1), atol=1e-6)
    # the review app serves the same order
    side = pq.read_table(run_dir / "queue.parquet")
    assert {"id", "priority", "rank"} <= set(side.column_names)
    np.testing.assert_array_equal(review_order(rundir.open_run(run_dir)), ids)


def test_queue_parquet_and_last_window(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "q.parquet"
    assert main(["queue", str(run_dir), "--method", "joint", "--out", str(out)]) == 0
    q = _read(out)
    # make_run keeps the softmax of 3 epochs: --posterior last uses those 3 and says so
    assert "3 epochs" in capsys.readouterr().err
    p = _posterior(run_dir, 3)[q["id"]]
    np.testing.assert_allclose(q["suggested_prob"], p.max(1), atol=1e-6)
    assert main(["queue", str(run_dir), "--method", "joint", "--out", str(tmp_path / "q.txt")]) == 2


# --------------------------------------------------------------------------- simulate


def _votes_csv(path: Path, n: int = 120, k: int = 3, seed: int = 0) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = np.arange(n) % k
    conc = np.full((n, k), 0.5)
    conc[np.arange(n), truth] = np.where(rng.random(n) < 0.3, 2.0, 10.0)
    votes = np.stack([rng.multinomial(15, rng.dirichlet(c)) for c in conc])
    votes[np.arange(n), truth] += 1
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "file", "original_label"] + [f"votes_c{j}" for j in range(k)])
        for i in range(n):
            w.writerow([i, f"test/{i:05d}.jpg", truth[i], *votes[i].tolist()])
    return path, votes


def _check_outputs(
    out: Path, selectors: list[str], seeds: int, budget: int, *, n: int, noisy: int
) -> None:
    with open(out / "curves.csv") as fh:
        rows = list(csv.DictReader(fh))
    got = {(r["selector"], int(r["seed"])) for r in rows}
    assert got == {(s, i) for s in selectors for i in range(seeds)}
    rel = np.array([int(r["relabels"]) for r in rows])
    assert rel.min() == 0 and rel.max() == budget  # the budget is respected, and spent
    acc0 = [float(r["accuracy"]) for r in rows if r["relabels"] == "0"]
    assert np.allclose(acc0, 1 - noisy / n)  # every campaign starts at the target noise rate
    with open(out / "summary.csv") as fh:
        summ = list(csv.DictReader(fh))
    assert {r["selector"] for r in summ} == set(selectors)
    used = {r["selector"]: float(r["mean"]) for r in summ if r["metric"] == "relabels_used"}
    assert all(u <= budget for u in used.values())
    assert (out / "campaign.png").stat().st_size > 1000


def test_simulate_without_features(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    votes_path, votes = _votes_csv(tmp_path / "labels.csv")
    out = tmp_path / "sim"
    rc = main(["simulate", "--votes", str(votes_path), "--selectors", "random,oracle", "--seeds", "2",
               "--noise-rate", "0.2", "--budget-factor", "2", "--out", str(out), "--quiet"])  # fmt: skip
    assert rc == 0
    budget = round(2 * round(0.2 * len(votes)))
    _check_outputs(out, ["random", "oracle"], 2, budget, n=len(votes), noisy=24)
    text = capsys.readouterr().out
    assert "oracle" in text and f"budget {budget}" in text
    # model-based selectors without --features: a clear error, no output
    rc = main(
        [
            "simulate",
            "--votes",
            str(votes_path),
            "--selectors",
            "random,joint",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert rc == 2
    assert "--features" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_simulate_with_features_npy_votes(tmp_path: Path) -> None:
    _, votes = _votes_csv(tmp_path / "labels.csv")
    np.save(tmp_path / "votes.npy", votes)
    rng = np.random.default_rng(1)
    truth = votes.argmax(1)
    feats = (rng.normal(0, 3, (3, 5))[truth] + rng.normal(0, 1, (len(votes), 5))).astype(np.float32)
    np.save(tmp_path / "f.npy", feats)
    out = tmp_path / "sim"
    sel = ["random", "joint", "sei", "oracle"]
    rc = main(["simulate", "--votes", str(tmp_path / "votes.npy"), "--features", str(tmp_path / "f.npy"),
               "--selectors", ",".join(sel), "--seeds", "2", "--noise-rate", "0.2", "--budget", "50",
               "--epochs", "3", "--head", "linear", "--active-every", "20", "--out", str(out), "--quiet"])  # fmt: skip
    assert rc == 0
    _check_outputs(out, sel, 2, 50, n=len(votes), noisy=24)
    np.save(tmp_path / "short.npy", feats[:10])
    rc = main(["simulate", "--votes", str(tmp_path / "votes.npy"), "--features", str(tmp_path / "short.npy"),
               "--selectors", "joint", "--out", str(tmp_path / "y")])  # fmt: skip
    assert rc == 2
    # several views, comma-separated: a head on each; a view with the wrong rows is named
    np.save(tmp_path / "g.npy", feats[:, ::-1] ** 2)
    both = f"{tmp_path / 'f.npy'},{tmp_path / 'g.npy'}"
    rc = main(["simulate", "--votes", str(tmp_path / "votes.npy"), "--features", both,
               "--selectors", ",".join(sel), "--seeds", "2", "--noise-rate", "0.2", "--budget", "50",
               "--epochs", "3", "--head", "linear", "--out", str(tmp_path / "views"), "--quiet"])  # fmt: skip
    assert rc == 0
    _check_outputs(tmp_path / "views", sel, 2, 50, n=len(votes), noisy=24)
    rc = main(["simulate", "--votes", str(tmp_path / "votes.npy"), "--features", f"{both},{tmp_path / 'short.npy'}",
               "--selectors", "joint", "--out", str(tmp_path / "z")])  # fmt: skip
    assert rc == 2 and not (tmp_path / "z").exists()


def test_review_agree_and_count_given_keep_the_stored_value_of_the_flag_left_out(tmp_path: Path) -> None:
    from labeltrace.cli import build_parser
    from labeltrace.cli_relabel import review_rule
    from labeltrace.relabel.consensus import ConsensusRule
    from labeltrace.relabel.runstore import run_store

    rd = make_run(tmp_path, n=20, k=3)
    run_store(rundir.open_run(rd)).set_rule(ConsensusRule(agree=2, count_given=True))

    def rule(*flags: str) -> ConsensusRule | None:
        return review_rule(build_parser().parse_args(["review", str(rd), *flags]))

    assert rule() is None  # nothing given: the stored rule stands
    assert rule("--agree", "3") == ConsensusRule(agree=3, count_given=True)
    assert rule("--no-count-given") == ConsensusRule(agree=2, count_given=False)
    assert rule("--agree", "1", "--count-given") == ConsensusRule(agree=1, count_given=True)


@pytest.mark.parametrize("kind", ["folder", "manifest"])
def test_cleaned_labels_scan_again_with_the_printed_command(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           kind: str) -> None:  # fmt: skip
    import shlex

    rd = make_run(tmp_path / "r", n=24, k=2, kind=kind)
    out = tmp_path / "elsewhere" / "clean.csv"  # not beside the original manifest
    out.parent.mkdir()
    assert main(["review", str(rd), "--export", str(out)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("to scan with the cleaned labels: "))
    argv = shlex.split(line.split(": ", 1)[1])[1:]
    argv[argv.index("NEW_RUN_DIR")] = str(tmp_path / "again")
    assert main([*argv, "--model", "small-cnn", "--epochs", "1", "--folds", "2", "--quiet"]) == 0
    assert rundir.open_run(tmp_path / "again").num_samples == 24


def test_simulate_runs_the_seeds_it_is_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--seeds took only a count (always seeds 0..N-1): a researcher could not draw a disjoint set of
    seeds to see the spread anew."""
    votes_path, _ = _votes_csv(tmp_path / "labels.csv")
    args = ["simulate", "--votes", str(votes_path), "--selectors", "random,oracle", "--noise-rate", "0.2",
            "--budget", "30", "--quiet"]  # fmt: skip
    assert main([*args, "--seeds", "7,9", "--out", str(tmp_path / "a")]) == 0
    with open(tmp_path / "a" / "seeds.csv") as fh:
        assert {int(r["seed"]) for r in csv.DictReader(fh)} == {7, 9}
    assert main([*args, "--seeds", "2", "--out", str(tmp_path / "b")]) == 0
    with open(tmp_path / "b" / "seeds.csv") as fh:
        assert {int(r["seed"]) for r in csv.DictReader(fh)} == {0, 1}
    capsys.readouterr()
    for bad in ("0", "3,3", "-1,2", "x"):
        with pytest.raises(SystemExit):
            main([*args, "--seeds", bad, "--out", str(tmp_path / "c")])
        assert "--seeds" in capsys.readouterr().err


def test_options_that_would_be_ignored_or_misreported_are_refused(run_dir: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """An audit's findings: simulate --active-method propagation without --active-every ran a static
    model and recorded 'head'; --active-every with model-free selectors printed 'retrain every M';
    --gamma 2 passed unless a method read it; --hidden went with a linear head; an existing file as
    report/simulate --out gave '[Errno 17] File exists'; a folder or '.CSV' as queue --out read
    'unsupported table format'; score named its Python parameters instead of its flags."""
    votes_path, _ = _votes_csv(tmp_path / "labels.csv")
    sim = ["simulate", "--votes", str(votes_path), "--selectors", "random,oracle", "--seeds", "2", "--quiet"]
    refusals = [
        ([*sim, "--out", str(tmp_path / "a"), "--active-method", "propagation"], "give --active-every"),
        ([*sim, "--out", str(tmp_path / "b"), "--head", "linear", "--hidden", "7"], "a linear head has none"),
        ([*sim, "--out", str(tmp_path / "c"), "--gamma", "5"], "expected a number in [0, 1], got 5"),
        (["queue", str(run_dir), "--out", str(tmp_path / "q.csv"), "--gamma", "2"], "expected a number in [0, 1]"),
        (["queue", str(run_dir), "--out", str(tmp_path)], "is a folder: give the table's file name"),
        (["score", str(run_dir), "--method", "ei", "--epoch", "1"], "--method ei takes no --epoch (it takes: --window)"),
        (["score", str(run_dir), "--method", "se_at", "--window", "0:2"], "takes no --window (it takes: --epoch)"),
        (["score", str(run_dir), "--method", "forgetting", "--window=0:1"], "takes no --window (it takes: neither)"),
    ]
    (tmp_path / "afile").write_text("")
    refusals += [([*sim, "--out", str(tmp_path / "afile")], "is a file: the simulation writes a folder"),
                 (["report", str(run_dir), "--format", "png", "--out", str(tmp_path / "afile")], "is a file")]
    for argv, said in refusals:
        if "--gamma" in argv:  # argparse's own refusal
            with pytest.raises(SystemExit):
                main(argv)
        else:
            assert main(argv) == 2, argv
        assert said in capsys.readouterr().err, argv
    assert main(["queue", str(run_dir), "--out", str(tmp_path / "q.CSV")]) == 0 and (tmp_path / "q.CSV").is_file()
    main(["score", str(run_dir), "--method", "sei", "--window=-2:"])  # as --help says: read as a window
    assert "expected one argument" not in capsys.readouterr().err


def test_settings_no_rule_reads_are_refused_where_named(run_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """`queue --method cross_entropy --gamma 0.5` and `simulate --selectors random,oracle --epochs 5`
    ran with the setting unread and not a word of it; named at its default too (a script that sets
    it believes it counts). Where a rule reads it, it passes."""
    votes_path, _ = _votes_csv(tmp_path / "labels.csv")
    sim = ["simulate", "--votes", str(votes_path), "--selectors", "random,oracle", "--seeds", "2", "--quiet"]
    queue = ["queue", str(run_dir), "--out", str(tmp_path / "q.csv")]
    refusals = [
        ([*queue, "--gamma", "0.3"], "--method cross_entropy does not read it (leave it out)"),
        ([*queue, "--method", "sei", "--gam", "0.5"], "--method sei does not read it"),
        ([*queue, "--seed", "3"], "--method cross_entropy without --budget reads none (leave it out)"),
        ([*sim, "--out", str(tmp_path / "a"), "--gamma", "0.5"], "none of the selectors random, oracle reads it"),
        ([*sim, "--out", str(tmp_path / "b"), "--active-every", "10"], "--active-every set or feed the model"),
        ([*sim, "--out", str(tmp_path / "c"), "--epochs", "20", "--prune", "--features", "f.npy"],
         "--features, --epochs, --prune set or feed the model behind the selectors that read one; none of the "
         "selectors random, oracle reads a model"),
    ]
    for argv, said in refusals:
        assert main(argv) == 2, argv
        assert said in capsys.readouterr().err, argv
    assert not (tmp_path / "q.csv").exists() and not (tmp_path / "a").exists()
    for argv in ([*queue, "--method", "joint", "--gamma", "0.5"], [*queue, "--method", "random", "--seed", "3"],
                 [*queue, "--seed", "3", "--budget", "5"], [*sim, "--out", str(tmp_path / "d"), "--seeds", "1"]):
        assert main(argv) == 0, argv
    capsys.readouterr()


def test_queue_seed_and_simulate_votes_are_refused_by_name(run_dir: Path, tmp_path: Path, capsys) -> None:
    """`queue --seed -1 --method random` said numpy's 'expected non-negative integer'; a votes .npy
    of pickled objects said numpy's message naming no file (a CLI audit's findings)."""
    with pytest.raises(SystemExit):
        main(["queue", str(run_dir), "--out", str(tmp_path / "q.csv"), "--seed", "-1", "--method", "random"])
    assert "argument --seed: expected a whole number >= 0, got -1" in capsys.readouterr().err
    bad = tmp_path / "votes.npy"
    np.save(bad, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert main(["simulate", "--votes", str(bad), "--selectors", "random", "--out", str(tmp_path / "s")]) == 2
    assert f"error: votes file {bad} cannot be read as a .npy array of counts" in capsys.readouterr().err


def test_simulate_files_refuses_what_no_selector_reads_before_writing(tmp_path: Path) -> None:
    """simulate_files(seeds=True) ran seed 0; a head= or active_every with model-free selectors ran
    and was recorded in simulation.json; seeds [0, -1] failed with numpy's error after seed 0 ran."""
    from labeltrace.relabel.head import HeadConfig
    from labeltrace.relabel.simulation import simulate_files

    votes_path, _ = _votes_csv(tmp_path / "labels.csv")
    out = tmp_path / "sim"
    free = {"selectors": "random,oracle", "seeds": 2}
    for kw, said in (({**free, "seeds": True}, "seeds must be an int >= 1, got True"),
                     ({**free, "seeds": [0, -1]}, "seeds must be distinct whole numbers >= 0"),
                     ({**free, "head": HeadConfig(epochs=3)}, "head set or feed the model"),
                     ({**free, "active_every": 10}, "active_every set or feed the model"),
                     ({**free, "gamma": 0.5}, "none of the selectors random, oracle reads it")):
        with pytest.raises(ValueError) as e:
            simulate_files(votes_path, out, **kw)
        assert said in str(e.value), kw
    assert not out.exists()
    sim, _ = simulate_files(votes_path, out, **free)
    assert sim.seeds == [0, 1]
