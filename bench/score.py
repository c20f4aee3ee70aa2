"""Time the Core scorer phase by phase on a simulated community (or a data directory).

Usage: python bench/score.py --scale medium [--data DIR] [--threads 2]

Simulates ``--scale`` with ``bridgewatch.sim`` into a cache directory under /tmp (reused when it
exists) unless ``--data`` points at public-format files, then runs read → prepare → prescore (round
1, helpfulness, round 2) → final scoring and prints wall time and peak RSS after each phase.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numba

from bridgewatch.io.dataset import read_dataset
from bridgewatch.scoring.config import ScoringConfig
from bridgewatch.scoring.final_scoring import score_final
from bridgewatch.scoring.scorer import prepare_inputs, prescore
from bridgewatch.scoring.scorer_specs import core


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="medium")
    ap.add_argument("--data", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    if args.data is None:
        from bridgewatch.sim.config import config_for_scale
        from bridgewatch.sim.simulate import simulate

        data = Path(f"/tmp/bridgewatch-bench-{args.scale}-{args.seed}")
        if not (data / "notes-00000.tsv").exists():
            t = time.perf_counter()
            simulate(config_for_scale(args.scale, seed=args.seed), data)
            print(f"simulate {time.perf_counter() - t:7.2f}s")
    else:
        data = Path(args.data)
    config = ScoringConfig()
    spec = core()
    phases = []

    def phase(name, fn):
        t = time.perf_counter()
        out = fn()
        phases.append((name, time.perf_counter() - t, peak_rss_gib()))
        print(f"{name:10s} {phases[-1][1]:7.2f}s  peak RSS {phases[-1][2]:.2f} GiB", flush=True)
        return out

    ds = phase("read", lambda: read_dataset(data))
    m = ds.ratings
    print(f"  {m.n_ratings:,} ratings, {m.n_notes:,} notes, {m.n_raters:,} raters")
    inputs = phase("prepare", lambda: prepare_inputs(m, ds.notes, ds.status_history, ds.enrollment, config))
    pre = phase("prescore", lambda: prescore(inputs, spec, config, seed=42))
    phase("final", lambda: score_final(inputs, spec, pre, config))
    core_total = sum(p[1] for p in phases[1:])
    print(
        f"core run (prepare+prescore+final) {core_total:.2f}s on {args.threads} threads; "
        f"round-2 fit {pre.final_round_num_ratings:,} ratings"
    )


if __name__ == "__main__":
    main()
