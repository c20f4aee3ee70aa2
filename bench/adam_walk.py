"""The Adam replay's data pass walked untiled and by note block, on one community's matrix.

    python bench/adam_walk.py DATA [--cache DIR] [--shifts 30,17,18,19] [--reps 4] [--threads 2]

Reads DATA's ratings (through the columnar cache in DIR when given: a public-scale parse takes
minutes), lays all of them out by rater as a prescoring fit does, then for each ``--shifts``
value (log2 of the notes in a block; 30 puts every note in one block, the untiled walk) builds
the layout (``mf_adam_kernels.layout_of``) and times ``--reps`` epoch passes on the same random
parameters. Prints one row per walk: runs a rating, layout seconds, wall and CPU seconds of one
pass, nanoseconds a rating, the ratio to the first row (the baseline, measured in the same run)
and whether the gradients have the first row's bytes. The walk pays where the notes outgrow the
L3 cache (public: 2.5M notes); below 2^18 notes every shift under 30 is one block anyway.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--cache", default=None)
    ap.add_argument("--shifts", default="30,17,18,19")
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import numba

    from bridgewatch.io import read_dataset
    from bridgewatch.scoring import mf_adam_kernels as K

    numba.set_num_threads(args.threads)
    m = read_dataset(Path(args.data), cache_dir=args.cache).ratings
    note0 = np.asarray(m.note)[m.by_rater].astype(np.uint32)
    value0 = np.asarray(m.value)[m.by_rater].astype(np.float32)
    indptr = np.asarray(m.rater_indptr, dtype=np.int64)
    rng = np.random.default_rng(0)
    n, u = m.n_notes, m.n_raters
    params = (0.1, rng.normal(size=n), rng.normal(size=(n, 1)), rng.normal(size=u), rng.normal(size=(u, 1)))
    print(f"{args.data}: {m.n_ratings:,} ratings, {n:,} notes, {u:,} raters; {args.threads} threads\n")
    print("| walk | runs a rating | layout s | pass s (wall) | pass s (CPU) | ns a rating | vs first row "
          "| same bytes |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    first: tuple[float, bytes] | None = None
    for shift in (int(s) for s in args.shifts.split(",")):
        note, value = note0.copy(), value0.copy()
        t = time.perf_counter()
        lay = K.layout_of(indptr, note, value, np.zeros(0), n, 1, shift)
        built = time.perf_counter() - t
        grads = [np.zeros_like(a) for a in params[1:]]
        K.data_loss_and_grads(lay, *params, *grads)  # compile, warm the caches
        t, c = time.perf_counter(), time.process_time()
        for _ in range(args.reps):
            out = K.data_loss_and_grads(lay, *params, *grads)
        wall, cpu = (time.perf_counter() - t) / args.reps, (time.process_time() - c) / args.reps
        sig = (wall, repr(out[1]).encode() + b"".join(g.tobytes() for g in grads))
        first = first or sig
        name = "untiled" if ((n - 1) >> shift) == 0 else f"blocks of 2^{shift} notes"
        r = max(m.n_ratings, 1)
        print(
            f"| {name} | {lay.run_rater.shape[0] / r:.3f} | {built:.1f} | {wall:.3f} | {cpu:.3f} | "
            f"{wall / r * 1e9:.2f} | {wall / first[0]:.2f} | {sig[1] == first[1]} |",
            flush=True,
        )
        del lay, note, value


if __name__ == "__main__":
    main()
