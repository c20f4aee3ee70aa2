"""Ratings ingest benchmark: our streaming reader vs ``pandas.read_csv(sep="\\t")``.

    python bench/ingest.py [RATINGS.tsv] [--rows N] [--repeat K]

Without a file, one is made from ``/work/shared/golden/small/input/ratings-00000.tsv.gz``
(decompressed; with ``--rows N`` its rows are repeated, note ids shifted per copy so every
(rater, note) pair stays unique, up to N rows). Each reader runs in a fresh subprocess so its
peak RSS (``ru_maxrss``) is its own; "over base" subtracts the RSS after imports and a
warm-up read of 2,000 rows.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOLDEN = Path("/work/shared/golden/small/input/ratings-00000.tsv.gz")


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(which: str, path: str) -> None:
    """Run one reader in this (fresh) process and print a JSON line with its numbers."""
    import numpy as np  # noqa: F401
    import pandas as pd

    from bridgewatch.io import read_rating_matrix

    def read(p: str) -> tuple[int, int]:
        if which == "ours":
            matrix, _ = read_rating_matrix(p)
            return matrix.n_ratings, matrix.nbytes()
        frame = pd.read_csv(p, sep="\t")
        return len(frame), int(frame.memory_usage(deep=True).sum())

    # Warm up on the first rows (lazy imports, thread pools, numba cache) before the baseline.
    with tempfile.TemporaryDirectory() as tmp, open(path, encoding="utf-8") as fh:
        small = Path(tmp) / "warm.tsv"
        small.write_text("".join(fh.readline() for _ in range(2000)), encoding="utf-8")
        read(str(small))
    base = _rss_mib()
    t = time.perf_counter()
    rows, final = read(path)
    seconds = time.perf_counter() - t
    print(json.dumps({"rows": rows, "seconds": seconds, "peak": _rss_mib(), "base": base, "final": final}))


def make_file(rows: int | None, out: Path) -> Path:
    """Decompress the golden ratings; repeat with shifted note ids until ``rows`` rows."""
    with gzip.open(GOLDEN, "rt", encoding="utf-8", newline="") as fh:
        header = fh.readline()
        body = fh.readlines()
    target = rows or len(body)
    with open(out, "w", encoding="utf-8", newline="") as fo:
        fo.write(header)
        written, copy = 0, 0
        while written < target:
            take = body[: target - written]
            if copy == 0:
                fo.writelines(take)
            else:
                for line in take:
                    note, rest = line.split("\t", 1)
                    fo.write(f"{int(note) + copy}\t{rest}")
            written += len(take)
            copy += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", nargs="?", help="ratings TSV (default: made from the golden small ratings)")
    ap.add_argument("--rows", type=int, default=None, help="rows in the generated file")
    ap.add_argument("--repeat", type=int, default=1, help="runs per reader (best time kept)")
    ap.add_argument("--worker", choices=["ours", "pandas"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.path)
        return
    tmp = None
    path = args.path
    if path is None:
        tmp = tempfile.TemporaryDirectory()
        path = str(make_file(args.rows, Path(tmp.name) / "ratings-00000.tsv"))
    size = os.path.getsize(path)
    results = {}
    for which in ("ours", "pandas"):
        runs = []
        for _ in range(args.repeat):
            out = subprocess.run(
                [sys.executable, __file__, path, "--worker", which],
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        best = min(runs, key=lambda r: r["seconds"])
        best["peak"] = max(r["peak"] for r in runs)
        results[which] = best
    print(f"file: {path} ({size / 2**20:.0f} MiB, {results['ours']['rows']:,} rows)")
    print(
        f"{'reader':8} {'seconds':>8} {'rows/s':>12} {'peak MiB':>9} {'over base':>9} {'final MiB':>9} "
        f"{'peak/final':>10}"
    )
    for which, r in results.items():
        over = r["peak"] - r["base"]
        final = r["final"] / 2**20
        print(
            f"{which:8} {r['seconds']:8.2f} {r['rows'] / r['seconds']:12,.0f} {r['peak']:9.0f} {over:9.0f} "
            f"{final:9.0f} {over / final:10.2f}"
        )
    o, p = results["ours"], results["pandas"]
    print(
        f"speed ours/pandas: {p['seconds'] / o['seconds']:.2f}x; peak-over-base pandas/ours: "
        f"{(p['peak'] - p['base']) / max(o['peak'] - o['base'], 1e-9):.2f}x"
    )
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
