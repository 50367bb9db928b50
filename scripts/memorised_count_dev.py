"""Does the small-set count need the in-sample guard where the models did not memorise? A dev study
(no test cell): for every small dev cell (N < ``count.LARGE``) it writes what crossfit's count rules read
— the held-out and in-sample posteriors as the default detector mixes them — to one JSON line per cell
and seed, so candidate rules are compared without training again.

    python scripts/memorised_count_dev.py --cache /work/cache/bench --dump DUMP.jsonl [--only a,b]
    gzip -c DUMP.jsonl > benchmarks/results/dev-memorised-count.jsonl.gz
    python scripts/memorised_count_dev.py --dump benchmarks/results/dev-memorised-count.jsonl.gz --report \
        > benchmarks/results/dev-memorised-count.md

Per cell: ``n`` CL's count and ``r`` its rate × N on the held-out posterior (the small-set default is
their geometric mean), ``m`` = ``count.IN_SAMPLE_FACTOR`` × CL's count on the mean of the held-out and
in-sample posteriors (the large-set guard), the held-out and in-sample contradictions (argmax ≠ label)
and ``kept``: the share of the held-out contradictions that the in-sample posterior no longer contradicts
(1: the fold models memorised every label they were shown, as a head memorises a two-class set of a
few thousand; near 0: they could not, as a head on 96 px features cannot 2,000 photos of ten classes),
and the F1 of the crossfit ranking cut at each count.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from dev_cells import SMALL_DEV, dev_cells, parse_args  # scripts/, run as a script

from labeltrace.decide import count as C
from labeltrace.decide import detectors

HEAD = """# Does the small-set count need the in-sample guard where the models did not memorise? (dev only)

`python scripts/memorised_count_dev.py --dump benchmarks/results/dev-memorised-count.jsonl.gz --report > benchmarks/results/dev-memorised-count.md`
(the dump, written by the same script without `--report` — `--cache /work/cache/bench --dump FILE.jsonl`, then gzip — holds what the rules read of each small dev cell
of `configs/dev.toml`; each entry: count (F1 of the crossfit ranking cut there); `kept`: the share of the
held-out contradictions the in-sample posterior no longer contradicts; `m`: 2.5 × CL's count on the mean of
the held-out and in-sample posteriors as the default mixes them, `m_raw` the same unmixed; K: classes).
"""

LOW = ("digits-low", "pneumoniamnist-val-low", "breastmnist-val-low", "pneumoniamnist-train-rest-low")


def cell_stats(held: np.ndarray, ins: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """What the candidate rules read of one cell (no truth)."""
    n, r = C.cl_count(held, labels), C.cl_rate_count(held, labels)
    m = C.round_half_up(C.IN_SAMPLE_FACTOR * C.cl_count((held + ins) / 2, labels))
    out_wrong = held.argmax(1) != labels
    in_wrong = ins.argmax(1) != labels
    kept = float(1 - in_wrong[out_wrong].mean()) if out_wrong.any() else 1.0
    rows = np.arange(len(labels))
    return {"n": n, "r": r, "g": int(round(float(np.sqrt(n * r)))), "m": m,
            "out_wrong": int(out_wrong.sum()), "in_wrong": int(in_wrong.sum()), "kept": kept,
            "pg_held": float(held[rows, labels].mean()), "pg_in": float(ins[rows, labels].mean()),
            "n_in": C.cl_count(ins, labels)}  # fmt: skip


def _records(path: Path) -> list[dict]:
    """The dump's records (a ``.gz`` one read as such: the committed copy is compressed)."""
    import gzip

    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    return [json.loads(s) for s in text.splitlines()]


def dump(a: argparse.Namespace, path: Path) -> None:
    if path.suffix == ".gz":  # appended to as text, a compressed dump would be damaged
        raise SystemExit(f"--dump {path}: write a plain .jsonl (gzip it for the commit), not the .gz itself")
    done = set()
    if path.is_file():
        done = {(d["cell"], d["seed"]) for d in _records(path)}
    names = tuple(a.only.split(",")) if a.only else SMALL_DEV + LOW
    for cell, runner in dev_cells(a.config, a.cache, names):
        label = f"{cell.dataset.name} {cell.labels} {cell.model.name}"
        if (label, cell.seed) in done or len(runner.given) >= C.LARGE:
            continue
        ev = runner.evidence(embedding_from="held_out")
        held, ins = detectors._crossfit_posteriors(ev)
        raw_held, raw_ins = detectors._held_posteriors(ev)
        score = detectors.get("crossfit").score(ev)
        truth = runner.truth
        order = np.argsort(score, kind="stable")
        rec = {"cell": label, "seed": cell.seed, "N": len(truth), "true": int(truth.sum()),
               "hits": np.cumsum(truth[order]).astype(int).tolist(), "K": int(held.shape[1]),
               "m_raw": C.round_half_up(C.IN_SAMPLE_FACTOR * C.cl_count((raw_held + raw_ins) / 2, ev.labels)),
               **cell_stats(held, ins, ev.labels)}  # fmt: skip
        with path.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(label, cell.seed, {k: rec[k] for k in ("N", "true", "n", "r", "g", "m", "kept")}, flush=True)


def f1_hits(rec: dict, k: int) -> float:
    if not rec["true"]:
        return float("nan")
    return 0.0 if k <= 0 else 2 * rec["hits"][min(k, rec["N"]) - 1] / (k + rec["true"])


RULES = {
    "geomean (default)": lambda d: d["g"],
    "min(geomean, m)": lambda d: min(d["g"], d["m"]),
    **{f"kept<{t}: min(geomean, m)": (lambda t: lambda d: min(d["g"], d["m"]) if d["kept"] < t else d["g"])(t)
       for t in (0.5, 0.8, 0.9)},
    "min(geomean, m_raw)": lambda d: min(d["g"], d["m_raw"]),
    "K>2: min(geomean, m_raw)": lambda d: min(d["g"], d["m_raw"]) if d["K"] > 2 else d["g"],
    "head, K>2: min(geomean, m_raw)": lambda d: min(d["g"], d["m_raw"]) if d["K"] > 2 and _head(d) else d["g"],
}  # fmt: skip


def _head(d: dict) -> bool:
    return d["cell"].endswith("effnet-mlp")


def report(path: Path) -> None:
    recs = _records(path)
    md = path.name.removesuffix(".gz").removesuffix(".jsonl") + ".md"
    print(HEAD.replace("dev-memorised-count.jsonl.gz", path.name).replace("dev-memorised-count.md", md))
    print("| cell | seed | N | true | kept | " + " | ".join(RULES) + " |")
    print("|---|---|---|---|---|" + "---|" * len(RULES))
    f1s: dict[str, list[float]] = {k: [] for k in RULES}
    clean: dict[str, list[float]] = {k: [] for k in RULES}  # the share each rule flags of a clean cell
    for d in recs:
        cells = []
        for name, rule in RULES.items():
            k = rule(d)
            f = f1_hits(d, k)
            (f1s if d["true"] else clean)[name].append(f if d["true"] else k / d["N"])
            cells.append(f"{k} ({f:.3f})" if d["true"] else f"{k}")
        print(f"| {d['cell']} | {d['seed']} | {d['N']} | {d['true']} | {d['kept']:.2f} | " + " | ".join(cells) + " |")
    changed = [d for d in recs if _head(d) and d["K"] > 2]
    rule = RULES["head, K>2: min(geomean, m_raw)"]
    diffs = np.array([f1_hits(d, rule(d)) - f1_hits(d, d["g"]) for d in changed if d["true"]])
    half = 1.96 * diffs.std(ddof=1) / np.sqrt(len(diffs))
    clean_was = [d["g"] / d["N"] for d in changed if not d["true"]]
    clean_now = [rule(d) / d["N"] for d in changed if not d["true"]]
    clean_text = (f"{len(clean_now)} clean, {100 * np.mean(clean_was):.1f} % flagged → "
                  f"{100 * np.mean(clean_now):.1f} %" if clean_now else "no clean cell")  # fmt: skip
    print(f"\nThe cells the chosen rule (head, K>2) changes: {len(diffs)} noisy, F1 {diffs.mean():+.4f} "
          f"[{diffs.mean() - half:+.4f}, {diffs.mean() + half:+.4f}] (paired, 95 % normal interval over cells and "
          f"seeds), smallest {diffs.min():+.4f}; {clean_text}.")
    print("\n| rule | mean F1, noisy cells | mean share flagged, clean cells |\n|---|---|---|")
    for name in RULES:
        shown = f"{100 * np.mean(clean[name]):.2f} % (n={len(clean[name])})" if clean[name] else "–"
        print(f"| {name} | {np.mean(f1s[name]):.4f} (n={len(f1s[name])}) | {shown} |")


if __name__ == "__main__":
    import sys

    want_report = "--report" in sys.argv
    argv = [s for s in sys.argv[1:] if s != "--report"]
    dump_at = None
    if "--dump" in argv:
        i = argv.index("--dump")
        dump_at = Path(argv[i + 1])
        del argv[i : i + 2]
    sys.argv = [sys.argv[0], *argv]
    assert dump_at is not None, "--dump PATH is required"
    if want_report:  # reads the dump alone
        report(dump_at)
    else:
        dump(parse_args(__doc__), dump_at)
