"""The Core scorer's prescoring alone, fit by fit: where its time goes as the data grows.

    python bench/prescore_core.py [--scales medium,large] [--root /tmp/bw-scale] [--threads 2]
                                  [--cache DIR]   # columnar caches DIR/SCALE (default ROOT/SCALE/.bwcache)
                                  [--config bw.toml]  # e.g. [mf] solver = "als"

For each scale (read through the columnar cache, no integrity pass), runs ``prescore_scorer`` for
``MFCoreScorer`` with its optimizers wrapped, and prints one row per fit: the MF Adam rounds
(stable-init, round 1, round 2), the harassment model and the three low-diligence rounds, with
ratings, epochs, wall and CPU seconds and CPU nanoseconds per rating-epoch. That last number is
what should stay flat as the data grows: epochs times ratings is the work, so a rising
ns/rating-epoch means each rating costs more (cache misses in the note gathers), a rising epoch
count means the optimizer runs longer. With ``[mf] solver = "als"`` the MF rows are the ALS fits
(``MF ALS``, epochs = sweeps). CPU time includes numba's threads and is steadier than
wall time on a shared machine; each row also carries the 1-minute load average.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def _load() -> str:
    return open("/proc/loadavg", encoding="ascii").read().split()[0]


def run(data: Path, cache: Path, threads: int, config_path: str | None = None) -> list[tuple]:
    """(fit, ratings, epochs, wall s, cpu s, load) per optimizer call of the Core prescoring."""
    import numba

    from bridgewatch.io import read_dataset
    from bridgewatch.scoring import diligence, harassment, mf_adam
    from bridgewatch.scoring import scorer as scorer_mod
    from bridgewatch.scoring.config import load_config
    from bridgewatch.scoring.pipeline import _inputs
    from bridgewatch.scoring.scorer_run import prescore_scorer
    from bridgewatch.scoring.scorer_specs import core

    numba.set_num_threads(threads)
    dataset = read_dataset(data, cache_dir=cache)
    rows: list[tuple] = []

    def wrap(module, name: str, label: str, epochs_of) -> None:
        fn = getattr(module, name)

        def timed(note, *args, **kwargs):
            w, c = time.perf_counter(), time.process_time()
            out = fn(note, *args, **kwargs)
            rows.append(
                (
                    label,
                    getattr(note, "n_ratings", None) or len(note),
                    epochs_of(out),
                    time.perf_counter() - w,
                    time.process_time() - c,
                    _load(),
                )
            )
            return out

        setattr(module, name, timed)

    wrap(mf_adam, "adam_fit", "MF Adam", lambda out: out[1])
    wrap(mf_adam, "adam_fit_problem", "MF Adam", lambda out: out[1])
    config = load_config(config_path)
    if config.mf.solver == "als":
        wrap(scorer_mod, "fit_mf", "MF ALS", lambda out: out.iterations)
    wrap(harassment, "fit_adam", "harassment", lambda out: out[2])
    wrap(diligence, "fit_adam", "low diligence", lambda out: out[2])
    inputs = _inputs(dataset, dataset.ratings, config, None, None)
    w, c = time.perf_counter(), time.process_time()
    prescore_scorer(inputs, core(), config, seed=42)
    rows.append(
        ("total", inputs.matrix.n_ratings, 0, time.perf_counter() - w, time.process_time() - c, _load())
    )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", default="medium,large")
    ap.add_argument("--root", default="/tmp/bw-scale")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--config", default=None, help="TOML overrides of the scoring configuration")
    args = ap.parse_args()
    for scale in args.scales.split(","):
        print(f"### {scale} (pid {os.getpid()}, {args.threads} threads)")
        print("| fit | ratings | epochs | wall s | cpu s | cpu ns/rating-epoch | load |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        data = Path(args.root) / scale
        cache = Path(args.cache) / scale if args.cache else data / ".bwcache"
        for label, n, epochs, wall, cpu, load in run(data, cache, args.threads, args.config):
            per = f"{cpu / (n * epochs) * 1e9:.2f}" if epochs else ""
            print(f"| {label} | {n:,} | {epochs} | {wall:.2f} | {cpu:.2f} | {per} | {load} |", flush=True)


if __name__ == "__main__":
    main()
