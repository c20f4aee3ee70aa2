"""Benchmark post-selection similarity at several sizes: wall time, peak RSS, ratio to a baseline.

    python bench/pss.py --sizes 20000000,50000000,206000000 [--shape public|heavy] [--threads 2]
        [--memory-gib 2] [--root /tmp/bw-pss]

Two synthetic shapes (ratings in RatingMatrix order, one rating per (note, rater)):

- ``public`` (default): the simulator's ``public`` scale per rating — 2.5M notes and 1.4M raters
  per 206M ratings, 1.9 notes per post, ratings per note log-normal (σ 0.9), rater activity
  log-normal (σ 1.3), rating delays log-normal (median 8 h, σ 1.4, at least 30 s), as
  ``bridgewatch.sim`` draws them;
- ``heavy``: the earlier stress shape — ratings per note log-normal with σ 1.5 (a few notes get
  thousands), exponential 6 h delays, 1 rater per 20 ratings, 1-3 notes per tweet; it packs far
  more ratings into each 20-minute window (E/R, the window pairs per rating, is the number that
  drives the cost).

Both plant a timing ring of 8 fresh raters on 40 notes and report whether it is found.

Each size is generated once into ``ROOT/SHAPE-SIZE/*.npy`` (reused) and measured in a fresh
subprocess, so the peak RSS (``ru_maxrss``) is that size's own and includes its input arrays
(reported apart). The baseline, measured in the same process, is one layout of the ratings by
(tweet, note, time) plus one sliding-window pass that counts E: the least any exact co-selection
count must do. The ratio PSS / baseline is what to compare across machines and loads.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DAY = 86_400_000
HOUR = 3_600_000
PUBLIC = (2_500_000, 1_400_000, 206_000_000)  # notes, raters, ratings of the simulator's public scale


def _ring(rng, note, rater, created, note_created, n_notes, n_raters):
    """Append a planted timing ring: 8 fresh raters rate 40 random notes within 5 minutes."""
    ring = np.arange(n_raters, n_raters + 8, dtype=np.int32)
    ring_notes = rng.choice(n_notes, 40, replace=False)
    rn = np.repeat(ring_notes, 8).astype(np.int32)
    note = np.r_[note, rn]
    rater = np.r_[rater, np.tile(ring, 40)]
    created = np.r_[created, note_created[rn] + 2 * HOUR + rng.integers(0, 300_000, rn.shape[0])]
    return note, rater, created, ring, n_raters + 8


def _finish(rng, note, rater, created, note_tweet, note_created, note_author, n_notes, n_raters, ring):
    """One rating per (note, rater), RatingMatrix order, and the arrays the bench reads."""
    key = note.astype(np.int64) * n_raters + rater
    order = np.argsort(key, kind="stable")
    key = key[order]
    first = np.r_[True, key[1:] != key[:-1]]
    order = order[first]
    del key, first
    note, rater, created = note[order], rater[order], created[order]
    del order
    helpful = rng.random(note.shape[0]) < 0.4
    indptr = np.r_[0, np.cumsum(np.bincount(note, minlength=n_notes))].astype(np.int64)
    return dict(
        note=note,
        rater=rater,
        created=created,
        helpful=helpful,
        indptr=indptr,
        note_tweet=note_tweet,
        note_created=note_created,
        note_author=note_author,
        n_raters=np.int64(n_raters),
        ring=ring,
    )


def synth(
    n_ratings: int,
    seed: int = 0,
    mean_per_note: float = 100.0,
    sigma: float = 1.5,
    delay_hours: float = 6.0,
    raters_per_rating: float = 0.05,
):
    """The ``heavy`` shape: arrays in RatingMatrix order (sorted by note, then rater)."""
    rng = np.random.default_rng(seed)
    mu = np.log(mean_per_note) - sigma**2 / 2
    sizes = np.clip(rng.lognormal(mu, sigma, int(n_ratings / mean_per_note * 1.2)), 1, 50_000).astype(
        np.int64
    )
    sizes = sizes[np.cumsum(sizes) <= n_ratings]
    n_notes = sizes.shape[0]
    notes_per_tweet = rng.geometric(0.6, n_notes)
    note_tweet = np.repeat(np.arange(n_notes), notes_per_tweet)[:n_notes].astype(np.int64)
    note_tweet[rng.random(n_notes) < 0.02] = -1
    note_created = rng.integers(0, 365 * DAY, n_notes)
    n_raters = max(100, int(n_ratings * raters_per_rating))
    n_authors = max(10, n_notes // 8)
    note_author = rng.integers(0, n_authors, n_notes).astype(np.int32)  # authors are raters 0..n_authors
    r = int(sizes.sum())
    note = np.repeat(np.arange(n_notes, dtype=np.int32), sizes)
    weights = 1.0 / np.arange(1, n_raters + 1) ** 0.9
    cdf = np.cumsum(weights) / weights.sum()
    rater = np.searchsorted(cdf, rng.random(r)).astype(np.int32)
    rater = rng.permutation(n_raters).astype(np.int32)[rater]
    created = note_created[note] + rng.exponential(delay_hours * HOUR, r).astype(np.int64)
    note, rater, created, ring, n_raters = _ring(rng, note, rater, created, note_created, n_notes, n_raters)
    return _finish(rng, note, rater, created, note_tweet, note_created, note_author, n_notes, n_raters, ring)


def synth_public(n_ratings: int, seed: int = 0, days: float = 1_600.0):
    """The ``public`` shape: the simulator's per-rating proportions and draws (see module doc)."""
    rng = np.random.default_rng(seed)
    n_notes = max(200, round(n_ratings * PUBLIC[0] / PUBLIC[2]))
    n_raters = max(1_000, round(n_ratings * PUBLIC[1] / PUBLIC[2]))
    n_posts = max(1, round(n_notes / 1.9))
    post_millis = rng.integers(0, int(days * DAY), n_posts)
    post_w = rng.lognormal(0.0, 0.8, n_posts)
    note_post = np.r_[np.arange(n_posts), rng.choice(n_posts, n_notes - n_posts, p=post_w / post_w.sum())]
    note_created = post_millis[note_post] + rng.exponential(6 * HOUR, n_notes).astype(np.int64)
    note_tweet = note_post.astype(np.int64)
    note_author = rng.integers(0, n_raters, n_notes).astype(np.int32)
    pop = rng.lognormal(0.0, 0.9, n_notes)
    sizes = np.minimum(rng.multinomial(n_ratings, pop / pop.sum()), n_raters // 2)
    note = np.repeat(np.arange(n_notes, dtype=np.int32), sizes)
    del sizes
    cdf = np.cumsum(rng.lognormal(0.0, 1.3, n_raters))
    rater = np.empty(note.shape[0], dtype=np.int32)
    step = 1 << 24
    for a in range(0, rater.shape[0], step):  # in blocks: the uniforms would be 8 bytes a rating
        u = rng.random(min(step, rater.shape[0] - a)) * cdf[-1]
        rater[a : a + u.shape[0]] = np.minimum(np.searchsorted(cdf, u, side="right"), n_raters - 1)
    created = np.empty(note.shape[0], dtype=np.int64)
    for a in range(0, created.shape[0], step):
        d = rng.lognormal(np.log(8 * HOUR), 1.4, min(step, created.shape[0] - a)).astype(np.int64)
        created[a : a + d.shape[0]] = note_created[note[a : a + d.shape[0]]] + np.maximum(d, 30_000)
    note, rater, created, ring, n_raters = _ring(rng, note, rater, created, note_created, n_notes, n_raters)
    return _finish(rng, note, rater, created, note_tweet, note_created, note_author, n_notes, n_raters, ring)


SHAPES = {"public": synth_public, "heavy": synth}


def _data_dir(root: Path, shape: str, size: int) -> Path:
    """Generate (once) and return the folder holding one size's arrays as .npy files."""
    folder = root / f"{shape}-{size}"
    if not (folder / "done").exists():
        folder.mkdir(parents=True, exist_ok=True)
        for name, arr in SHAPES[shape](size).items():
            np.save(folder / f"{name}.npy", np.asarray(arr))
        (folder / "done").write_text("ok", encoding="ascii")
    return folder


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def measure(folder: Path, threads: int, memory_gib: float) -> dict:
    """One size, in this process: the baseline pass, then every PSS step, timed."""
    import numba

    from bridgewatch.integrity import pairs
    from bridgewatch.integrity.components import connected_components
    from bridgewatch.integrity.pss import PSSParams, apply_pss, author_rater_pairs, co_selection_pairs

    numba.set_num_threads(threads)
    p = PSSParams()
    tiny = synth_public(20_000, seed=1)  # warm the numba caches: compile time is not counted
    co_selection_pairs(
        tiny["indptr"], tiny["rater"], tiny["created"], tiny["note_tweet"], int(tiny["n_raters"])
    )
    base_rss = _peak_gib()
    d = {f.stem: np.load(f) for f in folder.glob("*.npy")}
    n_raters = int(d["n_raters"])
    r = d["rater"].shape[0]
    inputs_gib = sum(a.nbytes for a in d.values()) / 2**30

    t = time.perf_counter()
    perm, gptr, tptr = pairs.order_notes_by_tweet(
        d["indptr"], d["note_tweet"], d["created"], np.ones(r, bool)
    )
    e = int(pairs.window_pair_bounds(d["created"][perm], gptr, tptr, p.window_millis).sum())
    baseline = time.perf_counter() - t
    del perm, gptr, tptr

    steps: dict[str, float] = {}
    t = time.perf_counter()
    a_lo, a_hi = author_rater_pairs(
        d["note_author"], d["note_created"], d["note"], d["rater"], d["created"], d["helpful"], n_raters, p
    )
    steps["author-rater (A)"] = time.perf_counter() - t
    t = time.perf_counter()
    co = co_selection_pairs(
        d["indptr"], d["rater"], d["created"], d["note_tweet"], n_raters, p,
        num_threads=threads, memory_bytes=int(memory_gib * 2**30),
    )  # fmt: skip
    steps["co-selection (B)"] = time.perf_counter() - t
    t = time.perf_counter()
    clique = connected_components(np.r_[a_lo, co["raterA"]], np.r_[a_hi, co["raterB"]], n_raters)
    steps["components"] = time.perf_counter() - t
    t = time.perf_counter()
    keep = apply_pss(d["note"], d["rater"], d["created"], d["note_author"], clique, d["indptr"].shape[0] - 1)
    steps["apply_pss"] = time.perf_counter() - t
    ring = np.unique(clique[d["ring"]])
    members = int(np.count_nonzero(clique == ring[0])) if ring[0] > 0 else 0
    return {
        "ratings": r,
        "notes": int(d["indptr"].shape[0] - 1),
        "raters": n_raters,
        "E": e,
        "baseline_s": baseline,
        "steps": steps,
        "total_s": sum(steps.values()),
        "peak_gib": _peak_gib(),
        "base_gib": base_rss,
        "inputs_gib": inputs_gib,
        "pairs_A": int(a_lo.shape[0]),
        "pairs_B": int(co["raterA"].shape[0]),
        "cliques": int(clique.max()),
        "kept": float(keep.mean()),
        "ring_found": bool(ring.shape[0] == 1 and ring[0] > 0 and members == 8),
    }


def table(rows: list[dict]) -> str:
    head = (
        "| ratings | notes | raters | E/R | baseline s | A s | B s | comp+apply s | PSS s | × baseline "
        "| inputs GiB | peak RSS GiB | ring found |"
    )
    out = [head, "|" + "---:|" * 12 + "---|"]
    for x in rows:
        s = x["steps"]
        out.append(
            f"| {x['ratings']:,} | {x['notes']:,} | {x['raters']:,} | {x['E'] / x['ratings']:.2f} "
            f"| {x['baseline_s']:.1f} | {s['author-rater (A)']:.1f} | {s['co-selection (B)']:.1f} "
            f"| {s['components'] + s['apply_pss']:.1f} | {x['total_s']:.1f} "
            f"| {x['total_s'] / x['baseline_s']:.2f} | {x['inputs_gib']:.2f} | {x['peak_gib']:.2f} "
            f"| {'yes' if x['ring_found'] else 'NO'} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2000000,20000000")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="public")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-gib", type=float, default=2.0, help="pair counter's memory budget")
    ap.add_argument("--root", default="/tmp/bw-pss")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(measure(Path(args.worker), args.threads, args.memory_gib)), flush=True)
        return
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        folder = _data_dir(Path(args.root), args.shape, size)
        cmd = [sys.executable, __file__, "--worker", str(folder), "--threads", str(args.threads)]
        cmd += ["--memory-gib", str(args.memory_gib)]
        with open("/proc/loadavg", encoding="ascii") as fh:
            load = fh.read().split()[0]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            print(f"{size}: failed (exit {proc.returncode})\n{proc.stderr[-3000:]}", flush=True)
            continue
        rows.append(json.loads(lines[-1][7:]))
        print(f"{size:,} ratings done (load average at start {load}): {rows[-1]}", flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
