"""Command line: argument parsing only; every command delegates to a module."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _load_dataset(args: argparse.Namespace):  # noqa: ANN202 - ImageDataset, imported lazily
    from labeltrace import data

    if args.example:
        if args.data or args.labels:
            raise SystemExit("error: give either DATA/--labels or --example, not both")
        return data.example(args.example)
    common = {"on_bad_image": args.on_bad_image}
    if args.labels:
        man = Path(args.labels)
        root = Path(args.data) if args.data else None
        return data.from_manifest(man, path_column=args.path_column, label_column=args.label_column,
                                  id_column=args.id_column, root=root, **common)  # fmt: skip
    if not args.data:
        raise SystemExit("error: give DATA (a folder, manifest or .npz), --labels FILE, or --example digits")
    p = Path(args.data)
    if p.is_dir():
        return data.from_folder(p, **common)
    if p.suffix.lower() in (".csv", ".tsv", ".parquet"):
        return data.from_manifest(p, path_column=args.path_column, label_column=args.label_column,
                                  id_column=args.id_column, **common)  # fmt: skip
    if p.suffix.lower() == ".npz":
        return data.from_npz(p, split=args.split)
    raise SystemExit(f"error: cannot read {p}: expected a folder, a .csv/.parquet manifest or a .npz file")


def _cmd_scan(args: argparse.Namespace) -> int:
    from labeltrace.scan import ScanConfig, scan
    from labeltrace.summary import print_summary

    ds = _load_dataset(args)
    cfg = ScanConfig(
        model=args.model, epochs=args.epochs, runs=args.runs, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, schedule=args.schedule, augment=args.augment,
        image_size=args.image_size, head=args.head, resolution=args.resolution, detector=args.detector,
        noise=args.noise, seed=args.seed, device=args.device, cache_dir=args.cache_dir, csv=args.csv,
    )  # fmt: skip
    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr))
    if ds.skipped:
        log(f"skipped {len(ds.skipped)} unreadable images (listed in run.json):")
        for src, why in ds.skipped[:10]:
            log(f"  {src}: {why}")
    log(f"{len(ds)} samples, {ds.n_classes} classes → {args.out}")
    t0 = time.perf_counter()
    res = scan(ds, args.out, cfg, progress=not args.quiet, log=log, command=sys.argv)
    print_summary(res.run_dir, top=args.top, elapsed=time.perf_counter() - t0)
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    import numpy as np
    import pyarrow as pa

    from labeltrace import detect, rundir

    run = rundir.open_run(args.run_dir)
    runs = [detect.RecordedRun(run.dynamics(r), run.is_auxiliary(r), len(run.classes)) for r in range(run.num_runs)]
    kw: dict = {}
    if args.epoch is not None:
        kw["epoch"] = args.epoch
    if args.window:
        a, _, b = args.window.partition(":")
        kw["epochs"] = slice(int(a) if a else None, int(b) if b else None)
    s = detect.combined_score(args.method, runs, **kw)
    order = np.lexsort((np.arange(len(s)), np.where(np.isnan(s), np.inf, s)))
    table = pa.table({"id": order, "external_id": run.samples.column("external_id").take(order),
                      args.method: s[order], "rank": np.arange(1, len(s) + 1)})  # fmt: skip
    if args.out:
        rundir.write_table(Path(args.out), table)
        print(f"wrote {args.out}")
    else:
        for row in table.slice(0, args.top).to_pylist():
            print(f"{row['rank']:>6}  id {row['id']:>7}  {row['external_id']:<30}  {args.method} {row[args.method]: .4f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from labeltrace import __version__
    from labeltrace.scores import available

    p = argparse.ArgumentParser(
        prog="labeltrace",
        description="Find mislabeled images from training dynamics and get them fixed.",
    )
    p.add_argument("--version", action="version", version=f"labeltrace {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser(
        "scan",
        help="train with the recorder, score every sample, write ranked suspects",
        description="Score every sample of a labeled image dataset and write a run directory "
        "(samples.parquet, run.json, saved dynamics). A killed scan re-run with the same command resumes.",
    )
    s.add_argument("data", nargs="?", help="image folder (one sub-folder per class), manifest .csv/.parquet, or .npz")
    s.add_argument("--labels", help="manifest (path,label[,id]); paths relative to DATA if given, else to the manifest")
    s.add_argument("--example", choices=["digits"], help="built-in dataset that needs no download")
    s.add_argument("--out", required=True, help="run directory to write")
    s.add_argument("--model", default="auto", choices=["auto", "small-cnn", "effnet-lite0"],
                   help="auto: small-cnn for images <= 64 px, else effnet-lite0 when installed")
    s.add_argument("--head", default="mlp", choices=["mlp", "linear"], help="head on frozen effnet features")
    s.add_argument("--epochs", type=int, help="training epochs per run (default depends on the model)")
    s.add_argument("--runs", type=int, default=2, choices=[1, 2],
                   help="2: two runs with disjoint auxiliary sets (default); 1: one run without auxiliary class")
    s.add_argument("--detector", default="sei", help="which score and cutoff flag suspects (default: sei)")
    s.add_argument("--noise", help="inject synthetic noise first and report detection metrics: "
                   "symmetric:0.2 | pair:0.2 | confusion:0.3 | instance:0.2")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--lr", type=float, help="learning rate (default depends on the model)")
    s.add_argument("--weight-decay", type=float, default=1e-4)
    s.add_argument("--schedule", default="cosine", choices=["cosine", "step", "constant"])
    s.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random crop + flip (default off)")
    s.add_argument("--image-size", type=int, help="small-cnn input side (default: native if <= 64, else 64)")
    s.add_argument("--resolution", type=int, default=96, help="effnet-lite0 feature resolution")
    s.add_argument("--cache-dir", help="feature cache (default ~/.cache/labeltrace/features)")
    s.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1 ...")
    s.add_argument("--on-bad-image", default="fail", choices=["fail", "skip"])
    s.add_argument("--path-column", default="path")
    s.add_argument("--label-column", default="label")
    s.add_argument("--id-column")
    s.add_argument("--split", default="train", help="split of a MedMNIST-style .npz")
    s.add_argument("--csv", action="store_true", help="also write samples.csv")
    s.add_argument("--top", type=int, default=10, help="suspects shown in the summary")
    s.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    s.set_defaults(func=_cmd_scan)

    sc = sub.add_parser("score", help="recompute a score from a run's saved dynamics (no training)")
    sc.add_argument("run_dir")
    sc.add_argument("--method", required=True, choices=available())
    sc.add_argument("--epoch", type=int, help="epoch for se_at (negative counts from the end)")
    sc.add_argument("--window", help="epochs to integrate, python slice 'a:b'")
    sc.add_argument("--out", help="write the ranked table (.parquet or .csv)")
    sc.add_argument("--top", type=int, default=20)
    sc.set_defaults(func=_cmd_score)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ValueError as e:  # DataError included: a clear message, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
