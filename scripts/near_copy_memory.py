"""Peak memory and time of the scan's near-copy search on look-alike images (not a test).

    python scripts/near_copy_memory.py --n 10000 --alike 8000 --search scan
    python scripts/near_copy_memory.py --n 10000 --alike 8000 --search pairs

``n`` random 256-value signatures (16 x 16 thumbnails) of which the first ``alike`` are one
template plus 5 % noise (correlation about 0.9975, above the 0.98 threshold: a homogeneous set of
scans, every pair of them a near-copy pair). ``scan`` runs the scan's search
(``near_duplicates._near_of``: pairs folded into links of their groups as the blocks come);
``pairs`` holds every pair (``near_pairs``, then ``near_groups``), as the scan did before. Prints
the seconds, the traced peak (tracemalloc: numpy's allocations) and the groups found.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from labeltrace.data.near_duplicates import THRESHOLD, _near_of, near_groups, near_pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10000, help="signatures (default 10000)")
    ap.add_argument("--alike", type=int, default=8000, help="of them, look-alikes of one template (default 8000)")
    ap.add_argument("--search", choices=["scan", "pairs"], default="scan", help="the search to measure")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    sig = rng.normal(size=(a.n, 256)).astype(np.float32)
    sig[: a.alike] = sig[0] + 0.05 * rng.normal(size=(a.alike, 256)).astype(np.float32)
    sig -= sig.mean(1, keepdims=True)
    sig /= np.linalg.norm(sig, axis=1, keepdims=True)
    ok = np.ones(a.n, bool)
    tracemalloc.start()
    t = time.perf_counter()
    if a.search == "scan":
        groups = _near_of(sig, ok, None, THRESHOLD, 1024)[0]
    else:
        i, j, _ = near_pairs(sig, ok, THRESHOLD)
        groups = near_groups(a.n, i, j)
    seconds = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    print(f"{a.search}: n={a.n:,}, {a.alike:,} look-alikes: {seconds:.1f} s, traced peak {peak:,.0f} MiB, "
          f"{int(groups.max()) + 1} group(s) holding {int((groups >= 0).sum()):,} samples")


if __name__ == "__main__":
    main()
