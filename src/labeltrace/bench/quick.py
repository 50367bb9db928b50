"""``labeltrace bench --quick``: a config's ``[quick]`` table, checked when the config is read and
applied on request (fewer seeds, datasets, label sets and epochs, a subset of each dataset)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from labeltrace.bench._toml import check_keys, err, seed_list, str_list, typed

if TYPE_CHECKING:
    from labeltrace.bench.config import BenchConfig, DatasetSpec, ModelSpec

__all__ = ["QUICK_DEFAULTS", "apply_quick", "check_quick"]

#: ``--quick`` overrides used when a config has no ``[quick]`` table (every dataset of the config,
#: each with those of these label sets it has, else its first one).
QUICK_DEFAULTS: dict[str, Any] = {
    "seeds": [0],
    "epochs": 4,
    "subset": 300,
    "labels": ["symmetric:0.2", "confusion:0.4"],
}
_KEYS = {"seeds", "epochs", "subset", "datasets", "labels", "detectors", "models"}
_WHERE = "[quick]"


def check_quick(quick: Any, datasets: Sequence[DatasetSpec], models: Mapping[str, ModelSpec]) -> dict[str, Any]:
    """The ``[quick]`` table, validated against the config's datasets and models: every name it
    lists must exist (a misspelled label set or model is refused, not replaced by the first one),
    seeds are a list of ints >= 0, ``epochs`` and ``subset`` ints >= 1."""
    if not isinstance(quick, Mapping):
        raise err(_WHERE, "must be a table")
    check_keys(quick, _KEYS, _WHERE)
    q = dict(quick)
    if "seeds" in q:
        seed_list(q["seeds"], _WHERE)
    for k in ("epochs", "subset"):
        if k in q and typed(q, k, int, _WHERE) < 1:
            raise err(_WHERE, f"{k!r} must be >= 1, got {q[k]}")
    known = {
        "datasets": {d.name for d in datasets},
        "labels": {lab for d in datasets for lab in d.labels},
        "models": {m for d in datasets for m in d.models} & set(models),
    }
    for k in ("datasets", "labels", "models", "detectors"):
        if k in q:
            names = str_list(q[k], k, _WHERE)
            unknown = sorted(set(names) - known[k]) if k in known else []
            if unknown:
                raise err(_WHERE, f"{k} {unknown} are not in the config; it has {sorted(known[k])}")
    return q


def apply_quick(cfg: BenchConfig) -> BenchConfig:
    """The config shrunk by its ``[quick]`` table (or :data:`QUICK_DEFAULTS`): fewer seeds,
    datasets, label sets and epochs, and a subset of each dataset. A dataset that has none of the
    table's label sets (or models) keeps its first one."""
    q = dict(cfg.quick) or dict(QUICK_DEFAULTS)
    datasets = list(cfg.datasets)
    if "datasets" in q:
        keep = set(q["datasets"])
        unknown = keep - {d.name for d in datasets}
        if unknown:
            raise err(_WHERE, f"datasets {sorted(unknown)} are not in the config")
        datasets = [d for d in datasets if d.name in keep]
    out = []
    for d in datasets:
        labels = d.labels
        if "labels" in q:
            labels = tuple(s for s in d.labels if s in q["labels"]) or d.labels[:1]
        models = d.models
        if "models" in q:
            models = tuple(m for m in d.models if m in q["models"]) or d.models[:1]
        subset = d.subset
        if "subset" in q:
            subset = int(q["subset"]) if subset is None else min(subset, int(q["subset"]))
        out.append(replace(d, labels=labels, models=models, subset=subset))
    model_specs = dict(cfg.models)
    if "epochs" in q:
        model_specs = {n: replace(m, epochs=min(m.epochs, int(q["epochs"]))) for n, m in model_specs.items()}
    return replace(
        cfg, name=f"{cfg.name}-quick" if not cfg.name.endswith("quick") else cfg.name,
        seeds=tuple(q.get("seeds", cfg.seeds)), datasets=tuple(out), models=model_specs,
        detectors=tuple(q.get("detectors", cfg.detectors)),
    )  # fmt: skip
