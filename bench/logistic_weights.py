"""The logistic model's epoch pass with each form of rating weights, timed in the same run.

    python bench/logistic_weights.py [--ratings 6000000] [--notes 300000] [--raters 600000] [--epochs 30]

The pass streams a fit's weights in one of three forms (``logistic_mf``): float64 per rating (8
bytes a rating held and read every epoch), two class constants over a bool (``ClassWeights``: 1
byte), or a rater term per class times a note term (``FactoredWeights``: 1 byte, the note term in
the packed note row, the weight formed in the pass). The factored form is what the low-diligence
model's last rounds use, so that their fits hold no float64 per rating; this prints what forming
the weights costs against streaming them: ns per rating-epoch, best of three fits, and the ratio
to the per-rating form measured in the same run (the baseline). The factored weights are also
materialized and checked to give the per-rating fit's bytes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    from bridgewatch.scoring import logistic_mf as lm

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ratings", type=int, default=6_000_000)
    ap.add_argument("--notes", type=int, default=300_000)
    ap.add_argument("--raters", type=int, default=600_000)
    ap.add_argument("--epochs", type=int, default=30)
    a = ap.parse_args()
    r, nn, nu = a.ratings, a.notes, a.raters
    rng = np.random.default_rng(0)
    rater = rng.permutation(nu)[np.minimum(rng.zipf(1.5, r) - 1, nu - 1)]  # Zipf activity
    note = rng.integers(0, nn, r)
    p = lm.LogisticMFParams(
        rng.normal(size=nn), rng.normal(size=nn), rng.normal(size=nu), rng.normal(size=nu),
        rng.uniform(0, 2, nu), np.array([-1.0]),
    )  # fmt: skip
    pen = lm.Penalty(1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 1e-3)
    lay = lm.layout(note, rater, nn, nu)
    positive = rng.uniform(size=r)[lay.order] < 0.2
    per_rater = rng.uniform(0.1, 2.0, nu)
    rater_terms = np.stack([per_rater / 1.1, (500.0 * per_rater) / 1.1], axis=1)
    factored = lm.FactoredWeights(positive, rater_terms, rng.uniform(0.1, 1, nn), float(r))
    forms = {
        "per rating (float64)": factored.materialize(lay),
        "class constants (bool)": lm.ClassWeights(positive, -(7.0 / r), 1.0 / r),
        "factored (bool + rater, note terms)": factored,
    }
    settings = lm.AdamSettings(learning_rate=0.05, max_epochs=a.epochs, tolerance=0.0)
    fits, times = {}, {}
    for name, w in forms.items():
        lm.fit_adam_signed(lay, w, p, pen, lm.BLOCKS, lm.AdamSettings(max_epochs=1, tolerance=0.0))  # compile
        best = np.inf
        for _ in range(3):
            t = time.perf_counter()
            fits[name] = lm.fit_adam_signed(lay, w, p, pen, lm.BLOCKS, settings)[0]
            best = min(best, time.perf_counter() - t)
        times[name] = best / (a.epochs + 1) / r * 1e9
    base = times["per rating (float64)"]
    same = all(
        getattr(fits["factored (bool + rater, note terms)"], b).tobytes()
        == getattr(fits["per rating (float64)"], b).tobytes()
        for b in lm.BLOCKS
    )
    print(f"{r:,} ratings, {nn:,} notes, {nu:,} raters, {a.epochs} epochs")
    print(f"the factored fit gives the per-rating fit's bytes: {same}")
    print(f"{'weights':<38} {'ns/rating-epoch':>16} {'ratio':>7}")
    for name, ns in times.items():
        print(f"{name:<38} {ns:>16.2f} {ns / base:>7.2f}")


if __name__ == "__main__":
    main()
