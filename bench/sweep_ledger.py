"""How many passes over the ratings a score makes, and what they would cost at the bandwidth floor.

    python bench/sweep_ledger.py score DATA -o OUT [--phase prescore|final ...] [score's options]

Runs the CLI with its arguments and counts, per pipeline phase (``Clock.phase``: each scorer), the
ratings every iterative fit visits: epochs × the fit's ratings, over the three epoch loops the
scorers fit with (``mf_adam``'s whole-model Adam, ``mf_adam_notes``' note-only Adam, and
``logistic_mf``'s Adam behind the low-diligence and harassment models). A closed-form solve,
a Gaussian pass, the helpfulness tables and the integrity passes make a few passes each and are
not counted, so the ledger is a floor on the work, not the work.

It then times, in the same process and over the same matrix, the least any epoch can cost: one
contiguous streaming read of 8 bytes a rating (a note index and a value, what
``mf_adam.adam_fit_problem`` holds per rating), best of three on the threads scoring used. The
counted rating-epochs at that rate give a lower bound on the fits' wall time for this epoch
count: what no kernel could beat without fewer epochs (docs/fast.md measures what fewer cost).
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict

import numpy as np

LEDGER: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0])  # phase -> [fits, epochs, rating-epochs]
_PHASE = ["(outside a phase)"]


def _record(n_ratings: int, epochs: int) -> None:
    row = LEDGER[_PHASE[-1]]
    row[0] += 1
    row[1] += epochs
    row[2] += n_ratings * epochs


def _install() -> None:
    """Wrap the three epoch loops and the pipeline's phase clock (module globals: every caller
    looks them up at call time, or, for ``fit_adam_signed``, is patched by name too)."""
    from bridgewatch.scoring import diligence, harassment, logistic_mf, mf_adam, mf_adam_notes, pipeline

    run, train, signed, phase = (
        mf_adam._run,
        mf_adam_notes._train,
        logistic_mf.fit_adam_signed,
        pipeline.Clock.phase,
    )

    def counted_run(lay, *args, **kwargs):
        params, epochs = run(lay, *args, **kwargs)
        _record(int(lay.note.shape[0]), int(epochs))
        return params, epochs

    def counted_train(lay, *args, **kwargs):
        epochs = train(lay, *args, **kwargs)
        _record(int(lay.n_fit), int(epochs))
        return epochs

    def counted_signed(lay, *args, **kwargs):
        p, loss, epochs = signed(lay, *args, **kwargs)
        _record(int(lay.n_ratings), int(epochs))
        return p, loss, epochs

    def clocked(self, name, fn):
        _PHASE.append(name)
        try:
            return phase(self, name, fn)
        finally:
            _PHASE.pop()

    mf_adam._run, mf_adam_notes._train = counted_run, counted_train
    logistic_mf.fit_adam_signed = diligence.fit_adam_signed = harassment.fit_adam_signed = counted_signed
    pipeline.Clock.phase = clocked


def stream_seconds(n: int) -> float:
    """Best of three: one contiguous parallel read of int32 + float32 arrays of ``n`` elements."""
    import numba

    @numba.njit(parallel=True, cache=True)
    def read(a, b):
        acc = 0.0
        for i in numba.prange(a.shape[0]):
            acc += a[i] + b[i]
        return acc

    a = np.arange(n, dtype=np.int32)
    b = np.ones(n, dtype=np.float32)
    read(a[:1000], b[:1000])
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        read(a, b)
        best = min(best, time.perf_counter() - t)
    return best


FLOOR_MIN = 1 << 25  # below this a parallel read is its threads' start-up, not memory


def report(n_ratings: int) -> str:
    """The ledger as Markdown, with the floor measured on ``n_ratings`` ratings (at least
    ``FLOOR_MIN``: a small community's arrays sit in cache, and its floor would time the launch)."""
    n_floor = max(n_ratings, FLOOR_MIN)
    per_rating = stream_seconds(n_floor) / n_floor
    lines = [
        f"Streaming floor: {per_rating * 1e9:.3f} ns a rating-epoch "
        f"({8 / per_rating / 1e9:.1f} GB/s over {n_floor:,} ratings); {n_ratings:,} ratings scored.",
        "",
        "| phase | fits | epochs | rating-epochs | full-matrix epochs | floor s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    total = [0, 0, 0]
    for name, (fits, epochs, visits) in LEDGER.items():
        total = [total[0] + fits, total[1] + epochs, total[2] + visits]
        full, floor = visits / n_ratings, visits * per_rating
        lines.append(f"| {name} | {fits:,} | {epochs:,} | {visits:,} | {full:,.1f} | {floor:,.1f} |")
    lines.append(
        f"| **total** | {total[0]:,} | {total[1]:,} | {total[2]:,} | {total[2] / n_ratings:,.1f} "
        f"| {total[2] * per_rating:,.1f} |"
    )
    return "\n".join(lines)


def main() -> None:
    from bridgewatch import runner
    from bridgewatch.cli import cli

    _install()
    scored: list[int] = []  # the ratings of the dataset the job read (after the reader's checks)
    read = runner.read_dataset

    def counted_read(*args, **kwargs):
        dataset = read(*args, **kwargs)
        scored.append(dataset.ratings.n_ratings)
        return dataset

    runner.read_dataset = counted_read
    sys.argv = ["bridgewatch", *sys.argv[1:]]
    try:
        cli(prog_name="bridgewatch", standalone_mode=False)
    finally:
        if scored:
            print(report(scored[-1]), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
