"""The per-scorer passes over all ratings, alone: what every scorer repeats outside its fits.

    python bench/scorer_passes.py DATA [--cache DIR] [--threads 2]

Reads ``DATA`` (through the columnar cache ``DIR``, default ``DATA/.bwcache``), preprocesses it,
takes the Core scorer's scope and times, best of three by CPU time, each pass a scorer makes over
the ratings besides its fits: the count filter (§2.5), the fit's CSR compaction
(``mf.build_problem``), the valid ratings (§4.1), the helpfulness table (§4.2–4.4), the harassment
penalty and the note/rater/tag selection its filters read. Wall and CPU seconds per pass, with the
1-minute load average; run it on two checkouts to compare them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--cache", default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import numba
    import numpy as np

    from bridgewatch.io import read_dataset
    from bridgewatch.schema import Status
    from bridgewatch.scoring import helpfulness as H
    from bridgewatch.scoring import preprocess as P
    from bridgewatch.scoring.config import ScoringConfig
    from bridgewatch.scoring.mf import build_problem
    from bridgewatch.scoring.pipeline import _inputs
    from bridgewatch.scoring.rating_gather import note_rater_tags
    from bridgewatch.scoring.scorer import scope_mask
    from bridgewatch.scoring.scorer_specs import core

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    data = Path(args.data)
    ds = read_dataset(data, cache_dir=Path(args.cache) if args.cache else data / ".bwcache")
    m, config = ds.ratings, ScoringConfig()
    hc = config.helpfulness
    inputs = _inputs(ds, m, config, None, None)
    scope, _ = scope_mask(inputs, core())
    rng = np.random.default_rng(0)
    status = rng.choice(np.array([Status.CRH, Status.CRNH, Status.NMR], dtype=np.int8), m.n_notes)
    harassment = rng.normal(1.0, 1.5, m.n_notes)
    intercept = rng.normal(size=m.n_notes)
    created = inputs.notes["createdAtMillis"].to_numpy(np.float64)
    latest = inputs.notes["timestampMillisOfLatestNonNMRStatus"].to_numpy(np.float64)
    author = inputs.notes["noteAuthorParticipantId"].to_numpy(dtype=object)
    train = P.count_filter(m, scope.copy(), 5, 10)
    valid = H.valid_ratings(m, scope, created, latest, status, hc)
    passes = {
        "count filter": lambda: P.count_filter(m, scope.copy(), 5, 10),
        "build_problem": lambda: build_problem(m, train),
        "valid ratings": lambda: H.valid_ratings(m, scope, created, latest, status, hc),
        "helpfulness table": lambda: H.helpfulness_scores(m, valid, author, intercept, status, hc),
        "harassment penalty": lambda: H.harassment_penalty(m, train, harassment, hc),
        "note/rater/tags": lambda: note_rater_tags(m, train),
    }
    print(f"{m.n_ratings:,} ratings; Core scope {int(scope.sum()):,}")
    total_w = total_c = 0.0
    for name, fn in passes.items():
        fn()  # compile / warm
        best = (float("inf"), float("inf"))
        for _ in range(3):
            w, c = time.perf_counter(), time.process_time()
            fn()
            w, c = time.perf_counter() - w, time.process_time() - c
            best = min(best, (c, w))
        total_w, total_c = total_w + best[1], total_c + best[0]
        load = Path("/proc/loadavg").read_text(encoding="ascii").split()[0]
        print(f"{name:20s} wall {best[1]:7.3f} s  cpu {best[0]:7.3f} s  load {load}")
    print(f"{'all':20s} wall {total_w:7.3f} s  cpu {total_c:7.3f} s")


if __name__ == "__main__":
    main()
