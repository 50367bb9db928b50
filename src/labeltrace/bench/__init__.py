"""``labeltrace bench``: every detector on a grid of datasets x label noise x models x seeds.

Run ``labeltrace bench --config benchmarks/configs/default.toml`` (or ``python -m
labeltrace.bench ...``). Trainings and cross-validated probabilities are cached (default
``~/.cache/labeltrace/bench``), so a re-run resumes and recomputes nothing already done.
Writes ``<out>/<name>.csv`` (one row per cell x detector x seed; its ``settings`` column names the
model's, dataset's and bench's settings the row was made with), ``<name>.md`` (mean ± std over
seeds, best in bold, cost, machine), ``<name>_sei_epochs.csv`` and plots, when the grid is done;
while it runs, the rows so far are in ``<name>.csv.partial`` (a stopped run leaves the last whole
run's files as they were).

Detectors: the rows of the detector table, :func:`labeltrace.decide.detectors.available` (a row
added there is benchmarked without any change here; ``cleanlab`` is the package's
``find_label_issues`` on the same cross-validated probabilities as ``cl``, ours); see
:mod:`labeltrace.bench.config`.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import importlib.util
import shlex
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from labeltrace._io import atomic_write_bytes
from labeltrace.bench._toml import check_name, seed_list
from labeltrace.bench.config import (
    BenchConfig,
    DatasetSpec,
    apply_quick,
    load_config,
    parse_config,
    resolve_detectors,
)
from labeltrace.decide.detectors import get as get_detector

__all__ = ["BenchResult", "add_arguments", "apply_quick", "load_config", "parse_config", "run_bench",
           "run_from_args"]  # fmt: skip

Log = Callable[[str], None]


@dataclass
class BenchResult:
    rows: list[dict[str, Any]]
    curve: list[dict[str, Any]]
    files: dict[str, Path] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def run_bench(
    cfg: BenchConfig,
    *,
    out_dir: str | Path = "benchmarks/results",
    recompute_scores: bool = False,
    progress: bool = False,
    plots: bool = True,
    log: Log = print,
    command: str = "",
) -> BenchResult:
    """Run (or resume) the grid of ``cfg`` and write its outputs under ``out_dir``.

    A cell that fails (missing data, a training error) is logged, listed under *Failures* in
    the markdown and skipped; the other cells still run.
    """
    import torch
    from threadpoolctl import threadpool_limits

    t_start = time.perf_counter()
    detectors = resolve_detectors(cfg.detectors)
    # torch: imported when a bench runs, not for --help
    from labeltrace.train.loop import check_device

    check_device(cfg.device, "device")
    for name in detectors:  # imported before any cell's clock runs: the first cell paid for it
        package = get_detector(name).requires  # (a missing one: that detector's rows say so, as before)
        if package is not None and importlib.util.find_spec(package) is not None:
            importlib.import_module(package)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # numpy's and scikit-learn's maths libraries too (cleanlab's logistic regression ran on every
    # core while the trainings had cfg.threads: its cost was not comparable)
    with threadpool_limits(limits=cfg.threads) if cfg.threads else nullcontext():
        return _run_cells(cfg, detectors, out_dir=out_dir, recompute_scores=recompute_scores, progress=progress,
                          plots=plots, log=log, command=command, t_start=t_start)  # fmt: skip


def _run_cells(cfg: BenchConfig, detectors: list[str], *, out_dir: str | Path, recompute_scores: bool,
               progress: bool, plots: bool, log: Log, command: str, t_start: float) -> BenchResult:  # fmt: skip
    """:func:`run_bench`'s grid, its files and its summary, once the detectors and threads are set."""
    from labeltrace.bench import report
    from labeltrace.bench.cells import failure, run_cell
    from labeltrace.bench.grid import expand, load_dataset

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "csv": out / f"{cfg.name}.csv",
        "md": out / f"{cfg.name}.md",
        "sei_epochs_csv": out / f"{cfg.name}_sei_epochs.csv",
    }
    cells = expand(cfg)
    if not cells:
        raise ValueError("this selection runs no cell (" + "; ".join(
            f"{d.name}: models {list(d.models)}, label sets {list(d.labels)}" for d in cfg.datasets) + ")")
    unfound = [f"{d.name}: {d.path}" for d in cfg.datasets
               if d.source != "digits" and not Path(d.path or "").expanduser().exists()]  # fmt: skip
    if unfound:  # said before any training, not when the dataset's turn comes
        raise ValueError(f"dataset files not found: {'; '.join(unfound)}")
    first = cells[0].dataset.name  # loaded once: the first cell's, kept; the others read again in their turn
    loaded = _check_datasets(cfg, lambda d, quiet: load_dataset(d, cfg.cache_path, progress=progress and not quiet,
                                                                log=(lambda s: None) if quiet else log), keep=first)
    partial = out / f"{cfg.name}.csv.partial"  # the rows so far; NAME.csv and NAME.md stay the last whole run's
    log(f"bench {cfg.name}: {len(cells)} cells x {len(detectors)} detectors ({', '.join(detectors)}); "
        f"cache {cfg.cache_path}")  # fmt: skip
    rows: list[dict[str, Any]] = []
    curve: list[dict[str, Any]] = []
    failures: list[str] = []
    for i, cell in enumerate(cells, 1):
        t0 = time.perf_counter()
        log(f"[{i}/{len(cells)}] {cell}")
        try:
            name = cell.dataset.name
            if name not in loaded:
                loaded = {name: load_dataset(cell.dataset, cfg.cache_path, progress=progress, log=log)}
            r, c = run_cell(cell, loaded[name], cfg, detectors, recompute_scores=recompute_scores,
                            progress=progress, log=log)  # fmt: skip
        except (ValueError, OSError, RuntimeError) as e:
            msg = f"{cell}: {type(e).__name__}: {e}"
            log(f"  FAILED {msg}")
            failures.append(msg)
            continue
        rows += r
        curve += c
        report.write_csv(partial, rows)
        log(f"  done in {time.perf_counter() - t0:.1f}s: " + ", ".join(
            f"{x['detector']} {x['f1']:.3f}" for x in r if x["f1"] == x["f1"]))  # fmt: skip
        for x in r:
            if (why := failure(x)) is not None:
                log(f"  {x['detector']} FAILED: {why}")
    if failures and not rows:  # nothing to write in place of the last whole run's files
        log(f"every cell failed: {files['csv']} and {files['md']} are left as they were")
        return BenchResult(rows, curve, {}, failures)
    report.write_csv(files["csv"], rows)
    partial.unlink(missing_ok=True)
    if curve:
        report.write_csv(files["sei_epochs_csv"], curve, columns=report.CURVE_CSV_COLUMNS)
    else:  # an earlier run's curve is not this run's
        files["sei_epochs_csv"].unlink(missing_ok=True)
    plot_names: list[str] = []
    draw: dict[str, Callable[[Path], bool]] = {"f1_vs_rate": lambda p: report.plot_f1_vs_rate(rows, p),
                                                "sei_epochs": lambda p: report.plot_sei_epochs(curve, p)}  # fmt: skip
    for stem, drawn in draw.items():
        p = out / f"{cfg.name}_{stem}.png"
        if plots and drawn(p):
            files[f"{stem}_png"] = p
            plot_names.append(p.name)
        else:  # an earlier run's plot beside this run's tables would show the other run's numbers
            p.unlink(missing_ok=True)
            if plots and stem == "f1_vs_rate":
                log(f"no {p.name}: it draws a detector's F1 against the noise rate, and no dataset, kind of noise "
                    "and model of this run has more than one rate")  # fmt: skip
    md = report.markdown_report(rows, name=cfg.name, command=command, seeds=cfg.seeds,
                                elapsed=time.perf_counter() - t_start, plots=plot_names,
                                failures=failures)  # fmt: skip
    atomic_write_bytes(files["md"], md.encode())
    if rows:
        log("")
        log(report.text_table(rows, "f1"))
        log("")
        log(report.text_table(rows, "f1_at_true_rate"))
    log("")
    log("wrote " + ", ".join(str(p) for p in files.values() if p.exists()))
    return BenchResult(rows, curve, files, failures)


def _check_datasets(cfg: BenchConfig, load: Callable[[DatasetSpec, bool], Any], *, keep: str) -> dict[str, Any]:
    """Every dataset's labels read, and what its cells need of them checked, before any training:
    a wrong ``split``, ``classes`` beyond the source's, an ``exclude`` that leaves nothing, fewer
    samples than ``n_folds`` or a ``subset`` smaller than the classes (a class without a sample)
    failed each of that dataset's cells when its turn came, hours into a grid (``ValueError``
    listing every dataset's problem). ``load(spec, quiet)``: the dataset ``keep`` (the first cell's,
    returned loaded) as its cells read it, the others quietly (their notes said in their turn)."""
    problems: list[str] = []
    kept: dict[str, Any] = {}
    for d in cfg.datasets:
        try:
            with warnings.catch_warnings():
                if d.name != keep:  # said when its turn comes
                    warnings.simplefilter("ignore")
                data = load(d, d.name != keep)
        except (ValueError, OSError) as e:
            problems.append(f"{d.name}: {str(e).removeprefix(f'dataset {d.name!r}: ')}")
            continue
        n, k = int(data.clean.size), int(data.num_classes)
        if n < cfg.n_folds:
            problems.append(f"{d.name}: {n} samples, fewer than n_folds = {cfg.n_folds}")
        if (absent := k - np.unique(data.clean).size) > 0:
            why = f"subset = {d.subset} keeps" if d.subset else "it has"
            problems.append(f"{d.name}: {why} no sample of {absent} of its {k} classes")
        if d.name == keep:
            kept[d.name] = data
        del data
    if problems:
        raise ValueError("datasets that cannot run, said before any training: " + "; ".join(problems))
    return kept


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``bench`` options (shared by ``labeltrace bench`` and ``python -m labeltrace.bench``)."""
    p.add_argument("--config", help=f"TOML grid, or the name of a packaged one ({', '.join(packaged_configs())}); "
                   f"default: {REPO_CONFIG}, the grid of a labeltrace checkout")
    p.add_argument("--quick", action="store_true", help="a tiny grid: the config's [quick] table; without one, every dataset at 300 images, one seed, 4 epochs, "
                   "the label sets symmetric:0.2 / confusion:0.4 (else each dataset's first)")
    p.add_argument("--out", default="benchmarks/results", help="results folder (default: %(default)s)")
    p.add_argument("--name", help="output file stem (default: the config's name; with --quick, NAME-quick)")
    p.add_argument("--cache-dir", help="trainings cache (default: the config's, ~/.cache/labeltrace/bench)")
    p.add_argument("--only", help="comma-separated dataset names to run")
    p.add_argument("--seeds", help="comma-separated seeds, overriding the config")
    p.add_argument("--models", help="comma-separated model names to run (of each dataset's models)")
    p.add_argument("--detectors", help="comma-separated detectors ('*' = all), overriding the config")
    p.add_argument("--threads", type=int, help="threads of torch and of numpy's / scikit-learn's maths libraries")
    p.add_argument("--device", help="training device (cpu, cuda, auto)")
    p.add_argument("--recompute-scores", action="store_true",
                   help="recompute the detectors' rows from cached trainings (after a detector changed)")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--progress", action="store_true", help="progress bars while training")


def _csv_list(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def _command() -> str:
    argv = sys.argv[1:]
    prefix = ["labeltrace"] if argv[:1] == ["bench"] else ["python", "-m", "labeltrace.bench"]
    return shlex.join(prefix + argv)


#: ``--config`` left out: the repository's grid, read from a checkout of labeltrace
REPO_CONFIG = "benchmarks/configs/default.toml"
#: the grids installed with the package, named by ``--config NAME``
PACKAGED = Path(__file__).with_name("configs")


def packaged_configs() -> list[str]:
    """The names ``--config`` takes for the grids installed with the package."""
    return sorted(p.stem for p in PACKAGED.glob("*.toml"))


def config_path(given: str | None) -> Path:
    """The TOML file of ``--config``: a path, a packaged grid's name, or (None) the checkout's grid."""
    if given is None:
        if not Path(REPO_CONFIG).is_file():
            raise ValueError(f"no --config given, and {REPO_CONFIG} (the grid of a labeltrace checkout) is not in "
                             f"this folder: pass --config FILE, or --config digits for the packaged digits grid "
                             f"({PACKAGED / 'digits.toml'}, a template for your own)")  # fmt: skip
        return Path(REPO_CONFIG)
    if not Path(given).expanduser().exists() and given in packaged_configs():
        return PACKAGED / f"{given}.toml"
    return Path(given)


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``bench`` from parsed :func:`add_arguments` options; 1 when a cell failed (its rows are
    missing; a detector that failed on a seed is a row that says so, and not an error)."""
    args.config = str(config_path(args.config))
    cfg = load_config(args.config, quick=args.quick)
    for flag in ("only", "models", "seeds", "detectors"):
        given = getattr(args, flag)
        if given is not None and not _csv_list(given):
            raise ValueError(f"--{flag} names nothing ({given!r}): leave it out to run the config's own")
    if args.name is not None:
        check_name(args.name, "--name")
    if args.only:
        keep = set(_csv_list(args.only))
        unknown = keep - {d.name for d in cfg.datasets}
        if unknown:
            raise ValueError(f"--only: datasets {sorted(unknown)} are not in {args.config}")
        cfg = replace(cfg, datasets=tuple(d for d in cfg.datasets if d.name in keep))
    if args.models:
        keep_m = set(_csv_list(args.models))
        unknown_m = keep_m - set(cfg.models)
        if unknown_m:
            raise ValueError(f"--models: models {sorted(unknown_m)} are not in {args.config}")
        cfg = replace(cfg, datasets=tuple(replace(d, models=tuple(m for m in d.models if m in keep_m))
                                          for d in cfg.datasets if any(m in keep_m for m in d.models)))  # fmt: skip
    if args.seeds:
        try:
            seeds = [int(s) for s in _csv_list(args.seeds)]
        except ValueError:
            raise ValueError(f"--seeds must be comma-separated ints, got {args.seeds!r}") from None
        cfg = replace(cfg, seeds=tuple(seed_list(seeds, "--seeds")))
    if args.detectors:
        cfg = replace(cfg, detectors=tuple(_csv_list(args.detectors)))
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    for attr, val in (("name", args.name), ("cache_dir", args.cache_dir), ("threads", args.threads),
                      ("device", args.device)):  # fmt: skip
        if val is not None:
            cfg = replace(cfg, **{attr: val})
    from labeltrace.train.loop import check_device

    check_device(cfg.device, "--device" if args.device is not None else f"{args.config}: device")
    dropped = _rows_outside(Path(args.out) / f"{cfg.name}.csv", cfg)
    if dropped:  # the run rewrites that file with its own rows only
        raise ValueError(f"{Path(args.out) / f'{cfg.name}.csv'} holds {len(dropped)} rows this run would not write "
                         f"(e.g. {dropped[0]}): they would be lost; give this part of the grid its own --name")

    def log(s: str) -> None:
        print(s, file=sys.stderr, flush=True)

    try:
        res = run_bench(cfg, out_dir=args.out, recompute_scores=args.recompute_scores, progress=args.progress,
                        plots=not args.no_plots, log=log, command=_command())  # fmt: skip
    except KeyboardInterrupt:
        log(f"interrupted: the trainings finished so far are cached and the rows so far are in "
            f"{Path(args.out) / f'{cfg.name}.csv.partial'}; the same command resumes")
        return 130
    return 1 if res.failures else 0


def _rows_outside(path: Path, cfg: BenchConfig) -> list[str]:
    """The rows of an earlier results CSV at ``path`` that a run of ``cfg`` would not write again
    (another dataset, model, seed or detector): a run of part of a grid under the grid's name would
    drop them. Empty when there is no such file (or it is not a results table)."""
    if not path.is_file():
        return []
    models = {d.name: set(d.models) for d in cfg.datasets}
    labels = {d.name: set(d.labels) for d in cfg.datasets}
    seeds, dets = {str(s) for s in cfg.seeds}, set(resolve_detectors(cfg.detectors))
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [f"{r.get('dataset')} {r.get('labels')} {r.get('model')} seed {r.get('seed')} {r.get('detector')}"
            for r in rows if r.get("model") not in models.get(str(r.get("dataset")), set())
            or r.get("labels") not in labels.get(str(r.get("dataset")), set())
            or r.get("seed") not in seeds or r.get("detector") not in dets]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m labeltrace.bench", description=__doc__.splitlines()[0])
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run_from_args(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
