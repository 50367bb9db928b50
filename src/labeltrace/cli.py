"""Command line: argument parsing only; every command delegates to a module (queue, simulate and
review live in :mod:`labeltrace.cli_relabel`, scan's arguments in :mod:`labeltrace.cli_scan`)."""

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

from labeltrace._checks import utf8_text
from labeltrace.cli_data import (  # cli._load_dataset: patched by tests
    _check_truth_column,
    _load_dataset,
    _say_skipped,
    _truth_labels,
)
from labeltrace.cli_own import _check_flags, scan_recording
from labeltrace.cli_relabel import add_relabel_commands, non_negative
from labeltrace.cli_scan import add_scan_parser
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
    from labeltrace.score import trajectory

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
    takes = trajectory.parameters(args.method)  # None: any
    flag_of = {"epoch": "--epoch", "epochs": "--window"}
    extra = [] if takes is None else [flag_of[k] for k in kw if k not in takes]
    if extra:  # in the command line's words, not the function's
        raise ValueError(f"--method {args.method} takes no {' or '.join(extra)} (it takes: "
                         f"{', '.join(flag_of.get(k, k) for k in takes or []) or 'neither'})")
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
        given = [flag for flag, v in (("--to", args.to), ("--out", args.out), ("--only-suspects", args.only_suspects),
                                      ("--overwrite", args.overwrite), ("--update", args.update),
                                      ("--max-side", args.max_side), ("--document-root", args.document_root),
                                      ("--images", args.images != "data-uri")) if v not in (None, False)]
        if given:  # an import writes no export: these would be ignored
            raise ValueError(f"--from-labelstudio reads the relabels back into the run and writes no export; leave "
                             f"out {' '.join(given)} (export in a command of its own)")
        export.import_labelstudio(args.run_dir, args.from_labelstudio, info=print, by=args.by,
                                  warn=lambda msg: print(f"warning: {msg}", file=sys.stderr))
        return 0
    if args.by != "labeltrace_id":
        raise ValueError("--by says how --from-labelstudio matches a Label Studio export's tasks to samples; "
                         "an export writes its own ids")
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


def build_parser(*, named_only: bool = False) -> argparse.ArgumentParser:
    """The command line. ``named_only``: every option defaults to nothing (argparse's ``SUPPRESS``)
    and no command sets its own defaults, so a parse holds just what the command line named —
    resolved as argparse resolves it (an option's full name is itself; a unique prefix of one, its
    abbreviation); :func:`named_options`."""
    from labeltrace import __version__
    from labeltrace.score.trajectory import available

    p = argparse.ArgumentParser(
        prog="labeltrace",
        description="Find mislabeled images from training dynamics and get them fixed.",
    )
    p.add_argument("--version", action="version", version=f"labeltrace {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    add_scan_parser(sub, _cmd_scan)

    sc = sub.add_parser("score", help="recompute a score from a run's saved dynamics (no training)")
    sc.add_argument("run_dir")
    sc.add_argument("--method", required=True, choices=available())
    sc.add_argument("--epoch", type=int, help="epoch for se_at (negative counts from the end)")
    sc.add_argument("--window", help="epochs to integrate, python slice 'a:b' (one starting with '-': --window=-2:)")
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
    ex.add_argument("--by", choices=("labeltrace_id", "external_id"), default="labeltrace_id",
                    help="with --from-labelstudio: match each task to a sample by its labeltrace_id (default; it "
                    "must agree with the task's external_id) or by its external_id alone — a task file exported "
                    "from an earlier scan of the same images, which this scan numbers otherwise")
    ex.set_defaults(func=_cmd_export)

    from labeltrace.bench import add_arguments as _bench_arguments

    be = sub.add_parser("bench", help="benchmark every detector on a grid of datasets, noise, models, seeds",
                        description="Run a TOML grid of datasets x label noise x models x detectors x seeds "
                        "(cached, resumable); write <out>/<name>.csv, .md and plots.")  # fmt: skip
    _bench_arguments(be)
    be.set_defaults(func=_cmd_bench)
    if named_only:
        _suppress_defaults(p)
    return p


def _suppress_defaults(parser: argparse.ArgumentParser) -> None:
    """Every option of ``parser`` and its subcommands defaults to nothing (not ``set_defaults``: it
    would store SUPPRESS as a value), and the commands' own defaults (their ``func``) are dropped."""
    parser._defaults.clear()
    for a in parser._actions:
        a.default = argparse.SUPPRESS
        if isinstance(a, argparse._SubParsersAction):
            for child in dict.fromkeys(a.choices.values()):  # a command's aliases share its parser
                _suppress_defaults(child)


def named_options(argv: Sequence[str] | None = None) -> frozenset[str]:
    """The destinations (``gamma``, ``hidden``) the command line ``argv`` named, at their defaults
    too: what a command refuses where it does not read it, while its defaults pass unnoticed."""
    return frozenset(vars(build_parser(named_only=True).parse_args(argv))) - {"command"}


def _warning_printer(default: Any) -> Any:
    """A ``warnings.showwarning`` that prints labeltrace's own warnings — :class:`DataWarning`, and a
    plain ``UserWarning`` raised in labeltrace's code (a consensus rule changed, copies left in
    different folds) — as the CLI prints its others, ``warning: ...`` (not Python's format with a
    source line), and hands every other warning to ``default`` (a library's, or numpy's
    ``RuntimeWarning`` wherever it arose)."""
    from labeltrace.data.errors import DataWarning

    package = Path(__file__).resolve().parent

    def ours(filename: str) -> bool:
        try:
            return Path(filename).resolve().is_relative_to(package)
        except (OSError, ValueError):
            return False

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:  # fmt: skip
        if issubclass(category, DataWarning) or (category is UserWarning and ours(filename)):
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


#: options whose own check says more of an empty value than "must not be empty"
_OWN_EMPTY_CHECK = frozenset({"token"})


def _unusable_given(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    """What is wrong with the first option (or argument) of the command given an unusable value, or
    None: an empty one, which was read as not given (`review RUN --export ""` served the review
    instead of exporting) or as the current folder (`scan DATA --out ""`); one that is not UTF-8
    text (`--out $'r\\xff'` trained, then failed writing its tables: they and run.json hold UTF-8)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    sub = subs[0].choices.get(args.command) if subs else None
    for action in [] if sub is None else sub._actions:
        v = getattr(args, action.dest, None)
        values = v if isinstance(v, list) else [v]
        name = action.option_strings[-1] if action.option_strings else action.dest.upper()
        if "" in values and action.default != "" and action.dest not in _OWN_EMPTY_CHECK:
            return f"{name} is empty: give it a value" + (", or leave it out" if name.startswith("-") else "")
        if bad := next((x for x in values if isinstance(x, str) and not utf8_text(x)), None):
            return (f"{name} {bad!r} is not UTF-8 text (a name in another encoding?): labeltrace's tables "
                    "and files hold UTF-8 text alone; give it in UTF-8")  # fmt: skip
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (wrong := _unusable_given(parser, args)) is not None:  # "$UNSET_VAR" in a script, most often
        print(f"error: {wrong}", file=sys.stderr)
        return 2
    args.argv = list(sys.argv) if argv is None else ["labeltrace", *argv]  # what run.json records
    args.named = named_options(argv)  # scan --recording refuses training settings, queue an unread --gamma
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
        except (FileExistsError, NotADirectoryError) as e:  # "[Errno 17] File exists: 'x'" of a file where a folder goes
            given = [] if e.filename is None else [Path(e.filename), *Path(e.filename).parents]
            file = next((str(f) for f in given if f.is_file()), None)
            print(f"error: {file} is a file, where a folder is needed (to hold what this command writes)"
                  if file is not None else f"error: {e}", file=sys.stderr)  # fmt: skip
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
