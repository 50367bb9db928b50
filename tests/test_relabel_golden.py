"""The relabel simulator reproduces, number for number, what it computed before its refactoring.

``tests/golden/relabel_v1*`` were computed by ``tests/golden/make_relabel_golden.py`` with the
simulator as it was before it became a package (``relabel/simulate.py`` + ``relabel/campaign.py``;
the script and those modules are in commit d0981a0, "relabel: golden outputs of the simulator
before the split"). The expected values come from that previous implementation, not from the
code under test: seeded synthetic votes, two seeds of initial labels, every selector, static /
active / provider-first / single-review campaigns, aggregates, the CSV writers and full
simulations with a head in the loop. Never regenerate them to make this test pass.

Since then the reported intervals are clipped to each quantity's range (``stats.aggregate``,
tested in ``test_simulate_intervals.py``); the previous simulator reported the raw t-intervals, so
this test compares with ``bounded=False``.
"""

from __future__ import annotations

import csv
import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from labeltrace.relabel import experiment, head, stats
from labeltrace.relabel import io as rio
from labeltrace.relabel import votes as vm

GOLDEN = Path(__file__).parent / "golden"
K = 4
SEEDS = (0, 1)
BUDGET = 150
SELECTORS = ("random", "oracle", "cross_entropy", "joint", "sei", "sei_joint")
FIELDS = ("picked", "draws", "fixed", "remaining_clear", "remaining_ambiguous", "final_labels",
          "label_counts", "settled", "initial_labels", "accuracy")  # fmt: skip
SCALARS = ("relabels_used", "in_progress", "n_updates", "auc", "gain", "normalized_gain")


def _unpack() -> dict[str, np.ndarray]:
    z = np.load(GOLDEN / "relabel_v1.npz", allow_pickle=False)
    out = {}
    for key, integral, start, shape in zip(z["keys"], z["is_int"], z["start"], z["shape"],
                                           strict=True):  # fmt: skip
        shp = tuple(int(s) for s in shape if s >= 0)
        size = int(np.prod(shp)) if shp else 1
        src = z["ints"] if integral else z["floats"]
        out[str(key)] = src[start : start + size].reshape(shp)
    return out


@pytest.fixture(scope="module")
def gold() -> dict[str, np.ndarray]:
    return _unpack()


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    with open(GOLDEN / "relabel_v1_texts.csv", newline="") as fh:
        return {r["key"]: r["text"] for r in csv.DictReader(fh)}


def _model(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    truth = votes.argmax(1)
    post = 0.5 * np.eye(K)[truth] + 0.5 * rng.dirichlet(np.ones(K), size=votes.shape[0])
    return post, rng.normal(size=votes.shape[0])


def _refit_for(votes: np.ndarray) -> Any:
    base, sei = _model(votes)

    def refit(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return 0.6 * base + 0.4 * np.eye(K)[labels], sei + 0.1 * labels

    return refit


def _check(gold: dict[str, np.ndarray], prefix: str, res: Any) -> None:
    for f in FIELDS:
        np.testing.assert_array_equal(np.asarray(getattr(res, f)), gold[f"{prefix}/{f}"],
                                      err_msg=f"{prefix}/{f}")  # fmt: skip
    for f in SCALARS:
        np.testing.assert_array_equal(float(getattr(res, f)), gold[f"{prefix}/{f}"],
                                      err_msg=f"{prefix}/{f}")  # fmt: skip
    np.testing.assert_array_equal(
        np.asarray(sorted(res.fixed_per_100.items())), gold[f"{prefix}/fixed_per_100"]
    )


def _check_all(gold: dict[str, np.ndarray], case: str, out: dict[str, list[Any]]) -> int:
    n = 0
    for name, rs in out.items():
        for r in rs:
            _check(gold, f"{case}/{name}/{r.seed}", r)
            n += 1
    return n


@pytest.mark.parametrize("s", SEEDS)
def test_campaigns_reproduce_the_previous_simulator(gold: dict[str, np.ndarray], s: int) -> None:
    votes = gold["votes"].astype(np.int64)
    post, sei = _model(votes)
    refit = _refit_for(votes)
    tau = vm.temperature_for_rate(votes, 0.2, seed=s)
    init = vm.sample_initial_labels(votes, temperature=tau, seed=s)
    assert tau == gold[f"init/{s}/temperature"]
    np.testing.assert_array_equal(init.labels, gold[f"init/{s}/labels"])
    assert init.expected_noise_rate == gold[f"init/{s}/expected_noise_rate"]
    assert vm.temperature_for_rate(votes, 0.2) == gold[f"init/{s}/tau_expected"]
    kw: dict[str, Any] = {"budget": BUDGET, "seeds": SEEDS}
    n = _check_all(gold, f"static/init{s}", experiment.compare_selectors(
        votes, init, selectors=SELECTORS, posterior=post, sei=sei, **kw))  # fmt: skip
    n += _check_all(gold, f"active/init{s}", experiment.compare_selectors(
        votes, init, selectors=SELECTORS, posterior=post, sei=sei, update_posterior=refit,
        update_every=15, **kw))  # fmt: skip
    n += _check_all(gold, f"provider/init{s}", experiment.compare_selectors(
        votes, init, selectors=("joint", "sei"), update_posterior=refit, update_every=40, **kw))  # fmt: skip
    n += _check_all(gold, f"single/init{s}", experiment.compare_selectors(
        votes, init, selectors=("oracle", "joint"), posterior=post, count_initial_label=False,
        **kw))  # fmt: skip
    assert n == 2 * (6 + 6 + 2 + 2)


def test_aggregates_and_writers_reproduce(gold: dict[str, np.ndarray], tmp_path: Path) -> None:
    votes = gold["votes"].astype(np.int64)
    post, sei = _model(votes)
    init = vm.sample_initial_labels(votes, temperature=float(gold["init/0/temperature"]), seed=0)
    static = experiment.compare_selectors(votes, init, budget=BUDGET, selectors=SELECTORS, seeds=SEEDS,
                                 posterior=post, sei=sei)  # fmt: skip
    aggs = [stats.aggregate(rs, bounded=False) for rs in static.values()]
    for a in aggs:
        for m, v in a.metrics.items():
            np.testing.assert_array_equal(np.asarray(v), gold[f"aggregate/{a.selector}/{m}"])
        np.testing.assert_array_equal(np.stack([a.accuracy, a.accuracy_low, a.accuracy_high]),
                                      gold[f"aggregate/{a.selector}/accuracy"])  # fmt: skip
    curves = rio.write_curves_csv(static, tmp_path / "curves.csv", every=10)
    summary = rio.write_summary_csv(aggs, tmp_path / "summary.csv")
    assert curves.read_text() == (GOLDEN / "relabel_v1_curves.csv").read_text()
    assert summary.read_text() == (GOLDEN / "relabel_v1_summary.csv").read_text()


def _simulations(votes: np.ndarray, feats: np.ndarray) -> dict[str, Any]:
    cfg = head.HeadConfig(model="linear", epochs=3, batch_size=64, lr=0.1)
    return {
        "sim_static": experiment.run_simulation(
            votes,
            features=feats,
            selectors=["random", "joint", "sei", "sei_joint", "oracle"],
            seeds=list(SEEDS),
            noise_rate=0.2,
            budget_factor=2.0,
            head=cfg,
        ),
        "sim_active": experiment.run_simulation(
            votes,
            features=feats,
            selectors=["random", "joint", "sei", "oracle"],
            seeds=list(SEEDS),
            noise_rate=0.2,
            budget_factor=2.0,
            head=cfg,
            active_every=20,
        ),
        "sim_nomodel": experiment.run_simulation(
            votes, selectors=["random", "oracle"], seeds=[3, 4], noise_rate=0.15, budget=70
        ),
    }


def test_simulations_with_a_head_reproduce(
    gold: dict[str, np.ndarray], texts: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.set_num_threads(1)
    monkeypatch.setattr(experiment, "aggregate", functools.partial(stats.aggregate, bounded=False))
    sims = _simulations(gold["votes"].astype(np.int64), gold["features"])
    for name, sim in sims.items():
        _check_all(gold, name, sim.results)
        for f in ("temperatures", "n_noisy", "head_accuracy", "head_noisy_recall", "retrainings"):
            np.testing.assert_array_equal(np.asarray(getattr(sim, f), dtype=np.float64),
                                          gold[f"{name}/{f}"], err_msg=f"{name}/{f}")  # fmt: skip
        assert sim.budget == gold[f"{name}/budget"]
        # the header says what its brackets are since the golden was made; the rest reads as it did
        said = " seeds (each cell: the mean [its 95 % t-interval over the seeds]),"
        text = rio.format_summary(sim)
        assert said in text and text.replace(said, " seeds,", 1) == texts[name]
        if "random" in sim.results:
            for sel in sim.results:
                for f in (0.1, 0.25, 0.5):
                    want = gold[f"{name}/ratio/{sel}/{f:g}"].copy()
                    want[1] = max(want[1], 0.0)  # a ratio of counts: its interval is clipped at 0 now
                    np.testing.assert_array_equal(np.asarray(experiment.ratio_to_random(sim, sel, f)), want)
        paths = rio.write_simulation(sim, tmp_path / name, every=5, meta={"votes": "v"})
        info = json.loads(paths["json"].read_text())
        info.pop("seconds")
        # keys added since the golden (the head's folds, ensemble and prune, the active loop's
        # method and refresh counts) are checked here; every key the golden has must read as it did
        old = json.loads(texts[f"{name}/json"])
        for per_sel in (old.get("fixed_ratio_to_random") or {}).values():
            for v in per_sel.values():
                if v[1] == v[1]:  # not NaN
                    v[1] = max(v[1], 0.0)
        if info["head"] is not None:
            assert info["head"].pop("folds") == 1
            assert info["head"].pop("ensemble") == 1
            assert info["head"].pop("prune") is False
        assert info.pop("active_method") == "head"
        updates = info.pop("updates_per_seed")
        info.pop("update_seconds_per_seed")
        if info["active_every"]:  # every refit asked for (the cache answers repeats)
            assert all(u >= t - 1 > 0 for u, t in zip(updates, info["trainings_per_seed"],
                                                       strict=True))  # fmt: skip
        else:
            assert updates == [0] * len(info["seeds"])
        assert json.dumps(info, sort_keys=True) == json.dumps(old, sort_keys=True)
        assert paths["curves"].read_text() == texts[f"{name}/curves"]
        assert paths["summary"].read_text() == texts[f"{name}/summary"]
