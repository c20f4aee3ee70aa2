"""Ratings ingest benchmark: our reader vs ``pandas.read_csv(sep="\\t")``, and our cache load.

    python bench/ingest.py [RATINGS.tsv] [--rows N] [--repeat K] [--pandas-chunks N]

Without a file, one is made from ``/work/shared/golden/small/input/ratings-00000.tsv.gz``
(decompressed; with ``--rows N`` its rows are repeated, note ids shifted per copy so every
(rater, note) pair stays unique, up to N rows). Simulated files work too
(``bridgewatch simulate --scale medium --out d`` then ``d/ratings-00000.tsv``).

Readers: ``ours`` (TSV -> ``RatingMatrix``), ``pandas`` (the whole frame, or with
``--pandas-chunks N`` N-row chunks parsed and dropped: same parse work, bounded memory, for
files whose frame would not fit), ``cache`` (``io.cache`` entry -> ``RatingMatrix``; the entry
is written by an untimed run first). Each runs in a fresh subprocess so its peak RSS
(``ru_maxrss``) is its own; "over base" subtracts the RSS after imports and a warm-up read of
2,000 rows (with ``--repeat``, the worst run's); "final" is ``RatingMatrix.nbytes()`` (pandas:
the frame's deep memory usage). CPU seconds (user + system) are shown beside wall seconds: on a
shared machine they vary less; the load average before and after is printed with them.
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


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def worker(which: str, path: str, cache_dir: str, pandas_chunks: int) -> None:
    """Run one reader in this (fresh) process and print a JSON line with its numbers."""
    import numpy as np  # noqa: F401
    import pandas as pd

    from bridgewatch.io import cache, read_rating_matrix

    def read(p: str, cdir: str) -> tuple[int, int]:
        if which == "ours":
            matrix, _ = read_rating_matrix(p)
            return matrix.n_ratings, matrix.nbytes()
        if which == "cache":
            hit = cache.load(cdir, cache.cache_key([p], None, None), [])
            assert hit is not None, "no cache entry"
            return hit[0].n_ratings, hit[0].nbytes()
        if pandas_chunks:
            rows = 0
            for chunk in pd.read_csv(p, sep="\t", chunksize=pandas_chunks):
                rows += len(chunk)
            return rows, 0
        frame = pd.read_csv(p, sep="\t")
        return len(frame), int(frame.memory_usage(deep=True).sum())

    # Warm up on the first rows (lazy imports, thread pools, numba cache) before the baseline.
    with tempfile.TemporaryDirectory() as tmp, open(path, encoding="utf-8") as fh:
        small = Path(tmp) / "warm.tsv"
        small.write_text("".join(fh.readline() for _ in range(2000)), encoding="utf-8")
        if which == "cache":
            matrix, warnings = read_rating_matrix(str(small))
            cache.store(tmp, cache.cache_key([str(small)], None, None), matrix, list(warnings))
            del matrix
        read(str(small), tmp)
    base = _rss_mib()
    t, c = time.perf_counter(), _cpu()
    rows, final = read(path, cache_dir)
    seconds, cpu = time.perf_counter() - t, _cpu() - c
    print(json.dumps({"rows": rows, "seconds": seconds, "cpu": cpu, "peak": _rss_mib(), "base": base,
                      "final": final}))  # fmt: skip


def build_cache(path: str, cache_dir: str) -> None:
    from bridgewatch.io import cache, read_rating_matrix

    matrix, warnings = read_rating_matrix(path)
    cache.store(cache_dir, cache.cache_key([path], None, None), matrix, list(warnings))


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
    ap.add_argument("--pandas-chunks", type=int, default=0, help="pandas reads N-row chunks, keeps none")
    ap.add_argument("--worker", choices=["ours", "pandas", "cache", "build-cache"], help=argparse.SUPPRESS)
    ap.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker == "build-cache":
        build_cache(args.path, args.cache_dir)
        return
    if args.worker:
        worker(args.worker, args.path, args.cache_dir, args.pandas_chunks)
        return
    tmp = tempfile.TemporaryDirectory()
    path = args.path
    if path is None:
        path = str(make_file(args.rows, Path(tmp.name) / "ratings-00000.tsv"))
    cache_dir = str(Path(tmp.name) / "cache")
    size = os.path.getsize(path)

    def run(which: str) -> dict:
        out = subprocess.run(
            [sys.executable, __file__, path, "--worker", which, "--cache-dir", cache_dir,
             "--pandas-chunks", str(args.pandas_chunks)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {}

    with open(path, "rb") as fh:  # into the page cache first, so no reader pays the disk alone
        while fh.read(1 << 24):
            pass
    load_before = os.getloadavg()[0]
    results = {}
    for which in ("ours", "pandas", "cache"):
        if which == "cache":
            t = time.perf_counter()
            run("build-cache")
            print(f"(cache entry written by a TSV read + store in {time.perf_counter() - t:.1f} s, untimed)")
        runs = [run(which) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: r["seconds"])
        # The worst run's memory, each run against its own base (bases differ a little).
        best["over"] = max(r["peak"] - r["base"] for r in runs)
        best["peak"] = max(r["peak"] for r in runs)
        results[which] = best
    print(f"file: {path} ({size / 2**20:.0f} MiB, {results['ours']['rows']:,} rows)")
    print(f"load average (1 min): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(
        f"{'reader':8} {'seconds':>8} {'cpu s':>7} {'rows/s':>12} {'peak MiB':>9} {'over base':>9} "
        f"{'final MiB':>9} {'peak/final':>10}"
    )
    for which, r in results.items():
        over = r["over"]
        final = r["final"] / 2**20
        ratio = f"{over / final:10.2f}" if final else f"{'-':>10}"
        print(
            f"{which:8} {r['seconds']:8.2f} {r['cpu']:7.2f} {r['rows'] / r['seconds']:12,.0f} "
            f"{r['peak']:9.0f} {over:9.0f} {final:9.0f} {ratio}"
        )
    o, p, c = results["ours"], results["pandas"], results["cache"]
    print(
        f"speed ours/pandas: {p['seconds'] / o['seconds']:.2f}x wall, {p['cpu'] / o['cpu']:.2f}x cpu; "
        f"cache load vs our TSV ingest: {o['seconds'] / c['seconds']:.1f}x wall, "
        f"{o['cpu'] / c['cpu']:.1f}x cpu"
    )
    if not args.pandas_chunks:
        print(f"peak-over-base pandas/ours: {p['over'] / max(o['over'], 1e-9):.2f}x")
    tmp.cleanup()


if __name__ == "__main__":
    main()
