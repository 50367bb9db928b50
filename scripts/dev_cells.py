"""The dev cells of the benchmark, read from the bench cache — shared by the dev-only studies
(``count_rule_dev.py``, ``single_count_dev.py``); never the test cells (``benchmarks/SPLIT.md``)."""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from labeltrace.bench.cells import CellRunner
from labeltrace.bench.config import load_config
from labeltrace.bench.grid import Cell, expand, load_dataset

DEV = Path(__file__).resolve().parents[1] / "benchmarks" / "configs" / "dev.toml"
#: the dev datasets with N < count.LARGE (the small-set rules apply); the large ones load slowly
SMALL_DEV = ("digits", "pneumoniamnist-val", "breastmnist-val", "cifar10n-dev-2k", "cifar10n-dev-2k-224",
             "pneumoniamnist-val-224", "breastmnist-val-224", "cifar10-catdog-dev", "pneumoniamnist-train-rest")  # fmt: skip


def parse_args(doc: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--cache", required=True, help="the bench cache that holds the dev cells' trainings")
    ap.add_argument("--config", default=str(DEV))
    ap.add_argument("--only", default=None, help="comma-separated dev datasets (studies that read it)")
    return ap.parse_args()


def dev_cells(config: str, cache: str, datasets: tuple[str, ...] | None = None) -> Iterator[tuple[Cell, CellRunner]]:
    """Every dev cell (of ``datasets`` when given) with its runner (the trainings load from the cache)."""
    return bench_cells(config, cache, datasets, name="dev")


def bench_cells(config: str, cache: str, datasets: tuple[str, ...] | None = None, *,
                name: str) -> Iterator[tuple[Cell, CellRunner]]:  # fmt: skip
    """Every cell of the config called ``name`` (of ``datasets`` when given) with its runner; a
    test-cell report passes ``name="test"`` and chooses nothing from it (benchmarks/SPLIT.md)."""
    cfg = load_config(config)
    assert cfg.name == name, f"{name} cells only (benchmarks/SPLIT.md), not {cfg.name!r}"
    cfg = replace(cfg, cache_dir=cache)
    data = {}
    for cell in expand(cfg):
        if datasets is not None and cell.dataset.name not in datasets:
            continue
        if cell.dataset.name not in data:
            data[cell.dataset.name] = load_dataset(cell.dataset, cfg.cache_path, log=lambda s: None)
        yield cell, CellRunner(cell, data[cell.dataset.name], cfg, log=lambda s: None)


def f1_at(score: np.ndarray, truth: np.ndarray, k: int) -> float:
    """F1 of flagging the ``k`` lowest scores (NaN on a clean cell)."""
    if not truth.any():
        return float("nan")
    if k <= 0:
        return 0.0
    top = np.argsort(score, kind="stable")[:k]
    return 2 * int(truth[top].sum()) / (k + int(truth.sum()))


def print_header(title: str, script: str, out: str, what: str, rules: tuple[str, ...] | list[str]) -> None:
    """The markdown header of a dev study: title, the command that wrote it, the table head."""
    print(f"# {title}\n")
    print(f"`python scripts/{script} --cache /work/cache/bench > benchmarks/results/{out}` "
          f"(from the bench cache of `configs/dev.toml`; each entry: count (F1 of {what} cut there)).\n")  # fmt: skip
    print("| cell | seed | N | true | " + " | ".join(rules) + " |")
    print("|---|---|---|---|" + "---|" * len(rules))


class CountTable:
    """The rows of a count study: per cell and seed, each rule's count and the F1 of a ranking cut
    there (:meth:`row`); then each rule's mean F1 over the noisy cells and mean count on the clean
    ones (:meth:`footer`)."""

    def __init__(self) -> None:
        self.f1s: dict[str, list[float]] = defaultdict(list)
        self.clean: dict[str, list[int]] = defaultdict(list)

    def row(self, label: str, seed: int, score: np.ndarray, truth: np.ndarray, counts: Mapping[str, int]) -> None:
        outs = []
        for name, k in counts.items():
            f = f1_at(score, truth, k)
            (self.f1s[name].append(f) if truth.any() else self.clean[name].append(k))
            outs.append(f"{k} ({f:.3f})" if truth.any() else f"{k}")
        print(f"| {label} | {seed} | {len(truth)} | {int(truth.sum())} | " + " | ".join(outs) + " |")

    def footer(self, head: str) -> None:
        """``head``: the footer table's header row, e.g. ``| rule | mean F1 ... | flagged ... |``."""
        print(f"\n{head}\n|---|---|---|")
        for name in self.f1s | self.clean:
            f1, cl = self.f1s[name], self.clean[name]
            clean = f"{np.mean(cl):.1f}" if cl else "– (no clean cell)"
            print(f"| {name} | {np.mean(f1):.4f} (n={len(f1)}) | {clean} |")

