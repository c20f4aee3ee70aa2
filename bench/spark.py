"""One ALS sweep on the local engine vs the Spark engine, at small and medium scale.

Usage: python bench/spark.py [--scales small,medium] [--master local[2]] [--repeat 3]

A sweep is what ``fit_mf`` does per iteration: every note's solve, every rater's solve, μ. The
ratings are a planted low-rank matrix with the simulator's sizes (small: 5k notes, 20k raters,
300k ratings; medium: 20k, 100k, 2M). The local engine runs numba on 2 threads; Spark runs on
``--master`` (``local[2]`` by default: the same two cores, so expect it to be slower — every
half-sweep is a Spark job with planning, a broadcast and a collect, and the JVM shares the cores
with the driver). Spark pays off only when the ratings no longer fit one machine. The table shows
seconds per sweep (median of ``--repeat``), the one-time load (ratings to the cluster, cached
twice) and the ratio to the local engine measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numba
import numpy as np

from bridgewatch.engines.spark import SparkEngine
from bridgewatch.io.matrix import build_rating_matrix
from bridgewatch.scoring.config import MFConfig
from bridgewatch.scoring.mf import build_problem, initial_params, penalties
from bridgewatch.scoring.sweeps import LocalEngine

SCALES = {
    "tiny": (300, 1_500, 10_000),
    "small": (5_000, 20_000, 300_000),
    "medium": (20_000, 100_000, 2_000_000),
}


def planted_problem(n_notes: int, n_raters: int, n_ratings: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    key = np.unique(rng.integers(0, n_notes, n_ratings) * n_raters + rng.integers(0, n_raters, n_ratings))
    note, rater = (key // n_raters).astype(np.int32), (key % n_raters).astype(np.int32)
    ni, nf, rf = rng.normal(0, 0.3, n_notes), rng.normal(0, 0.7, n_notes), rng.normal(0, 0.7, n_raters)
    y = ni[note] + nf[note] * rf[rater]
    r = key.shape[0]
    m = build_rating_matrix(
        note=note, rater=rater, value=np.clip(y + 0.5, 0, 1), created_at=np.zeros(r, np.int64),
        tags=np.zeros(r, np.uint32), population_sampled=np.zeros(r, bool),
        note_ids=np.arange(n_notes, dtype=np.int64),
        rater_ids=np.array([f"r{i}" for i in range(n_raters)], dtype=object),
    )  # fmt: skip
    return build_problem(m)


def sweep(sweeps, problem, pen, state):
    mu, ni, nf, ri, rf = state
    ni, nf = sweeps.solve_notes(mu, ri, rf, pen.note_int, pen.note_fac)
    ri, rf = sweeps.solve_raters(mu, ni, nf, pen.rater_int, pen.rater_fac)
    mu = sweeps.residual_sum(ni, nf, ri, rf) / (problem.n_ratings + pen.mu)
    return mu, ni, nf, ri, rf


def time_engine(engine, problem, repeat: int) -> tuple[float, float, float]:
    """(first sweep incl. loading the ratings, median of the next ``repeat`` sweeps, final state)."""
    cfg = MFConfig()
    pen = penalties(problem, cfg)
    state = initial_params(problem, cfg.num_factors, 0, None)
    sweeps = engine.bind(problem)
    try:
        t = time.perf_counter()
        state = sweep(sweeps, problem, pen, state)
        first = time.perf_counter() - t
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            state = sweep(sweeps, problem, pen, state)
            times.append(time.perf_counter() - t)
    finally:
        sweeps.close()
    return first, statistics.median(times), state


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", default="small,medium")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    t = time.perf_counter()
    conf = {
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "2",
        "spark.driver.memory": "3g",
        "spark.local.dir": tempfile.mkdtemp(prefix="bw-spark-"),
    }
    spark = SparkEngine.start(args.master, conf=conf)
    spark.session.sparkContext.setLogLevel("ERROR")
    print(f"Spark session on {args.master}: {time.perf_counter() - t:.1f}s to start")
    local = LocalEngine()
    time_engine(local, planted_problem(*SCALES["tiny"]), 1)  # numba compile, not timed
    rows = []
    for scale in args.scales.split(","):
        problem = planted_problem(*SCALES[scale])
        _, l_sweep, l_state = time_engine(local, problem, args.repeat)
        s_first, s_sweep, s_state = time_engine(spark, problem, args.repeat)
        diff = max(float(np.max(np.abs(a - b))) for a, b in zip(l_state[1:], s_state[1:], strict=True))
        rows.append((scale, problem.n_ratings, l_sweep, s_first, s_sweep, diff))
    spark.stop()
    print(f"{'scale':8s} {'ratings':>10s} {'local s/sweep':>14s} {'spark load+1st':>15s} "
          f"{'spark s/sweep':>14s} {'spark/local':>12s} {'max |Δparam|':>13s}")  # fmt: skip
    for scale, r, ls, sf, ss, diff in rows:
        print(f"{scale:8s} {r:10d} {ls:14.4f} {sf:15.2f} {ss:14.3f} {ss / ls:11.0f}x {diff:13.1e}")


if __name__ == "__main__":
    main()
