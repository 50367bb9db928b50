"""What the default scan costs on a PneumoniaMNIST-sized set (issue 12 §6): wall time, peak memory
and F1 of ``labeltrace scan`` with ``--model auto`` and with each model forced, 20 % symmetric noise.

    python scripts/cost_scan.py --data /work/shared/data/medmnist/pneumoniamnist_modified.npz \\
        --work /work/cache/cost > benchmarks/results/cost-scan.md
    python scripts/cost_scan.py --data .../pneumoniamnist_modified.npz --work /work/cache/cost-avx512bf16 \
        --name cost-scan-avx512bf16.md > benchmarks/results/cost-scan-avx512bf16.md   # another kind of CPU

Each configuration runs ``/usr/bin/time -v labeltrace scan DATA --noise symmetric:0.2 --model M
--out WORK/M --cache-dir WORK/features-M`` with an empty feature cache, one after the other (run
it alone on the machine: the times are the point). A configuration whose run directory and time
log already exist is read back, not rerun (delete ``WORK/M`` to measure again). Prints one
markdown row per configuration: the model used (and the probe's accuracies for ``auto``), the
precision it trained in (``--precision auto``: bfloat16 for the CNN on a CPU with native bfloat16;
a head on frozen features also the precision they were extracted in, ``--backbone-precision``), wall
seconds, peak RSS, the default detector's flagged count, precision, recall, F1 and AUROC.

``--precision``: instead, the small CNN with float32 and with bfloat16 forward passes
(``--precision bfloat16``), the two in turn, ``--repeats`` times each (default 2) — one pair is
not a measurement on a machine whose speed varies within a session:

    python scripts/cost_scan.py --precision --data .../pneumoniamnist_modified.npz \
        --work /work/cache/cost-precision > benchmarks/results/cost-scan-precision.md
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

MODELS = ("auto", "effnet-lite0", "small-cnn")


def measure(data: str, work: Path, model: str, extra: tuple[str, ...] = (), tag: str = "") -> dict:
    name = f"{model}{tag}"
    out, log = work / name, work / f"{name}.time.log"
    if not ((out / "run.json").is_file() and log.is_file()):
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(work / f"features-{name}", ignore_errors=True)
        cmd = ["/usr/bin/time", "-v", "-o", str(log), sys.executable, "-m", "labeltrace.cli", "scan", data,
               "--model", model, "--noise", "symmetric:0.2", "--out", str(out), "--cache-dir",
               str(work / f"features-{name}"), "--quiet", *extra]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    text = log.read_text()
    h, m, s = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", text).groups()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    meta = json.loads((out / "run.json").read_text())
    return {"meta": meta, "wall": int(h or 0) * 3600 + int(m) * 60 + float(s), "rss_mib": rss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--precision", action="store_true", help="float32 against bfloat16 forward passes, small CNN")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--name", default="cost-scan.md", help="the results file the header's command names")
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    if a.precision:
        return precision_rows(a.data, work, a.repeats)
    print("# The default scan's cost on PneumoniaMNIST train (3,882 28 × 28 grayscale images)\n")
    name = "" if a.name == "cost-scan.md" else f" --name {a.name}"
    print(f"`python scripts/cost_scan.py --data .../pneumoniamnist_modified.npz --work {a.work}{name} "
          f"> benchmarks/results/{a.name}` (20 % symmetric noise, empty feature cache, alone on the 2-core machine)\n")
    print("| --model | model used (probe: small-cnn / effnet-lite0 held-out accuracy) | trained in | wall s "
          "| peak RSS MiB | flagged | true | precision | recall | F1 | AUROC |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for model in MODELS:
        r = measure(a.data, work, model)
        meta, met = r["meta"], r["meta"]["metrics"]
        probe = meta.get("model_probe") or {}
        acc = probe.get("accuracy") or {}
        used = meta["model"] + (f" ({acc.get('small-cnn', float('nan')):.3f} / {acc.get('effnet-lite0', float('nan')):.3f})"
                                if acc else "")  # fmt: skip
        ran = meta["train"].get("precision", "float32")
        if meta["model"] == "effnet-lite0" and not meta["config"].get("finetune"):  # and the frozen features in
            ran += f" (features {meta['config'].get('backbone_precision', 'float32')})"
        print(f"| {model} | {used} | {ran} | {r['wall']:.0f} "
              f"| {r['rss_mib']:.0f} | {meta['counts']['flagged']} "
              f"| {meta['noise']['n_flipped']} | {met['precision']:.3f} | {met['recall']:.3f} | {met['f1']:.3f} "
              f"| {met['auroc']:.3f} |")


def precision_rows(data: str, work: Path, repeats: int) -> None:
    print("# The default scan's training in float32 and in bfloat16 (3,882 28 × 28 grayscale images)\n")
    print(f"`python scripts/cost_scan.py --precision --data .../pneumoniamnist_modified.npz --work "
          f"/work/cache/cost-precision --repeats {repeats} > benchmarks/results/cost-scan-precision.md` (`--model "
          "small-cnn`, 20 % symmetric noise; the two precisions in turn, each scan of a fresh run directory)\n")
    print("| --precision | round | wall s | train s | peak RSS MiB | flagged | true | precision | recall | F1 | AUROC |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    walls: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    for i in range(repeats):
        for p in walls:
            r = measure(data, work, "small-cnn", ("--precision", p), f"-{p}-{i}")
            meta, met = r["meta"], r["meta"]["metrics"]
            walls[p].append(r["wall"])
            print(f"| {meta['train']['precision']} | {i + 1} | {r['wall']:.0f} | {meta['timings']['train']:.0f} "
                  f"| {r['rss_mib']:.0f} | {meta['counts']['flagged']} | {meta['noise']['n_flipped']} "
                  f"| {met['precision']:.3f} | {met['recall']:.3f} | {met['f1']:.3f} | {met['auroc']:.3f} |")
    ratios = [f / b for f, b in zip(walls["float32"], walls["bfloat16"], strict=True)]
    print(f"\nfloat32 wall time / bfloat16 wall time, round by round: {', '.join(f'{x:.2f}' for x in ratios)}")


if __name__ == "__main__":
    main()
