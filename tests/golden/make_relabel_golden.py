"""Regenerate ``relabel_v1.npz`` and the CSVs beside it: the relabel simulator's outputs on
seeded synthetic votes, pinned so that refactorings can prove they change nothing.

Run from the repository root: ``PYTHONPATH=src python tests/golden/make_relabel_golden.py``.
The committed files were computed by the simulator before it became a package (the
``simulate.py`` / ``campaign.py`` modules); ``tests/test_relabel_golden.py`` asserts that the
current code reproduces them exactly. Do not regenerate them to make that test pass.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labeltrace.relabel import campaign as C
from labeltrace.relabel import simulate as S

HERE = Path(__file__).parent
N, K, D = 240, 4, 6
SEEDS = (0, 1)
BUDGET = 150
SELECTORS = ("random", "oracle", "cross_entropy", "joint", "sei", "sei_joint")
FIELDS_INT = ("picked", "draws", "fixed", "remaining_clear", "remaining_ambiguous",
              "final_labels", "label_counts", "settled", "initial_labels")  # fmt: skip
FIELDS_FLOAT = ("accuracy",)
SCALARS = ("relabels_used", "in_progress", "n_updates", "auc", "gain", "normalized_gain")


def votes_and_features() -> tuple[np.ndarray, np.ndarray]:
    """Seeded synthetic vote counts (clear and ambiguous images) and features."""
    rng = np.random.default_rng(20240601)
    truth = rng.integers(0, K, N)
    conc = rng.choice([0.95, 0.75, 0.45], N, p=[0.55, 0.3, 0.15])
    p = (1 - conc)[:, None] / (K - 1) * np.ones((N, K))
    p[np.arange(N), truth] = conc
    votes = np.stack([rng.multinomial(30, row) for row in p])
    centers = rng.normal(0, 2.5, (K, D))
    feats = centers[votes.argmax(1)] + rng.normal(0, 1, (N, D))
    return votes, feats * 3 - 1


def model(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A fixed posterior (mostly the truth, partly noise) and SEI, seeded."""
    rng = np.random.default_rng(7)
    truth = votes.argmax(1)
    post = 0.5 * np.eye(K)[truth] + 0.5 * rng.dirichlet(np.ones(K), size=N)
    return post, rng.normal(size=N)


def refit(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic 'model' of the current labels, for the active loop."""
    base, sei = model(votes_and_features()[0])
    post = 0.6 * base + 0.4 * np.eye(K)[labels]
    return post, sei + 0.1 * labels


def put(store: dict[str, np.ndarray], prefix: str, res: Any) -> None:
    for f in FIELDS_INT:
        store[f"{prefix}/{f}"] = np.asarray(getattr(res, f)).astype(np.int16)  # all < 2**15
    for f in FIELDS_FLOAT:
        store[f"{prefix}/{f}"] = np.asarray(getattr(res, f), dtype=np.float64)
    for f in SCALARS:
        store[f"{prefix}/{f}"] = np.asarray(float(getattr(res, f)))
    fpc = sorted(res.fixed_per_100.items())
    store[f"{prefix}/fixed_per_100"] = np.asarray(fpc, dtype=np.float64)


def put_all(store: dict[str, np.ndarray], case: str, out: dict[str, list[Any]]) -> None:
    for name, rs in out.items():
        for r in rs:
            put(store, f"{case}/{name}/{r.seed}", r)


def pack(store: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A few arrays instead of one per key (an npz entry costs ~300 bytes): integer arrays go
    to ``ints`` (int16), the rest to ``floats``; ``keys``/``start``/``shape`` locate each."""
    keys = sorted(store)
    ints: list[np.ndarray] = []
    floats: list[np.ndarray] = []
    start, shape, is_int = [], [], []
    n_int = n_float = 0
    for k in keys:
        a = np.asarray(store[k])
        integral = np.issubdtype(a.dtype, np.integer)
        is_int.append(integral)
        shape.append(list(a.shape) + [-1] * (2 - a.ndim))
        if integral:
            start.append(n_int)
            ints.append(a.ravel().astype(np.int16))
            n_int += a.size
        else:
            start.append(n_float)
            floats.append(a.ravel().astype(np.float64))
            n_float += a.size
    return {
        "keys": np.asarray(keys),
        "is_int": np.asarray(is_int),
        "start": np.asarray(start, dtype=np.int64),
        "shape": np.asarray(shape, dtype=np.int64),
        "ints": np.concatenate(ints),
        "floats": np.concatenate(floats),
    }


def main() -> None:
    torch.set_num_threads(1)
    votes, feats = votes_and_features()
    post, sei = model(votes)
    store: dict[str, np.ndarray] = {"votes": votes, "features": feats}
    texts: dict[str, str] = {}
    for s in SEEDS:
        tau = S.temperature_for_rate(votes, 0.2, seed=s)
        init = S.sample_initial_labels(votes, temperature=tau, seed=s)
        store[f"init/{s}/temperature"] = np.asarray(tau)
        store[f"init/{s}/labels"] = init.labels
        store[f"init/{s}/expected_noise_rate"] = np.asarray(init.expected_noise_rate)
        store[f"init/{s}/tau_expected"] = np.asarray(S.temperature_for_rate(votes, 0.2))
        static = S.compare_selectors(votes, init, budget=BUDGET, selectors=SELECTORS, seeds=SEEDS,
                                     posterior=post, sei=sei)  # fmt: skip
        put_all(store, f"static/init{s}", static)
        active = S.compare_selectors(votes, init, budget=BUDGET, selectors=SELECTORS, seeds=SEEDS,
                                     posterior=post, sei=sei, update_posterior=refit,
                                     update_every=15)  # fmt: skip
        put_all(store, f"active/init{s}", active)
        provider = S.compare_selectors(votes, init, budget=BUDGET, selectors=("joint", "sei"),
                                       seeds=SEEDS, update_posterior=refit, update_every=40)  # fmt: skip
        put_all(store, f"provider/init{s}", provider)
        single = S.compare_selectors(votes, init, budget=BUDGET, selectors=("oracle", "joint"),
                                     seeds=SEEDS, posterior=post, count_initial_label=False)  # fmt: skip
        put_all(store, f"single/init{s}", single)
        if s == 0:
            aggs = [S.aggregate(rs) for rs in static.values()]
            for a in aggs:
                for m, v in a.metrics.items():
                    store[f"aggregate/{a.selector}/{m}"] = np.asarray(v, dtype=np.float64)
                store[f"aggregate/{a.selector}/accuracy"] = np.stack(
                    [a.accuracy, a.accuracy_low, a.accuracy_high]
                )
            S.write_curves_csv(static, HERE / "relabel_v1_curves.csv", every=10)
            S.write_summary_csv(aggs, HERE / "relabel_v1_summary.csv")
    head = C.HeadConfig(model="linear", epochs=3, batch_size=64, lr=0.1)
    sims = {
        "sim_static": C.run_simulation(votes, features=feats, selectors=["random", "joint", "sei",
                                       "sei_joint", "oracle"], seeds=list(SEEDS), noise_rate=0.2,
                                       budget_factor=2.0, head=head),  # fmt: skip
        "sim_active": C.run_simulation(votes, features=feats, selectors=["random", "joint", "sei",
                                       "oracle"], seeds=list(SEEDS), noise_rate=0.2,
                                       budget_factor=2.0, head=head, active_every=20),  # fmt: skip
        "sim_nomodel": C.run_simulation(votes, selectors=["random", "oracle"], seeds=[3, 4],
                                        noise_rate=0.15, budget=70),  # fmt: skip
    }
    for name, sim in sims.items():
        put_all(store, name, sim.results)
        for f in ("temperatures", "n_noisy", "head_accuracy", "head_noisy_recall", "retrainings"):
            store[f"{name}/{f}"] = np.asarray(getattr(sim, f), dtype=np.float64)
        store[f"{name}/budget"] = np.asarray(sim.budget)
        texts[name] = C.format_summary(sim)
        if "random" in sim.results:
            for sel in sim.results:
                for f in (0.1, 0.25, 0.5):
                    store[f"{name}/ratio/{sel}/{f:g}"] = np.asarray(C.ratio_to_random(sim, sel, f))
        paths = C.write_simulation(sim, HERE / "tmp_sim", every=5, meta={"votes": "v"})
        info = json.loads(paths["json"].read_text())
        info.pop("seconds")
        texts[f"{name}/json"] = json.dumps(info, sort_keys=True)
        texts[f"{name}/curves"] = paths["curves"].read_text()
        texts[f"{name}/summary"] = paths["summary"].read_text()
    for p in sorted((HERE / "tmp_sim").iterdir()):
        p.unlink()
    (HERE / "tmp_sim").rmdir()
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["key", "text"])
    for k, v in texts.items():
        w.writerow([k, v])
    (HERE / "relabel_v1_texts.csv").write_text(buf.getvalue())
    np.savez_compressed(HERE / "relabel_v1.npz", **pack(store))
    print(f"{len(store)} arrays, {len(texts)} texts")


if __name__ == "__main__":
    main()
