"""Command line of the relabeling stage: ``labeltrace queue``, ``simulate`` and ``review`` (their
arguments and handlers; :mod:`labeltrace.cli` registers them). Every handler delegates to
:mod:`labeltrace.relabel` or :mod:`labeltrace.review`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_relabel_commands"]


def seed_list(text: str) -> int | list[int]:
    """argparse type of ``simulate --seeds``: a count N (seeds 0..N-1) or the seeds themselves,
    comma-separated (``5,6,7``: another set than 0..2, to see the spread anew)."""
    try:
        if "," not in text:
            n = int(text)
            if n < 1:
                raise ValueError
            return n
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count >= 1 or comma-separated seeds >= 0, got {text!r}") from None
    if min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct whole numbers >= 0, got {text!r}")
    return seeds


def _checked(convert: Callable[[str], Any], within: Callable[[Any], bool], expected: str,
             refused: str | None = None) -> Callable[[str], Any]:
    """An argparse type: ``convert(text)`` if it converts and lies ``within``, else an error saying
    what was ``expected`` (``refused``: what to say of a value out of range)."""

    def parse(text: str) -> Any:
        try:
            v = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}") from None
        if not within(v):
            raise argparse.ArgumentTypeError(f"{refused or expected}, got {text.strip()}")
        return v

    return parse


#: ``--gamma``: checked whatever the method (a method that does not read it left a wrong value unnoticed)
unit_interval = _checked(float, lambda v: 0.0 <= v <= 1.0, "expected a number in [0, 1]")
#: ``--top``
non_negative = _checked(int, lambda v: v >= 0, "expected a whole number >= 0")
#: a TCP port (0: a free one)
port = _checked(int, lambda v: 0 <= v <= 65535, "expected a port number", "a port lies in 0-65535 (0: a free one)")


#: ``simulate``'s settings of the model behind the selectors that read one (none of the others reads them)
MODEL_SETTINGS = ("features", "epochs", "head", "hidden", "batch_size", "lr", "posterior", "folds", "ensemble",
                  "prune", "active_every", "active_method")


def _unread_settings(args: argparse.Namespace, rules: list[str]) -> None:
    """Refuse a setting the command line named (at its default too) that none of ``rules`` reads
    (``queue --method cross_entropy --gamma 0.5`` ran without one word that gamma went unused):
    :func:`labeltrace.relabel.unread.refuse_unread`, the check the Python functions run."""
    from labeltrace.relabel.unread import refuse_unread

    named: frozenset[str] = getattr(args, "named", frozenset())  # main's: what the command line named
    queue = args.command == "queue"
    refuse_unread(rules, cli=True, gamma="gamma" in named, seed=queue and "seed" in named,
                  model=[] if queue else [n for n in MODEL_SETTINGS if n in named],
                  budget=(args.budget is not None) if queue else None)  # fmt: skip


def _cmd_queue(args: argparse.Namespace) -> int:
    from labeltrace.relabel.queue import write_queue

    _unread_settings(args, [args.method])
    q = write_queue(args.run_dir, args.out, method=args.method, gamma=args.gamma, seed=args.seed,
                    posterior=args.posterior, budget=args.budget, settled_last=not args.requeue_settled)  # fmt: skip
    if q.note:
        print(f"note: {q.note}", file=sys.stderr)
    print(f"wrote {' and '.join(map(str, q.paths))}: {q.table.num_rows} samples by {q.method} priority "
          f"(posterior: {q.posterior.describe()})")  # fmt: skip
    if q.estimate is not None:
        print(q.estimate.message() + f" (simulated {q.estimate.repeats} times, the model's posterior standing "
              f"in for the reviewers; consensus: {q.rule.describe() if q.rule else ''})")  # fmt: skip
        if q.estimate_note:
            print(f"note: {q.estimate_note}", file=sys.stderr)
    from labeltrace.report.summary import printable  # a name's newline or U+202E stays on its row

    for row in q.table.slice(0, args.top).to_pylist():
        ext, given, sugg = (printable(row[c]) for c in ("external_id", "given_label", "suggested_label"))
        print(f"{row['rank']:>6}  id {row['id']:>7}  {ext:<30}  {given} -> "
              f"{sugg} ({row['suggested_prob']:.2f})  priority {row['priority']: .4f}")  # fmt: skip
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from labeltrace.relabel.head import HeadConfig
    from labeltrace.relabel.io import format_summary
    from labeltrace.relabel.simulation import parse_selectors, simulate_files
    from labeltrace.relabel.unread import check_active

    if args.hidden is not None and args.head == "linear":
        raise ValueError("--hidden is the width of the mlp head's hidden layer; a linear head has none")
    check_active(args.active_method, args.active_every, cli=True)
    _unread_settings(args, parse_selectors(args.selectors))
    width = {} if args.hidden is None else {"hidden": args.hidden}  # HeadConfig's own default otherwise
    head = HeadConfig(model=args.head, **width, epochs=args.epochs, batch_size=args.batch_size,
                      lr=args.lr, posterior=args.posterior, folds=args.folds, ensemble=args.ensemble,
                      prune=args.prune)  # fmt: skip
    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr))
    sim, paths = simulate_files(args.votes, args.out, features=args.features, selectors=args.selectors,
                                seeds=args.seeds, noise_rate=args.noise_rate, budget_factor=args.budget_factor,
                                budget=args.budget, head=head, active_every=args.active_every,
                                active_method=args.active_method, gamma=args.gamma,
                                curve_every=args.curve_every, title=args.title, log=log,
                                meta={"command": getattr(args, "argv", sys.argv)})  # fmt: skip
    print(format_summary(sim))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _cmd_review(args: argparse.Namespace) -> int:
    if not args.export:
        try:
            import fastapi  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError as exc:
            if exc.name not in ("fastapi", "uvicorn"):  # installed, but broken: its own words
                raise
            from labeltrace.data.errors import MissingDependencyError

            raise MissingDependencyError(f"labeltrace review serves its page with FastAPI and uvicorn, an optional "
                                         f"extra ({exc}): pip install 'labeltrace[review]'") from exc  # fmt: skip
    from labeltrace import review
    from labeltrace.relabel.live import LiveConfig

    rule = review_rule(args)
    if args.export:
        from labeltrace.export.cleaned import export_labels

        if rule is not None:
            raise ValueError("--agree / --count-given set the rule of a review session; --export uses the "
                             "rule stored with the decisions")
        if args.blind is not None:
            raise ValueError("--blind / --blind-all set what a review session shows; --export serves no page")
        served = [flag for flag, on in (("--host", args.host != "127.0.0.1"), ("--port", args.port != 8765),
                                        ("--public-url", args.public_url is not None),
                                        ("--reviewer", args.reviewer is not None), ("--live", args.live),
                                        ("--live-every", args.live_every != 20),
                                        ("--live-method", args.live_method != "propagation"),
                                        ("--features", args.features is not None)) if on]  # fmt: skip
        if served:  # accepted and never read
            raise ValueError(f"{', '.join(served)} {'sets' if len(served) == 1 else 'set'} the review server; "
                             "--export serves no page: leave " + ("it" if len(served) == 1 else "them") + " out")
        out = export_labels(args.run_dir, args.export,
                            report=lambda m: print(m, file=sys.stderr if m.startswith("warning:") else sys.stdout))
        beside = out.with_suffix(".csv") if out.suffix.lower() in (".npy", ".npz") else None  # an array run's ids, names
        print(f"wrote {out}" + (f" and {beside} (ids, label names, review columns)" if beside else ""))
        import shlex

        from labeltrace._checks import listing
        from labeltrace.export.cleaned_npz import npz_source
        from labeltrace.export.rescan import rescan_command
        from labeltrace.relabel.verdicts import run_verdicts
        from labeltrace.rundir import open_run

        run = open_run(args.run_dir)
        v = run_verdicts(run)
        decided, changed = int((v.status_text() != "").sum()), int(v.changed.sum())
        excluded = int(v.excluded.sum())
        print(f"{decided:,} of {run.num_samples:,} samples have a decision (a skip too), {changed:,} "
              f"label{'s' if changed != 1 else ''} changed" + (f", {excluded:,} excluded" if excluded else "")
              + ("" if changed or excluded else f": {out} holds the given labels"))
        cmd = rescan_command(run, out)
        if cmd is not None and run.own_training:  # labeltrace.write_run's: the user's training is the rescan
            skipped = [str(s[0]) for s in run.meta["data"].get("skipped") or []]
            rows = (f"the rows of {out} in order, as sample ids 0, 1, ... — leaving out the {len(skipped)} unreadable "
                    f"files the scan skipped, which take no id ({listing(skipped)})" if skipped else
                    f"each image i of {out}'s split as sample id i" if out.suffix.lower() == ".npz" else
                    f"each row i of {out} as sample id i")  # fmt: skip
            print(f"to check the cleaned labels: train on them as before, recording {rows}; save the recorder "
                  f"(rec.save) and, where the command reads them, your network's features of those samples, then: "
                  f"{cmd}")
        elif cmd is not None:
            print(f"to scan with the cleaned labels: {cmd}")
        elif out.suffix.lower() != ".npz" and npz_source(run) is not None:  # the file a scan reads: an .npz
            print(f"to scan with the cleaned labels: labeltrace review {shlex.quote(str(args.run_dir))} --export "
                  f"{shlex.quote(str(out.with_suffix('.npz')))} writes the scanned .npz again with them, and the "
                  "command to scan it")  # fmt: skip
        return 0
    if not args.live and (args.live_every != 20 or args.live_method != "propagation"):  # read by --live alone
        raise ValueError("--live-every / --live-method set the live re-ranking: give --live too, or leave them out")
    live = LiveConfig(method=args.live_method, every=args.live_every) if args.live else None
    review.serve(args.run_dir, host=args.host, port=args.port, token=args.token, reviewer=args.reviewer,
                 consensus=rule, live=live, features=args.features, blind=args.blind,
                 public_url=args.public_url)  # fmt: skip
    return 0


def review_rule(args: argparse.Namespace) -> Any:
    """The consensus rule ``review --agree / --count-given`` sets, or None when neither is given;
    the flag left out keeps the value stored with the run's decisions."""
    from labeltrace.relabel.consensus import ConsensusRule

    if args.agree is None and args.count_given is None:
        return None
    from labeltrace.relabel.runstore import run_store
    from labeltrace.rundir import open_run

    stored = run_store(open_run(args.run_dir)).rule()
    return ConsensusRule(agree=stored.agree if args.agree is None else args.agree,
                         count_given=stored.count_given if args.count_given is None else args.count_given)


def _cmd_relocate(args: argparse.Namespace) -> int:
    from labeltrace.run_moved import relocate

    found, n = relocate(args.run_dir, args.data_root)
    new = Path(args.data_root).expanduser().resolve()
    if new.is_file():  # an .npz, checked whole
        print(f"{args.run_dir}: its images are now read from {new} (the scanned pixels, all {n}); a review server "
              "already running on it: restart it")  # fmt: skip
        return 0
    print(f"{args.run_dir}: its images are now read under {new} ({found} of {n} image "
          "files found there" + ("" if found == n else f"; {n - found} missing or changed since the scan: the page "
                                 "and report show them as unavailable") + "); a review server already running on it: restart it")  # fmt: skip
    return 0


def add_relabel_commands(sub: Any) -> None:
    """Add ``queue``, ``simulate``, ``review`` and ``relocate`` to ``sub`` (an argparse subparsers object)."""
    rl = sub.add_parser("relocate", help="say where a run's images folder (or .npz) lies now (moved or copied elsewhere)",
                        description="The scan read its images from a folder (or an .npz) that has moved (the run copied "
                        "to the reviewer's machine, a disk mounted elsewhere): the report, the review page and the "
                        "exports read them under DATA_ROOT from now on (an .npz: from that file, once checked to hold "
                        "the scanned pixels). run.json is not changed; a new scan removes this.")
    rl.add_argument("run_dir")
    rl.add_argument("data_root", help="the folder that now holds what the scan read from its data root (a run scanned "
                    "from an .npz: the file's new path)")
    rl.set_defaults(func=_cmd_relocate)
    qu = sub.add_parser("queue", help="order a run's samples for relabeling (active label cleaning)",
                        description="Write the review queue of a scan run: id, external_id, path, given and suggested "
                        "label, priority, rank; also RUN_DIR/queue.parquet, the order the review app serves. With "
                        "--budget B, also estimate what B reviews fix.")  # fmt: skip
    qu.add_argument("run_dir")
    from labeltrace.relabel.queue import DEFAULT_METHOD, queue_methods

    qu.add_argument("--method", default=DEFAULT_METHOD, choices=queue_methods(),
                    help=f"relabel priority (default {DEFAULT_METHOD}; benchmarks/RESULTS.md says which wins where)")
    qu.add_argument("--out", required=True, help="queue file to write (.csv or .parquet)")
    qu.add_argument("--gamma", type=unit_interval, default=0.3, help="ambiguity threshold of joint / sei_joint (default 0.3)")
    qu.add_argument("--posterior", default="auto", choices=["auto", "last", "mean"],
                    help="auto (default): a cross-fitted run's held-out posterior averaged over every epoch, an "
                    "in-sample run's mean softmax over the last 5 epochs; last / mean: that window on the run's "
                    "dynamics")
    qu.add_argument("--budget", type=int, metavar="B",
                    help="also print what B reviews of the queue are expected to fix (with the range of 95 %% of the simulated "
                    "reviews: the model's own errors are not in it): the first B "
                    "samples under single-expert review, fewer when the consensus rule stored with the decisions asks "
                    "several reviews of a sample; "
                    "simulated with the model's posterior standing in for the reviewers")
    qu.add_argument("--seed", type=non_negative, default=0,
                    help="seed of --method random and of the --budget estimate's simulated reviews (default 0)")
    qu.add_argument("--requeue-settled", action="store_true",
                    help="keep the samples an earlier review round settled in priority order (default: after all "
                    "others; a cleaned manifest from review --export, scanned again, says which: its review_status "
                    "consensus on the sample's label)")
    qu.add_argument("--top", type=non_negative, default=10, help="queue items shown (default 10)")
    qu.set_defaults(func=_cmd_queue)

    si = sub.add_parser("simulate", help="simulate relabeling campaigns on real annotator votes",
                        description="Draw noisy labels from real vote counts, train a head on FEATURES, and "
                        "compare relabel selectors by how fast a simulated annotator fixes the labels.")  # fmt: skip
    si.add_argument("--votes", required=True,
                    help="CSV with votes_<class> count columns (CIFAR-10H layout) or an (N, K) .npy")  # fmt: skip
    si.add_argument("--features", help="(N, D) .npy features, rows aligned with the votes (needed by model selectors); "
                    "several files separated by commas are views of the same images (e.g. one backbone at several "
                    "resolutions): a head is trained on each and their posteriors averaged")
    from labeltrace.relabel.priority import DEFAULT_SELECTORS

    si.add_argument("--selectors", default=",".join(DEFAULT_SELECTORS),
                    help="comma-separated relabel priorities (labeltrace.relabel.priority; default: %(default)s)")  # fmt: skip
    si.add_argument("--seeds", type=seed_list, default=5,
                    help="a number of seeds N (0..N-1; default 5) or the seeds themselves, comma-separated (5,6,7)")
    si.add_argument("--noise-rate", type=float, default=0.15, help="initial label noise rate (default 0.15)")
    si.add_argument("--budget-factor", type=float, default=3.0, help="budget = factor x round(--noise-rate x N), the noisy labels expected (default 3.0)")
    si.add_argument("--budget", type=int, help="budget in relabels (overrides --budget-factor)")
    si.add_argument("--out", required=True, help="output folder (curves.csv, summary.csv, seeds.csv, simulation.json, campaign.png)")
    si.add_argument("--epochs", type=int, default=20, help="head epochs (default 20)")
    si.add_argument("--head", default="mlp", choices=["mlp", "linear"])
    si.add_argument("--hidden", type=int, help="mlp head width (default 256)")
    si.add_argument("--batch-size", type=int, default=256, help="(default 256)")
    si.add_argument("--lr", type=float, default=0.01, help="head learning rate (default 0.01)")
    si.add_argument("--posterior", default="mean", choices=["mean", "last"],
                    help="trajectory-mean softmax (default) or mean over the last 5 epochs")  # fmt: skip
    si.add_argument("--gamma", type=unit_interval, default=0.3, help="ambiguity threshold of joint / sei_joint (default 0.3)")
    si.add_argument("--folds", type=int, default=1,
                    help="1: one head trained on every sample (in-sample posterior, default); F >= 2: F cross-fitted "
                    "heads, every posterior from the head that held the sample out (as labeltrace scan's crossfit)")
    si.add_argument("--ensemble", type=int, default=1,
                    help="heads trained from different seeds and averaged (posterior and SEI); default 1")
    si.add_argument("--prune", action="store_true",
                    help="in-sample head retrained without the samples its first run contradicts; those get the "
                    "second head's held-out posterior (twice the training cost)")
    si.add_argument("--active-every", type=int,
                    help="live re-ranking: refresh the posterior from the current labels every M relabels")
    si.add_argument("--active-method", default="head", choices=["head", "propagation"],
                    help="how --active-every refreshes: retrain the head (default) or propagate the corrected "
                    "labels to their 10 nearest neighbours (milliseconds; the review app's live default)")
    si.add_argument("--curve-every", type=int, default=1, help="write every n-th point of the curves")
    si.add_argument("--title", help="plot title")
    si.add_argument("--quiet", action="store_true")
    si.set_defaults(func=_cmd_simulate)

    rv = sub.add_parser("review", help="browser review page for the expert (decisions saved to RUN_DIR/reviews.db)",
                        description="Serve the review page of a run: one sample at a time in queue order, with its "
                        "top-3 classes, trajectory and nearest examples; every decision saved at once. Several "
                        "reviewers may share it (--agree), and the order may re-rank itself as decisions arrive "
                        "(--live).")
    rv.add_argument("run_dir")
    rv.add_argument("--host", default="127.0.0.1", help="bind address (default loopback; for other machines, "
                    "behind an HTTPS proxy or an SSH tunnel: the server speaks plain HTTP)")
    rv.add_argument("--port", type=port, default=8765, help="(default 8765; 0: a free one, printed)")
    rv.add_argument("--token", default=os.environ.get("LABELTRACE_TOKEN") or None,
                    help="access token, at least 16 printable ASCII characters without spaces (an empty or shorter "
                    "one is an error); default: the LABELTRACE_TOKEN environment variable (other users of the "
                    "machine see a --token in `ps`), else one generated and printed, on loopback too. The printed "
                    "URL carries it after '#', which a browser never sends; scripts send it as header "
                    "X-Labeltrace-Token (never in a URL)")
    rv.add_argument("--public-url", metavar="URL",
                    help="the address reviewers open behind a reverse proxy (https://HOST/labeltrace/): the printed "
                    "link is this one, with the token, instead of the server's own address, which only the proxy "
                    "reaches")
    rv.add_argument("--reviewer", help="reviewer name recorded with each decision")
    rv.add_argument("--agree", type=int, metavar="R",
                    help="agreeing reviews a sample needs, and more than any other label has (a tie waits for "
                    "another vote); stored with the decisions; default: the stored rule, else 1 = single-expert review. Above 1 "
                    "(or with --count-given) every decision needs a reviewer name")
    rv.add_argument("--count-given", action=argparse.BooleanOptionalAction, default=None,
                    help="the given label counts as one vote (a change then needs a second reviewer, so every "
                    "decision needs a reviewer name); stored with the decisions; default: the stored rule, else not")
    rv.add_argument("--live", action="store_true",
                    help="re-rank the samples no one has been shown as decisions arrive, in the background (the "
                    "samples shown and the decided ones stay; the most suspect are dealt in turn to the "
                    "positions right after each active reviewer); without a queue file the order starts as "
                    "`labeltrace queue` would write it by default, not the scan's rank")
    rv.add_argument("--live-every", type=int, default=20, metavar="M", help="settled samples between re-rankings (default 20)")
    rv.add_argument("--live-method", default="propagation", choices=["propagation", "head"],
                    help="propagation (default): corrected labels shift their 10 nearest neighbours' posteriors "
                    "(milliseconds); head: retrain a head on the run's features (seconds to minutes)")
    rv.add_argument("--features", metavar="FILE.npy",
                    help="(N, D) features, rows = sample ids, for the neighbours shown and the live refresh "
                    "(default: the scan's network embedding or frozen features, else shrunk images)")
    blind = rv.add_mutually_exclusive_group()
    blind.add_argument("--blind", dest="blind", action="store_const", const="model",
                       help="blind review, for reads anchored on neither the model nor colleagues: the model's "
                       "suggestion, scores, trajectory and nearest examples and the other reviewers' decisions "
                       "are hidden; decisions are stored with source app-blind")
    blind.add_argument("--blind-all", dest="blind", action="store_const", const="all",
                       help="as --blind, and the given label is hidden too: the class is named from the image "
                       "alone (source app-blind-all)")
    rv.add_argument("--export", metavar="FILE",
                    help="write the cleaned label file instead of serving (labels by consensus; the samples "
                    "without one listed beside it in FILE's stem + .unresolved.csv, and, where a scan can read "
                    "them again, the class list in .classes.txt); a run scanned with --noise is refused: labeltrace export RUN_DIR --to csv lists "
                    "its decisions")
    rv.set_defaults(func=_cmd_review)
