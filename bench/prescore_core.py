"""One Core-family scorer's prescoring, step by step: where its time goes as the data grows.

    python bench/prescore_core.py [--scales medium,large] [--root /tmp/bw-scale] [--threads 2]
                                  [--scorer core|core_with_topics|expansion|expansion_plus]
                                  [--cache DIR]   # columnar caches DIR/SCALE (default ROOT/SCALE/.bwcache)
                                  [--config bw.toml]  # e.g. [mf] solver = "als"

For each scale (read through the columnar cache, no integrity pass), runs ``prescore_scorer`` with
the steps it calls wrapped (``STEPS``: each wrapped where its caller looks it up; a step renamed
away fails the wrapping loudly, and work the code moves out of the wrapped steps shows up as its
caller's ``self`` time rather than silently). Prints one
row per call, nested under its caller in call order: the MF rounds (problem, layout, Adam epochs),
the helpfulness steps, the harassment model, tag aggregates and thresholds, incorrect totals and
the three low-diligence rounds, with ratings, epochs, wall and CPU seconds, ``self`` CPU (the
call's own, outside the wrapped steps under it; on the top row: what no step accounts for) and CPU
nanoseconds per rating-epoch, and the resident memory before the call and at its highest during it
(the kernel's high-water mark, reset at every step's start and end, so a call's peak is exact and
its caller's is the highest of its own and its steps'; where the reset is not allowed the column
is the process's peak so far). The ns/rating-epoch number is what should stay flat as the data grows: epochs
times ratings is the work, so a rising ns/rating-epoch means each rating costs more (cache misses
in the note gathers), a rising epoch count means the optimizer runs longer. CPU time includes
numba's threads and is steadier than wall time on a shared machine; each row also carries the
1-minute load average.
"""

from __future__ import annotations

import argparse
import importlib
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_S = "bridgewatch.scoring."
# (module, attribute, label, epochs of the result): wrapped where the caller looks the name up
STEPS = (
    ("scorer_run", "prescore", "prescore: MF rounds + helpfulness", None),
    ("scorer_run", "scope_mask", "scope mask", None),
    ("scorer", "scope_mask", "scope mask", None),
    ("preprocess", "count_filter", "count filter", None),
    ("scorer", "fit_round1", "MF round 1 (stable init, fit)", None),
    ("preprocess", "stable_init_mask", "stable-init mask", None),
    ("scorer", "build_problem", "MF problem", None),
    ("scorer", "fit_mf", "MF fit", lambda out: out.iterations),
    ("mf_adam", "adam_fit_problem", "Adam", lambda out: out[1]),
    ("mf_adam", "kept_by_rater", "ratings by rater", None),
    ("mf_adam", "layout_of", "layout", None),
    ("mf_adam", "_run", "epochs", lambda out: out[1]),
    ("scorer", "note_counts", "note counts", None),
    ("scorer", "compute_statuses", "provisional statuses", None),
    ("helpfulness", "valid_ratings", "valid ratings", None),
    ("helpfulness", "helpfulness_scores", "helpfulness scores", None),
    ("helpfulness", "helpful_rater_mask", "helpful raters", None),
    ("helpfulness", "harassment_penalty", "harassment penalty", None),
    ("scorer", "fit_tag_consensus_kept", "harassment model", None),
    ("harassment", "fit_adam_signed", "Adam", lambda out: out[2]),
    ("scorer_run", "note_tag_aggregates_kept", "tag aggregates", None),
    ("scorer_run", "tag_thresholds", "tag thresholds", None),
    ("scorer_run", "rater_incorrect_totals_kept", "incorrect totals", None),
    ("scorer_run", "diligence_start", "low-diligence start ids", None),
    ("diligence", "fit_prescoring_kept", "low diligence", None),
    ("diligence", "_kept", "layout", None),
    ("diligence", "_random_start", "random start", None),
    ("diligence", "fit_adam_signed", "round", lambda out: out[2]),
    ("diligence", "_note_totals_nb", "round-3 note totals", None),
)
_NUMBERED = ("MF fit", "round")


def _load() -> str:
    return open("/proc/loadavg", encoding="ascii").read().split()[0]


def _status_gib(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def _reset_hwm() -> None:
    """Restart the kernel's VmHWM at the current RSS (a no-op where not allowed)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        pass


def _ratings(args: tuple) -> int | None:
    """The ratings a step works on: a bool[R] selection's count, else its first argument's."""
    for a in args[1:2]:
        if isinstance(a, np.ndarray) and a.dtype == np.bool_:
            return int(np.count_nonzero(a))
    return getattr(args[0], "n_ratings", None) if args else None


@dataclass
class Call:
    label: str
    depth: int
    ratings: int | None = None
    epochs: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    child_cpu: float = 0.0
    load: str = ""
    rss_before: float = 0.0  # GiB
    peak: float = 0.0  # GiB


@dataclass
class Recorder:
    """Calls in call order; ``stack`` the open ones (each step's caller is the call below it)."""

    calls: list[Call] = field(default_factory=list)
    stack: list[Call] = field(default_factory=list)
    seen: Counter = field(default_factory=Counter)

    def mark(self, *also: Call) -> None:
        """Fold the high-water mark since the last mark into every open call (and ``also``),
        then restart it."""
        high = _status_gib("VmHWM")
        for call in (*self.stack, *also):
            call.peak = max(call.peak, high)
        _reset_hwm()

    def wrap(self, module, name: str, label: str, epochs_of) -> None:
        fn = getattr(module, name)

        def timed(*args, **kwargs):
            self.seen[label] += 1  # the MF fits and diligence rounds numbered in call order
            call = Call(f"{label} {self.seen[label]}" if label in _NUMBERED else label, len(self.stack))
            call.ratings = _ratings(args)
            self.mark()
            call.rss_before = _status_gib("VmRSS")
            self.calls.append(call)
            self.stack.append(call)
            w, c = time.perf_counter(), time.process_time()
            try:
                out = fn(*args, **kwargs)
            finally:
                call.wall, call.cpu = time.perf_counter() - w, time.process_time() - c
                call.load = _load()
                self.mark()
                self.stack.pop()
                if self.stack:
                    self.stack[-1].child_cpu += call.cpu
            call.epochs = epochs_of(out) if epochs_of else 0
            return out

        setattr(module, name, timed)


def run(data: Path, cache: Path, threads: int, scorer: str, config_path: str | None = None) -> list[Call]:
    """Every wrapped call of one scorer's prescoring, the whole prescoring first (depth 0)."""
    import numba

    from bridgewatch.io import read_dataset
    from bridgewatch.scoring import scorer_specs
    from bridgewatch.scoring.config import load_config
    from bridgewatch.scoring.pipeline import _inputs
    from bridgewatch.scoring.scorer_run import prescore_scorer

    numba.set_num_threads(threads)
    dataset = read_dataset(data, cache_dir=cache)
    rec = Recorder()
    for mod, name, label, epochs_of in STEPS:
        rec.wrap(importlib.import_module(_S + mod), name, label, epochs_of)
    config = load_config(config_path)
    inputs = _inputs(dataset, dataset.ratings, config, None, None)
    top = Call("prescore_scorer (self: unaccounted)", 0, inputs.matrix.n_ratings)
    rec.mark()
    top.rss_before = _status_gib("VmRSS")
    rec.calls.append(top)
    rec.stack.append(top)
    w, c = time.perf_counter(), time.process_time()
    prescore_scorer(inputs, getattr(scorer_specs, scorer)(), config, seed=42)
    top.wall, top.cpu, top.load = time.perf_counter() - w, time.process_time() - c, _load()
    rec.mark()
    return rec.calls


def table(calls: list[Call]) -> list[str]:
    out = [
        "| step | ratings | epochs | wall s | cpu s | self cpu s | cpu ns/rating-epoch | RSS before GiB "
        "| peak GiB | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for call in calls:
        per = f"{call.cpu / (call.ratings * call.epochs) * 1e9:.2f}" if call.epochs and call.ratings else ""
        n = f"{call.ratings:,}" if call.ratings is not None else ""
        name = "· " * call.depth + call.label
        out.append(
            f"| {name} | {n} | {call.epochs or ''} | {call.wall:.2f} | {call.cpu:.2f} | "
            f"{call.cpu - call.child_cpu:.2f} | {per} | {call.rss_before:.3f} | {call.peak:.3f} "
            f"| {call.load} |"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", default="medium,large")
    ap.add_argument("--root", default="/tmp/bw-scale")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scorer", default="core", help="a scorer_specs function: core, expansion, ...")
    ap.add_argument("--cache", default=None)
    ap.add_argument("--config", default=None, help="TOML overrides of the scoring configuration")
    args = ap.parse_args()
    for scale in args.scales.split(","):
        print(f"### {scale}: {args.scorer} (pid {os.getpid()}, {args.threads} threads)")
        data = Path(args.root) / scale
        cache = Path(args.cache) / scale if args.cache else data / ".bwcache"
        print("\n".join(table(run(data, cache, args.threads, args.scorer, args.config))), flush=True)


if __name__ == "__main__":
    main()
