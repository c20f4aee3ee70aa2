"""The logistic reputation fits (low-diligence §3.5, harassment §4.5) alone, replayed at scale.

    python bench/logistic_fits.py capture DATA_DIR OUT_DIR   # run the pipeline once, save every fit's inputs
    python bench/logistic_fits.py replay OUT_DIR [--threads 2] [--repeat 1] [--only 01,02,...]

``capture`` scores ``DATA_DIR`` (no integrity pass) with the diligence and harassment entry points
wrapped: each call's arguments, result and wall time go to ``OUT_DIR/NN-kind.pkl``. ``replay`` runs
every captured call again with the code on ``PYTHONPATH`` and prints its time next to the captured
one (and the CPU seconds, a steadier number on a shared machine) plus how far its outputs moved:
max |Δ| of the fitted note intercepts and how many notes changed side of the rule thresholds
(lowDiligence > 0.263, harassment ≥ 2.0). Run ``replay`` with ``PYTHONPATH`` pointing at a baseline
checkout and at yours, back to back, for a same-load ratio.
It also lists calls whose inputs are byte-identical to an earlier call's (fits repeated needlessly).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import time
from pathlib import Path

import numpy as np

THRESHOLDS = {"prescoring": 0.263, "final": 0.263, "harassment": 2.0}


def _digest(args: tuple) -> str:
    h = hashlib.sha256()
    for a in args:
        if isinstance(a, np.ndarray):
            h.update(np.ascontiguousarray(a).tobytes())
        else:
            h.update(pickle.dumps(a))
    return h.hexdigest()[:16]


def capture(data: Path, out: Path) -> None:
    from bridgewatch.io import read_dataset
    from bridgewatch.scoring import diligence as D
    from bridgewatch.scoring import scorer as S
    from bridgewatch.scoring.pipeline import score_dataset

    out.mkdir(parents=True, exist_ok=True)
    count = [0]

    def wrap(kind: str, fn):
        def inner(*args, **kwargs):
            t = time.perf_counter()
            res = fn(*args, **kwargs)
            secs = time.perf_counter() - t
            count[0] += 1
            with open(out / f"{count[0]:02d}-{kind}.pkl", "wb") as fh:
                pickle.dump({"kind": kind, "args": args, "kwargs": kwargs, "result": res, "secs": secs}, fh)
            print(f"{kind}: {secs:.2f} s, {np.shape(args[0])[0]:,} ratings", flush=True)
            return res

        return inner

    D.fit_prescoring = wrap("prescoring", D.fit_prescoring)
    D.fit_final = wrap("final", D.fit_final)
    S.fit_tag_consensus = wrap("harassment", S.fit_tag_consensus)
    dataset = read_dataset(data)
    m = dataset.ratings
    t = time.perf_counter()
    score_dataset(dataset, epoch_millis=int(m.created_at.max()) + 86_400_000, seed=42)
    print(f"scoring total {time.perf_counter() - t:.1f} s", flush=True)


def _intercept(kind: str, res) -> np.ndarray:
    if kind == "prescoring":
        return res.note_intercept
    if kind == "final":
        return res[0]
    return res.note_intercept


def _call(kind: str, args: tuple, kwargs: dict):
    from bridgewatch.scoring import diligence as D
    from bridgewatch.scoring import harassment as H

    fn = {"prescoring": D.fit_prescoring, "final": D.fit_final, "harassment": H.fit_tag_consensus}[kind]
    return fn(*args, **kwargs)


def replay(out: Path, threads: int, repeat: int, only: str | None) -> None:
    import numba

    numba.set_num_threads(threads)
    files = sorted(out.glob("*.pkl"))
    if only:
        files = [f for f in files if f.stem.split("-")[0] in only.split(",")]
    seen: dict[str, str] = {}
    total_then = total_now = total_cpu = 0.0
    per_kind: dict[str, list[float]] = {}
    print(f"load {os.getloadavg()[0]:.2f}; threads {threads}")
    head = ["call", "ratings", "captured s", "now s", "now CPU s", "max abs Δ intercept", "flips", "same as"]
    print("| " + " | ".join(head) + " |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for i, path in enumerate(files):
        with open(path, "rb") as fh:
            rec = pickle.load(fh)
        kind, args, kwargs = rec["kind"], rec["args"], rec["kwargs"]
        if i == 0:
            _call(kind, args, kwargs)  # compile outside the timing
        best = cpu = float("inf")
        for _ in range(repeat):
            t, c = time.perf_counter(), time.process_time()
            res = _call(kind, args, kwargs)
            best = min(best, time.perf_counter() - t)
            cpu = min(cpu, time.process_time() - c)
        a, b = _intercept(kind, rec["result"]), _intercept(kind, res)
        both = ~np.isnan(a) & ~np.isnan(b)
        diff = float(np.max(np.abs(a[both] - b[both]))) if both.any() else 0.0
        thr = THRESHOLDS[kind]
        flips = int(np.count_nonzero((a[both] >= thr) != (b[both] >= thr)))
        digest = kind + _digest(args) + _digest(tuple(kwargs.values()))
        dup = seen.setdefault(digest, path.stem)
        total_then += rec["secs"]
        total_now += best
        total_cpu += cpu
        per_kind.setdefault(kind, [0.0, 0.0, 0.0])
        per_kind[kind][0] += rec["secs"]
        per_kind[kind][1] += best
        per_kind[kind][2] += cpu
        same = "" if dup == path.stem else dup
        cells = [path.stem, f"{np.shape(args[0])[0]:,}", f"{rec['secs']:.2f}", f"{best:.2f}", f"{cpu:.2f}"]
        cells.append(f"{diff:.2e}")
        print("| " + " | ".join([*cells, str(flips), same]) + " |", flush=True)
    for kind, (then, now, now_cpu) in per_kind.items():
        print(f"{kind}: captured {then:.1f} s, now {now:.1f} s (CPU {now_cpu:.1f} s)")
    print(f"total: captured {total_then:.1f} s, now {total_now:.1f} s (CPU {total_cpu:.1f} s)")
    print(f"load {os.getloadavg()[0]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("capture")
    c.add_argument("data", type=Path)
    c.add_argument("out", type=Path)
    r = sub.add_parser("replay")
    r.add_argument("out", type=Path)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--repeat", type=int, default=1)
    r.add_argument("--only", default=None, help="comma-separated call numbers (the NN of NN-kind.pkl)")
    args = ap.parse_args()
    if args.cmd == "capture":
        capture(args.data, args.out)
    else:
        replay(args.out, args.threads, args.repeat, args.only)


if __name__ == "__main__":
    main()
