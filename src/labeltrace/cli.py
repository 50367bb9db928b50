"""Command line: argument parsing only; every command delegates to a module (queue, simulate and
review live in :mod:`labeltrace.cli_relabel`)."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labeltrace.cli_data import (  # cli._load_dataset: patched by tests
    _check_truth_column,
    _load_dataset,
    _say_skipped,
    _truth_labels,
)
from labeltrace.cli_own import TRAINING_FLAGS, _check_flags, scan_recording
from labeltrace.cli_relabel import add_relabel_commands, non_negative
from labeltrace.run_layout import REVIEWS_DB

__all__ = ["main"]


def _cmd_scan(args: argparse.Namespace) -> int:
    from labeltrace.report.summary import print_summary
    from labeltrace.scan import ScanConfig, scan
    from labeltrace.scan_settings import check
    from labeltrace.train.distributed import init_from_env

    detector = _check_flags(args)  # --recording: a training the user ran, scored and written, none run here
    if args.recording is not None:
        return scan_recording(args, detector)
    d = init_from_env(args.device)  # under torchrun: one process group, gloo on CPU, nccl on GPU
    if d.rank != 0:  # every rank reads the data (and the truth labels): one set of input warnings, rank 0's
        from labeltrace.data.errors import DataWarning

        warnings.simplefilter("ignore", DataWarning)  # this worker process only
    cfg = ScanConfig(
        model=args.model, epochs=args.epochs, runs=args.runs, folds=args.folds, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, schedule=args.schedule, augment=args.augment,
        image_size=args.image_size, width=args.width, head=args.head, hidden=args.hidden, finetune=args.finetune, resolution=args.resolution, detector=args.detector or "crossfit",
        noise=args.noise, seed=args.seed, device=args.device, precision=args.precision,
        backbone_precision=args.backbone_precision, cache_dir=args.cache_dir, csv=args.csv,
        clip_model=args.clip_model, clip_template=args.clip_template, aux_prompt=args.aux_prompt,
        **({} if args.early_stop is None else {"early_stop": args.early_stop}), stream=args.stream,
        workers=args.workers,
    )  # fmt: skip
    check(cfg, None if args.model == "auto" else args.model, None)  # the settings first: not after minutes of reading DATA
    _check_truth_column(args)
    ds, origin = _load_dataset(args)
    log = (lambda s: None) if args.quiet or not d.is_writer else (lambda s: print(s, file=sys.stderr))
    if d.is_writer:
        _say_skipped(ds)
    log(f"{len(ds)} samples, {ds.n_classes} classes → {args.out}")
    truth, origin = _truth_labels(args, ds, origin)
    t0 = time.perf_counter()
    res = scan(ds, args.out, cfg, progress=not args.quiet, log=log, command=args.argv, origin=origin,
               true_labels=truth, force=args.force)  # fmt: skip
    if d.is_writer:
        print_summary(res.run_dir, top=args.top, elapsed=time.perf_counter() - t0)
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from labeltrace import rundir
    from labeltrace.decide.ranking import score_table
    from labeltrace.report.summary import printable

    run = rundir.open_run(args.run_dir)
    kw: dict = {}
    if args.epoch is not None:
        kw["epoch"] = args.epoch
    if args.window:
        a, _, b = args.window.partition(":")
        try:
            w = slice(int(a) if a else None, int(b) if b else None)
        except ValueError:
            raise ValueError(f"--window must be START:STOP (epochs, either may be left out), got {args.window!r}") from None
        t = run.recorder(0).num_epochs  # either view of a cross-fitted run: the same epochs
        if not range(t)[w]:
            raise ValueError(f"--window {args.window} selects none of the {t} recorded epochs (0..{t - 1})")
        kw["epochs"] = w
    table = score_table(run, args.method, held_out=args.held_out, **kw)
    if args.out:
        rundir.write_table(Path(args.out), table)
        print(f"wrote {args.out}")
    else:
        for row in table.slice(0, args.top).to_pylist():
            print(f"{row['rank']:>6}  id {row['id']:>7}  {printable(row['external_id']):<30}  "
                  f"{args.method} {row[args.method]: .4f}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from labeltrace.report import write_report

    out = write_report(args.run_dir, args.out, format=args.format, top=args.top,
                       warn=lambda m: print(f"warning: {m}", file=sys.stderr))  # fmt: skip
    print(f"wrote {out}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from labeltrace import export

    if args.from_labelstudio:
        export.import_labelstudio(args.run_dir, args.from_labelstudio, info=print,
                                  warn=lambda msg: print(f"warning: {msg}", file=sys.stderr))
        return 0
    if not args.to:
        raise ValueError("give --to labelstudio|fiftyone|csv|parquet or --from-labelstudio EXPORT.json")
    if args.max_side is not None and (args.to != "labelstudio" or args.images != "data-uri"):
        raise ValueError("--max-side sets the size of the images a Label Studio export embeds (--to labelstudio "
                         "--images data-uri); nothing else is resized")
    max_side = export.MAX_SIDE if args.max_side is None else args.max_side or None
    said: list[str] = []
    out = export.export_run(args.run_dir, args.to, args.out, images=args.images, document_root=args.document_root,
                            only_suspects=args.only_suspects, overwrite=args.overwrite, update=args.update, max_side=max_side,
                            warn=lambda msg: print(f"warning: {msg}", file=sys.stderr), info=said.append)  # fmt: skip
    print(f"{'updated' if args.update else 'wrote'} {out}")
    if args.to == "labelstudio":  # without it, a project has no 'unsure' / 'exclude' choice to submit
        config = Path(out).with_name(Path(out).stem + ".config.xml")
        print(f"the labeling config: {config} — paste it into the Label Studio project (Settings › Labeling "
              "Interface › Code) before importing the tasks: its class choices and its review choices "
              "('unsure', 'exclude') are what --from-labelstudio reads back")  # fmt: skip
    for line in said:  # the local-files setup Label Studio needs
        print(line)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from labeltrace.bench import run_from_args

    return run_from_args(args)


def _resolution(s: str) -> int | None:
    """``--resolution``: ``auto`` (None) or a positive number of pixels."""
    if s == "auto":
        return None
    try:
        v = int(s)
    except ValueError:
        v = 0
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected auto or a positive number of pixels, got {s!r}")
    return v


def build_parser(*, training_given: bool = False) -> argparse.ArgumentParser:
    """The command line. ``training_given``: scan's training settings default to nothing (argparse's
    ``SUPPRESS``), so a parse holds just those the command line named — resolved as argparse resolves
    them (an option's full name is itself; a unique prefix of one, its abbreviation)."""
    from labeltrace import __version__
    from labeltrace.decide import detectors as table
    from labeltrace.score.trajectory import available

    detectors = table.available()

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
        "(samples.parquet, run.json, saved dynamics). A killed scan re-run with the same command resumes. "
        "Under torchrun --nproc_per_node N every training runs data-parallel (gloo on CPU, NCCL on GPU) and rank 0 "
        "writes the run directory.",
    )
    s.add_argument("data", nargs="?", help="image folder (one sub-folder per class), manifest .csv/.parquet, or .npz")
    s.add_argument("--labels", help="manifest (path,label[,id]); paths relative to DATA if given, else to the manifest")
    s.add_argument("--example", choices=["digits"], help="built-in dataset that needs no download")
    s.add_argument("--out", required=True, help="run directory to write")
    s.add_argument("--model", default="auto", choices=["auto", "small-cnn", "effnet-lite0", "clip"],
                   help="auto (default): whichever of small-cnn (from scratch) and effnet-lite0 (frozen "
                   "pretrained features) predicts held-out labels better in a quick 3-fold probe on up to 600 "
                   "samples; clip: CLIP image encoder + text prompts (needs --clip-model)")
    s.add_argument("--clip-model", help="clip: local directory (save_pretrained) or a hub name already cached")
    s.add_argument("--clip-template", default="a photo of a {}", help="clip: class prompt template")
    s.add_argument("--aux-prompt", default="a photo of something else",
                   help="clip: prompt of the auxiliary class, e.g. 'a dermoscopic image showing other lesions'")
    s.add_argument("--head", default="mlp", choices=["mlp", "linear"], help="head on frozen effnet features")
    s.add_argument("--hidden", type=int, help="effnet-lite0 mlp head width (default 256)")
    s.add_argument("--finetune", action="store_true",
                   help="effnet-lite0: train the whole network on the images (lr 1e-3; meant for a GPU) "
                        "instead of a head on cached frozen features")
    s.add_argument("--epochs", type=int, help="training epochs per run (default depends on the model)")
    s.add_argument("--recording", metavar="RECORDER.npz",
                   help="no training: score the recording of a training you ran (a labeltrace Recorder saved with "
                        "rec.save, sample i = the i-th sample of DATA: a folder in labeltrace's order, class by "
                        "class, files sorted by path — in nested folders not torchvision ImageFolder's, which a "
                        "warning says; a manifest in its rows' order) and write its run directory for the report, "
                        "review, export and queue (labeltrace.write_run); no training setting goes with it")
    s.add_argument("--features", metavar="FILE.npy",
                   help="--recording: your network's (N, D) embeddings of DATA's samples, in their order "
                        "(the count reads their nearest neighbours' labels; the queue reads them)")
    s.add_argument("--detector", default=None, choices=detectors, metavar="DETECTOR",
                   help="score and cutoff that flag suspects (default crossfit; with --recording single) (the "
                        "detector table; see benchmarks/RESULTS.md for which wins where): " + "; ".join(f"{n}: {table.get(n).summary}" for n in detectors))
    s.add_argument("--folds", type=int, default=5,
                   help="crossfit and cross-validated probabilities: number of folds = models trained (default 5)")
    s.add_argument("--early-stop", action=argparse.BooleanOptionalAction, default=None,
                   help="crossfit: stop training once the ranking is stable — the suspects at the estimated "
                        "count change by < 1%% in each of 3 epochs (default off: docs/scale.md)")
    s.add_argument("--runs", type=int, default=2, choices=[1, 2],
                   help="in-sample detectors: 2 runs with disjoint auxiliary sets (default); 1: one run, no "
                        "auxiliary class (the auxiliary cuts become a two-component GMM, capped at 0 for signed entropies)")
    s.add_argument("--noise", help="inject synthetic noise first and report detection metrics: "
                   "symmetric:0.2 | pair:0.2 | confusion:0.3 | instance:0.2")
    s.add_argument("--truth-column", help="manifest column with known true labels: report detection metrics "
                   "against them (benchmarks on real noise such as CIFAR-10N)")
    s.add_argument("--seed", type=int, default=0,
                   help="seed of every random step of the scan: the model probe, folds, auxiliary sets, "
                        "training, --noise (default 0); the flagging's own draws are fixed, so one recording "
                        "always gives the same flags")
    s.add_argument("--batch-size", type=int, help="batch size (default depends on the model)")
    s.add_argument("--lr", type=float, help="learning rate (default depends on the model)")
    s.add_argument("--weight-decay", type=float, help="weight decay (default depends on the model)")
    s.add_argument("--schedule", default="cosine", choices=["cosine", "step", "constant"], help="(default cosine)")
    s.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random crop + flip (default off)")
    s.add_argument("--image-size", type=int, help="input side of a network on the images (small-cnn: default native if "
                   "<= 64, else 64; clip and --finetune: default native, 224 when the sizes differ)")
    s.add_argument("--width", type=int, help="small-cnn base width (channels of the first stage; default 16 for images <= 32 px, else 32)")
    s.add_argument("--resolution", type=_resolution, default=None, metavar="auto|PX",
                   help="effnet-lite0 feature resolution in px, or auto (default): 224 when its frozen features "
                   "predict held-out labels better than 96 px's by >= 0.03 in a quick 3-fold probe on up to 600 "
                   "samples, else 96 (224 costs about 7x the extraction; on small sets of natural photos it flags "
                   "fewer hard-but-clean images: benchmarks/RESULTS.md)")
    s.add_argument("--cache-dir", help="feature cache (default ~/.cache/labeltrace/features)")
    s.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None,
                   help="decode the images batch by batch in worker processes instead of holding them in memory "
                        "(frozen features: read from their cache file batch by batch); default: stream when the "
                        "in-memory inputs would exceed 2 GiB")
    s.add_argument("--workers", type=int, metavar="N",
                   help="decoding processes when streaming (default: CPUs - 1, at most 8; 0: in the main process)")
    s.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1 ...")
    s.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"],
                   help="the training's forward passes: float32, or bfloat16 under autocast — 1.7x faster for the "
                        "small CNN on a CPU with AMX (Intel Sapphire Rapids and later), 1.4x with AVX512-BF16, "
                        "slower where bfloat16 is emulated; auto (default): bfloat16 for the small CNN under a cross-fitted detector "
                        "(crossfit, the default, and its variants) where the device runs it natively, float32 "
                        "otherwise; a run directory keeps the precision its scan began in (run.json's "
                        "train.precision says what was used; docs/scale.md)")
    s.add_argument("--backbone-precision", default="auto", choices=["auto", "float32", "bfloat16"],
                   help="the frozen backbone's forward passes (effnet-lite0's feature extraction): float32, or "
                        "bfloat16 under autocast — 2-3x faster at 224 px on a CPU with AVX512-BF16; auto (default): "
                        "bfloat16 where the device runs it natively, float32 otherwise (the head still trains as "
                        "--precision says; the features of each precision are cached apart; a run directory keeps "
                        "the precision its scan extracted in; run.json's config.backbone_precision)")
    s.add_argument("--on-bad-image", default="fail", choices=["fail", "skip"], help="(default fail)")
    s.add_argument("--allow-root", action="append", default=[], metavar="DIR",
                   help="also read image files inside DIR (repeatable): files that symlinks, '..' or absolute "
                        "manifest paths lead to outside the data root are refused otherwise")
    s.add_argument("--max-pixels", type=int, metavar="N",
                   help="refuse images whose header declares more than N pixels (default 40000000)")
    s.add_argument("--path-column", default="path", help="manifest column of the image paths (default path)")
    s.add_argument("--label-column", default="label", help="manifest column of the labels (default label)")
    s.add_argument("--id-column", help="manifest column of sample ids (default: 'id' when present, else the path)")
    s.add_argument("--group-by-folder", action="store_true",
                   help="a folder DATA/<class>/<patient>/<image>: the folder below the class folder is the image's "
                        "group, as --group-column's")
    s.add_argument("--group-column", metavar="COLUMN",
                   help="manifest column of each image's group (a patient, a study): the cross-fitted folds keep a "
                        "group together and a sample's nearest neighbours are found outside its group, so that "
                        "another image of the same patient cannot vouch for a wrong label they share")
    s.add_argument("--classes", metavar="FILE",
                   help="the class names of a manifest or .npz, one per line in id order (integer labels are "
                        "positions in it; default: a classes.txt beside the manifest, else 0..K-1 or the sorted names)")
    s.add_argument("--no-missing-markers", action="store_true",
                   help="read manifest labels and ids such as NA, None, null or - as they are (a class named "
                        "'none'); by default they are missing values and refused, and only empty cells are so "
                        "with this flag")
    s.add_argument("--split", help="split of a MedMNIST-style .npz (default train); a .npz only")
    s.add_argument("--csv", action="store_true", help="also write samples.csv")
    s.add_argument("--top", type=non_negative, default=10, help="suspects shown in the summary (default 10)")
    s.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    s.add_argument("--force", action="store_true",
                   help="replace a run directory that holds a scan of another configuration (its review "
                        "decisions stay when this scan has the same samples and classes — they are about the "
                        "images — and are set aside as reviews.db.replaced-<time> otherwise; never deleted)")
    s.set_defaults(func=_cmd_scan)
    for a in s._actions if training_given else ():  # not set_defaults: it would store SUPPRESS as a value
        if a.dest in TRAINING_FLAGS:
            a.default = argparse.SUPPRESS

    sc = sub.add_parser("score", help="recompute a score from a run's saved dynamics (no training)")
    sc.add_argument("run_dir")
    sc.add_argument("--method", required=True, choices=available())
    sc.add_argument("--epoch", type=int, help="epoch for se_at (negative counts from the end)")
    sc.add_argument("--window", help="epochs to integrate, python slice 'a:b'")
    sc.add_argument("--held-out", action="store_true",
                    help="cross-fitted runs: score the held-out dynamics instead of the in-sample ones")
    sc.add_argument("--out", help="write the ranked table (.parquet or .csv)")
    sc.add_argument("--top", type=non_negative, default=20, help="suspects shown (default 20; with --out, the table is written instead)")
    sc.set_defaults(func=_cmd_score)

    add_relabel_commands(sub)

    rp = sub.add_parser("report", help="self-contained HTML report (or PNG figures) of a run")
    rp.add_argument("run_dir")
    rp.add_argument("--out", help="output file (html; an existing folder gets report.html) or folder (png); default inside RUN_DIR")
    rp.add_argument("--format", default="html", choices=["html", "png"])
    rp.add_argument("--top", type=non_negative, default=48, help="suspects shown (default 48, at most 1000)")
    rp.set_defaults(func=_cmd_report)

    ex = sub.add_parser("export", help="export a run to Label Studio / FiftyOne / CSV / Parquet, or import relabels")
    ex.add_argument("run_dir")
    ex.add_argument("--to", choices=["labelstudio", "fiftyone", "csv", "parquet"])
    ex.add_argument("--out", help="output file, default inside RUN_DIR (export.csv, export.parquet, labelstudio_tasks.json); "
                    "fiftyone: the dataset's name, default labeltrace-<RUN_DIR's name>, images of an in-memory run "
                    "written to RUN_DIR/fiftyone_images")
    ex.add_argument("--images", default="data-uri", choices=["data-uri", "local-files"],
                    help="Label Studio: embed images or reference them through local-files storage (default data-uri)")
    ex.add_argument("--document-root", help="Label Studio local-files document root (default: the data root's parent; "
                    "the data root is then the project's Local Files storage, as Label Studio refuses one at its "
                    "document root; an image outside it is refused); the export prints the Label Studio settings it "
                    "needs")
    ex.add_argument("--max-side", type=non_negative, metavar="PX",
                    help="Label Studio data URIs: an image larger than PX on its longer side is embedded shrunk to it "
                    "(default 1024; 0 embeds every image whole)")
    ex.add_argument("--only-suspects", action="store_true", help="export the flagged samples alone (not fiftyone)")
    ex.add_argument("--overwrite", action="store_true",
                    help="fiftyone: replace an existing dataset of that name, an earlier export of this run included (its tags and edits made in FiftyOne are lost; without it, one is refused)")
    ex.add_argument("--update", action="store_true",
                    help="fiftyone: refresh the review fields (review_decision, review_status, final) of an earlier "
                    "export of this run in place, keeping its tags, views and evaluations")
    ex.add_argument("--from-labelstudio", metavar="EXPORT_JSON", help="read relabels back from a Label Studio export")
    ex.set_defaults(func=_cmd_export)

    from labeltrace.bench import add_arguments as _bench_arguments

    be = sub.add_parser("bench", help="benchmark every detector on a grid of datasets, noise, models, seeds",
                        description="Run a TOML grid of datasets x label noise x models x detectors x seeds "
                        "(cached, resumable); write <out>/<name>.csv, .md and plots.")  # fmt: skip
    _bench_arguments(be)
    be.set_defaults(func=_cmd_bench)
    return p


def _warning_printer(default: Any) -> Any:
    """A ``warnings.showwarning`` that prints labeltrace's own warnings (:class:`DataWarning`) as the
    CLI prints its others, ``warning: ...`` (not Python's format with a source line), and hands every
    other warning to ``default``."""
    from labeltrace.data.errors import DataWarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:  # fmt: skip
        if issubclass(category, DataWarning):
            print(f"warning: {message}", file=sys.stderr if file is None else file)
        else:
            default(message, category, filename, lineno, file, line)

    return show


def _output_closed() -> bool:
    """Whether standard output is a pipe whose reader has gone (poll says POLLERR on its write end)."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no real stdout (a test's capture)
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv) if argv is None else ["labeltrace", *argv]  # what run.json records
    # beside --recording, the training settings named (at their defaults too), which it refuses
    if args.command == "scan" and args.recording is not None:
        named = vars(build_parser(training_given=True).parse_args(argv))
        args.training_named = sorted(set(named) & set(TRAINING_FLAGS))
    if argv is None and Path(sys.argv[0]).name == "__main__.py":  # python -m labeltrace: a command to paste
        args.argv = [sys.executable, "-m", "labeltrace", *sys.argv[1:]]
    with warnings.catch_warnings():
        warnings.showwarning = _warning_printer(warnings.showwarning)
        try:
            return int(args.func(args))
        except BrokenPipeError as e:  # `labeltrace queue ... | head`: the reader has what it wanted
            if _output_closed():  # quietly, and not again at exit's flush
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 141  # what a shell reports for a command a closed pipe stopped (128 + SIGPIPE)
            print(f"error: {e}", file=sys.stderr)  # another pipe (a worker's, a FIFO): an error like any
            return 2
        except (ValueError, OSError, ImportError) as e:  # DataError, a missing path or an optional extra: a message
            print(f"error: {e}", file=sys.stderr)
            return 2
        except sqlite3.Error as e:  # the review decisions file: a full disk, a lock, a damaged file
            print(f"error: the review decisions file ({REVIEWS_DB}) could not be read or written: {e}; nothing "
                  "was changed in it (a full disk? free some space and run the command again)", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # Ctrl-C: a line, not a traceback (bench says its own before this)
            print("\ninterrupted" + (": the same command resumes the scan from its last finished epoch"
                                     if args.command == "scan" else ""), file=sys.stderr)  # fmt: skip
            return 130


if __name__ == "__main__":
    raise SystemExit(main())
