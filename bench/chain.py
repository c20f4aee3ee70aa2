"""Chained runs: prescore once, then final scoring after 1% more ratings, incremental vs full.

Usage: python bench/chain.py --scale small [--seed 0] [--threads 2] [--scorers all|core] [--data DIR]
       [--no-prescore-today] [--no-surprise] [--work DIR]

Simulates ``--scale`` (cached under /tmp), holds back the newest 1% of ratings by time ("yesterday's
data"), and in one process:

1. prescores yesterday's data and runs a full final scoring on it (the state of a deployment);
2. on today's data (+1% ratings, two hours later): final scoring incremental (§6.7) and full, each
   from a copy of that state, and the one-process ``--phase all`` run as the baseline;
3. prescoring of today's data cold and warm-started from yesterday's parameters (issue 6 item 4).

Prints wall and CPU seconds per step (CPU: this process, all threads; on a shared machine the
CPU ratio is the steadier one), the ratios the targets are about (incremental final ≤ 1/10 of a
full run) and whether the incremental statuses equal the full final run's.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import time
from pathlib import Path

import numba
import numpy as np
import pandas as pd

from bridgewatch import schema
from bridgewatch.runner import score_directory
from bridgewatch.scoring.config import ScoringConfig
from bridgewatch.scoring.scorer_specs import core, core_with_topics, expansion, expansion_plus
from bridgewatch.sim.yesterday import hold_back
from bridgewatch.state import load_prescoring

EPOCH = 1_795_305_600_000
HOUR = 3_600_000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--share", type=float, default=0.01, help="share of newest ratings held back")
    ap.add_argument("--scorers", choices=("all", "core"), default="all", help="core = the 4 Core-family")
    ap.add_argument("--data", type=Path, default=None, help="today's community (default: simulate --scale)")
    ap.add_argument("--no-prescore-today", action="store_true", help="skip the cold / warm prescoring pair")
    ap.add_argument("--work", type=Path, default=None, help="scratch (default: /tmp/bridgewatch-chain-*)")
    ap.add_argument(
        "--no-surprise", action="store_true", help="integrity.surprise off (its first fit is prescoring's)"
    )
    args = ap.parse_args()
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    from bridgewatch.sim.config import config_for_scale
    from bridgewatch.sim.simulate import simulate

    today = args.data or Path(f"/tmp/bridgewatch-bench-{args.scale}-{args.seed}")
    if not (today / schema.NOTES_FILE).exists():
        simulate(config_for_scale(args.scale, seed=args.seed), today)
    work = args.work or Path(f"/tmp/bridgewatch-chain-{args.scale}-{args.seed}")
    shutil.rmtree(work, ignore_errors=True)
    held = hold_back(today, work / "yesterday", args.share)
    scorers = [core(), core_with_topics(), expansion(), expansion_plus()] if args.scorers == "core" else None
    config = ScoringConfig()
    if args.no_surprise:
        config = dataclasses.replace(config, integrity=dataclasses.replace(config.integrity, surprise=False))
    rows: list[tuple[str, float]] = []
    cpu: dict[str, float] = {}

    def step(name: str, data: Path, out: str, **kw) -> object:
        t, c = time.perf_counter(), time.process_time()
        result = score_directory(data, work / out, seed=args.seed, scorers=scorers, config=config, **kw)
        rows.append((name, time.perf_counter() - t))
        cpu[name] = time.process_time() - c
        load = os.getloadavg()[0]
        print(f"{name:44s} {rows[-1][1]:8.2f}s wall {cpu[name]:8.2f}s cpu  (load {load:.1f})", flush=True)
        return result

    # JIT warm-up on a micro community so no timed step pays numba's compile time.
    simulate(config_for_scale("tiny", seed=1, notes=80, raters=300, ratings=2000), work / "warmup")
    score_directory(work / "warmup", None, epoch_millis=EPOCH, scorers=[core()])

    state = work / "state"
    step("prescore yesterday (cold)", work / "yesterday", "pre", phase="prescore", state_dir=state,
         epoch_millis=EPOCH)  # fmt: skip
    step("final yesterday (full)", work / "yesterday", "day1", phase="final", state_dir=state,
         epoch_millis=EPOCH)  # fmt: skip
    shutil.copytree(state, work / "state_full")
    shutil.copytree(state, work / "state_warm")
    later = EPOCH + 2 * HOUR
    inc = step("final today, incremental", today, "inc", phase="final", state_dir=state,
               incremental=True, epoch_millis=later)  # fmt: skip
    step("final today, full", today, "full", phase="final", state_dir=work / "state_full",
         epoch_millis=later)  # fmt: skip
    step("full run today (--phase all)", today, "all", epoch_millis=later)
    if not args.no_prescore_today:
        step("prescore today (cold)", today, "pre_cold", phase="prescore", state_dir=work / "state_cold",
             epoch_millis=later)  # fmt: skip
        step("prescore today (warm from yesterday)", today, "pre_warm", phase="prescore",
             state_dir=work / "state_warm", warm_start=True, epoch_millis=later)  # fmt: skip

    t = dict(rows)
    a = pd.read_parquet(work / "inc" / "scored_notes.parquet").set_index("noteId")
    b = pd.read_parquet(work / "full" / "scored_notes.parquet").set_index("noteId")
    same = (a["finalRatingStatus"] == b["finalRatingStatus"].reindex(a.index)).mean()
    print()
    surprise = "off" if args.no_surprise else "on"
    what = f"scorers {args.scorers}, surprise {surprise}"
    print(f"scale {args.scale}: {held} ratings held back ({args.share:.0%}), {what}")
    partial = int(inc.timings.get("rescored notes (partially)", 0))
    rescored = int(inc.timings["rescored notes"])
    print(f"notes rescored incrementally: {rescored} of {len(b)} ({partial} partially)")
    print(f"incremental statuses equal to the full final run's: {same:.2%} of notes")
    if not args.no_prescore_today:
        cold, _, _ = load_prescoring(work / "state_cold", scorers)
        warm, _, _ = load_prescoring(work / "state_warm", scorers)
        name = "MFCoreScorer"
        dc = np.abs(
            cold.scorers[name].pre.params.rater_intercept - warm.scorers[name].pre.params.rater_intercept
        )
        print(f"warm vs cold Core rater intercepts: max |diff| {np.nanmax(dc):.2e}")
    print()
    print(f"{'ratio':44s} {'wall':>8s} {'cpu':>8s} {'target':>8s}")
    pairs = (
        ("incremental final / full final", "final today, incremental", "final today, full", "-"),
        (
            "incremental final / full run (all)",
            "final today, incremental",
            "full run today (--phase all)",
            "<= 0.10",
        ),
        (
            "warm prescore / cold prescore",
            "prescore today (warm from yesterday)",
            "prescore today (cold)",
            "< 1",
        ),
    )
    for label, num, den, target in pairs:
        if num not in t:
            continue
        print(f"{label:44s} {t[num] / t[den]:8.3f} {cpu[num] / cpu[den]:8.3f} {target:>8s}")


if __name__ == "__main__":
    main()
