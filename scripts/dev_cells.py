"""The dev cells of the benchmark, read from the bench cache — shared by the dev-only studies
(``count_rule_dev.py``, ``single_count_dev.py``); never the test cells (``benchmarks/SPLIT.md``)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from labeltrace.bench.cells import CellRunner
from labeltrace.bench.config import load_config
from labeltrace.bench.grid import Cell, expand, load_dataset

DEV = Path(__file__).resolve().parents[1] / "benchmarks" / "configs" / "dev.toml"


def parse_args(doc: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--cache", required=True, help="the bench cache that holds the dev cells' trainings")
    ap.add_argument("--config", default=str(DEV))
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
