"""Scale benchmark: every phase of the batch job at medium, large and public scale.

    python bench/scale.py [--scales medium,large,public] [--root /tmp/bw-scale] [--threads 2]
                          [--config bw.toml]   # e.g. profiles/fast.toml
                          [--scored DIR]       # also write DIR/SCALE-finalRatingStatus.tsv

For each scale, in a fresh subprocess (so that peak RSS is that scale's own):

1. simulate the community once into ``ROOT/SCALE`` (reused when present; reported, not scored);
2. read the TSV files, writing the columnar cache as a first ingest does (``read TSV (writes the
   columnar cache)``; one parse: at public that is minutes), then the dataset again from the cache
   (``read (columnar cache)``);
3. run the batch job phase by phase (integrity, topics, preprocess, every scorer, meta, status
   history, contributor scoring, then the integrity views the job writes beside the outputs),
   recording each phase's wall time and the peak RSS reached during it (a sampling thread reads
   ``/proc/self/statm`` every 20 ms; ``docs/memory.md`` models these peaks at X's scale);
4. the bandwidth floor: the time of one factorization sweep (every note, then every rater) over
   all ratings, against the time of one streaming pass that reads the same arrays once in the
   same order. Their ratio says how far the solver is from the memory-bandwidth floor.

Prints one table per scale and writes ``ROOT/scale.md`` (Markdown) with all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


class RssSampler:
    """Peak resident memory between two ``mark`` calls.

    Read from the kernel's own high-water mark (``VmHWM``), reset at each mark by writing 5 to
    ``/proc/self/clear_refs``: exact, whatever the main thread is doing. Where that reset is not
    allowed, a thread samples ``/proc/self/statm`` every ``interval`` s instead; that thread needs
    the GIL, so it can miss a peak reached inside a long call that holds it (a pandas or numba
    call without ``nogil``)."""

    def __init__(self, interval: float = 0.02) -> None:
        self._peak = 0
        self.highest = 0.0  # GiB: the largest mark, the process peak (a reset clears ru_maxrss too)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.exact = self._reset_hwm()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        if not self.exact:
            self._thread.start()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * PAGE

    @staticmethod
    def _reset_hwm() -> bool:
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
                fh.write("5")
        except OSError:
            return False
        return True

    @staticmethod
    def _read_hwm() -> int:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            now = self.rss()
            with self._lock:
                self._peak = max(self._peak, now)

    def mark(self) -> float:
        """Peak RSS (GiB) since the previous mark; starts a new window."""
        if self.exact:
            peak = self._read_hwm()
            self._reset_hwm()
        else:
            with self._lock:
                peak = max(self._peak, self.rss())
                self._peak = self.rss()
        self.highest = max(self.highest, peak / 2**30)
        return peak / 2**30

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def _stream_pass_kernel():
    """A numba pass that reads the sweep's arrays in the sweep's order and does nothing else
    (prefetching them as the sweep does, so that the floor stays a floor)."""
    import numba

    from bridgewatch.scoring.prefetch import AHEAD, prefetch

    @numba.njit(parallel=True, cache=True)
    def stream_pass(indptr, perm, other, value):
        n_rows = indptr.shape[0] - 1
        last = indptr[n_rows] - 1
        acc = 0.0
        for row in numba.prange(n_rows):
            s = 0.0
            for p in range(indptr[row], indptr[row + 1]):
                far = perm[min(p + 2 * AHEAD, last)]
                prefetch(other, far)
                prefetch(value, far)
                j = perm[p]
                s += value[j] + other[j]
            acc += s
        return acc

    return stream_pass


def sweep_floor(matrix, threads: int) -> dict[str, float]:
    """Seconds of one ALS sweep vs one streaming pass over the same arrays (best of 3 each)."""
    import numba

    from bridgewatch.scoring import mf_kernels as K
    from bridgewatch.scoring.config import MFConfig
    from bridgewatch.scoring.mf import build_problem, initial_params, penalties

    numba.set_num_threads(threads)
    stream_pass = _stream_pass_kernel()
    p = build_problem(matrix)
    cfg = MFConfig()
    pen = penalties(p, cfg, None, None)
    mu, ni, nf, ri, rf = initial_params(p, cfg.num_factors, 0, None)

    def sweep() -> None:
        K.solve_rows_nb(
            p.note_indptr, p.identity, p.rater, p.value, mu, ri, rf, pen.note_int, pen.note_fac, ni, nf
        )
        K.solve_rows_nb(
            p.rater_indptr, p.by_rater, p.note, p.value, mu, ni, nf, pen.rater_int, pen.rater_fac, ri, rf
        )

    def floor() -> float:
        a = stream_pass(p.note_indptr, p.identity, p.rater, p.value)
        b = stream_pass(p.rater_indptr, p.by_rater, p.note, p.value)
        return a + b

    def best(fn) -> float:
        fn()  # compile / warm the caches
        times = []
        for _ in range(3):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    s, f = best(sweep), best(floor)
    bytes_read = 2 * (p.identity.nbytes + p.rater.nbytes + p.value.nbytes)
    return {"sweep_s": s, "floor_s": f, "ratio": s / f, "floor_gbps": bytes_read / f / 1e9}


def forced_drops(filters: dict, share: float, seed: int = 7) -> dict:
    """``scoring_filters``' masks with a further ``share`` of the ratings (seeded) dropped from
    prescoring's and half that share from final scoring's: the path scoring takes when integrity
    drops ratings, which the honest simulated communities do not."""
    import numpy as np

    rng = np.random.default_rng(seed)
    keep = filters["rating_keep"]
    out = dict(filters)
    out["rating_keep"] = keep & (rng.random(keep.shape[0]) >= share)
    out["final_keep"] = filters["final_keep"] & (rng.random(keep.shape[0]) >= share / 2)
    return out


def run_scale(
    scale: str,
    root: Path,
    threads: int,
    drop: float = 0.0,
    config_path: str | None = None,
    scored: str | None = None,
) -> dict:
    """The whole measurement for one scale, in this process (``drop``: ``forced_drops``' share;
    ``config_path``: TOML overrides of the scoring configuration; ``scored``: a folder to write
    each note's final status to, to compare two configurations' outcomes)."""
    import numba

    from bridgewatch.integrity.adapters import integrity_tables
    from bridgewatch.runner import core_rater_factor, run_integrity, scoring_filters
    from bridgewatch.scoring.config import load_config
    from bridgewatch.scoring.pipeline import score_dataset
    from bridgewatch.sim.config import config_for_scale
    from bridgewatch.sim.simulate import simulate

    numba.set_num_threads(threads)
    data = root / scale
    rows: list[tuple[str, float, float, float]] = []
    if not (data / "notes-00000.tsv").exists():
        t = time.perf_counter()
        simulate(config_for_scale(scale, seed=0), data)
        rows.append(("simulate (not scored)", time.perf_counter() - t, float("nan"), float("nan")))
    sampler = RssSampler()
    rows = _Rows(rows)
    from bridgewatch.io import read_dataset
    from bridgewatch.io.formats import SCORING_NOTE_COLUMNS

    cache = data / ".bwcache"
    shutil.rmtree(cache, ignore_errors=True)  # the first ingest, as a user's first run makes it
    t = time.perf_counter()
    dataset = read_dataset(data, cache_dir=cache, note_columns=SCORING_NOTE_COLUMNS)  # as the job reads
    rows.append(("read TSV (writes the columnar cache)", time.perf_counter() - t, sampler.mark()))
    del dataset  # the cache read's peak is its own, not the TSV dataset's plus it
    dataset, secs, cpu = _cache_read(data, cache)
    rows.append(("read (columnar cache)", secs, sampler.mark(), cpu))
    rows.start()
    m = dataset.ratings
    n_ratings, epoch = m.n_ratings, int(m.created_at.max()) + 86_400_000
    del m  # scoring lends the dataset's matrix out (io.aside): holding it here would keep it
    config = load_config(config_path)
    t = time.perf_counter()
    found = run_integrity(dataset, config)
    rows.append(("integrity (PSS + quasi-cliques)", time.perf_counter() - t, sampler.mark()))

    marks: list[tuple[str, float]] = []

    def progress(name: str) -> None:
        marks.append((name, time.perf_counter()))
        if len(marks) > 1:
            rows.append((marks[-2][0], marks[-1][1] - marks[-2][1], sampler.mark()))

    filters = scoring_filters(dataset, found, config)
    if drop:
        filters = forced_drops(filters, drop)
    dropped = {k: int((~filters[k]).sum()) for k in ("rating_keep", "final_keep")}
    print(f"ratings dropped: {dropped} of {n_ratings}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    result = score_dataset(
        dataset, epoch_millis=epoch, config=config, seed=42, progress=progress, **filters,
    )  # fmt: skip
    del filters
    m = dataset.ratings
    scoring_s = time.perf_counter() - t0
    progress("end")
    phases = rows[-(len(marks) - 1) :]
    total = ("scoring total (all phases)", scoring_s, max(r[2] for r in phases), sum(r[3] for r in phases))
    rows.append(total)
    rows.start()
    t = time.perf_counter()
    factor = core_rater_factor(result, m.rater_ids)
    integrity_tables(m, found, factor, num_threads=threads)
    rows.append(("integrity views (after scoring)", time.perf_counter() - t, sampler.mark()))
    floor = sweep_floor(m, threads)
    sampler.mark()  # the sweep floor's window
    sampler.close()
    # the kernel's own peak, unless the marks reset it (then their largest is the process peak)
    peak = sampler.highest if sampler.exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    counts = {"ratings": m.n_ratings, "notes": m.n_notes, "raters": m.n_raters}
    statuses = result.scored_notes["finalRatingStatus"].value_counts().to_dict()
    if scored is not None:
        Path(scored).mkdir(parents=True, exist_ok=True)
        table = result.scored_notes[["noteId", "finalRatingStatus"]]
        table.to_csv(Path(scored) / f"{scale}-finalRatingStatus.tsv", sep="\t", index=False)
    return {
        "scale": scale,
        "rows": rows,
        "floor": floor,
        "peak_gib": peak,
        "counts": counts,
        "statuses": statuses,
    }


class _Rows(list):
    """The table's rows (phase, wall s, peak RSS GiB, CPU s of all threads), each also printed to
    stderr as it comes: a public-scale run takes an hour, and a phase that runs out of memory must
    not take the finished phases' numbers with it. CPU is counted from ``start`` (or the previous
    row): on a shared machine it is the steadier of the two times."""

    def __init__(self, rows: list) -> None:
        super().__init__(rows)
        self.start()

    def start(self) -> None:
        self._cpu = time.process_time()

    def append(self, row: tuple) -> None:
        now = time.process_time()
        if len(row) == 3:
            row = (*row, now - self._cpu)
        self._cpu = now
        super().append(row)
        name, secs, peak, cpu = row
        line = f"{time.strftime('%H:%M:%S')} {name:<44} {secs:9.2f} s {cpu:9.2f} cpu s {peak:6.2f} GiB"
        print(line, file=sys.stderr, flush=True)


def _cache_read(data: Path, cache: Path):
    """(dataset, wall s, CPU s) read back through the columnar cache the TSV read wrote."""
    from bridgewatch.io import read_dataset
    from bridgewatch.io.formats import SCORING_NOTE_COLUMNS

    t, cpu = time.perf_counter(), time.process_time()
    dataset = read_dataset(data, cache_dir=cache, note_columns=SCORING_NOTE_COLUMNS)
    return dataset, time.perf_counter() - t, time.process_time() - cpu


def markdown(res: dict) -> str:
    c = res["counts"]
    out = [
        f"### {res['scale']}: {c['ratings']:,} ratings, {c['notes']:,} notes, {c['raters']:,} raters",
        "",
        "| phase | wall s | CPU s | peak RSS GiB |",
        "|---|---:|---:|---:|",
    ]
    out += [f"| {name} | {secs:.2f} | {cpu:.2f} | {peak:.2f} |" for name, secs, peak, cpu in res["rows"]]
    f = res["floor"]
    out += [
        "",
        f"Process peak RSS {res['peak_gib']:.2f} GiB. One factorization sweep {f['sweep_s']:.3f} s vs one "
        f"streaming pass over the same arrays {f['floor_s']:.3f} s ({f['floor_gbps']:.1f} GB/s): "
        f"ratio {f['ratio']:.2f}.",
        f"Final statuses: {res['statuses']}",
        "",
    ]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", default="medium,large,public")
    ap.add_argument("--root", default="/tmp/bw-scale")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--drop", type=float, default=0.0, help="also drop this share of ratings (forced_drops)")
    ap.add_argument("--config", default=None, help="TOML overrides of the scoring configuration")
    ap.add_argument("--scored", default=None, help="write SCALE-finalRatingStatus.tsv into this folder")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    if args.worker:
        print(
            "RESULT "
            + json.dumps(run_scale(args.worker, root, args.threads, args.drop, args.config, args.scored)),
            flush=True,
        )
        return
    parts = []
    for scale in args.scales.split(","):
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            scale,
            "--root",
            str(root),
            "--threads",
            str(args.threads),
            "--drop",
            str(args.drop),
        ]
        cmd += ["--config", args.config] if args.config else []
        cmd += ["--scored", args.scored] if args.scored else []
        # The worker's stderr is this process's: its rows appear as each phase ends, and a run
        # killed for memory an hour in still leaves the phases it finished on the terminal.
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
        lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            print(f"{scale}: failed (exit {proc.returncode}); its finished phases are on stderr above")
            continue
        text = markdown(json.loads(lines[-1][7:]))
        print(text, flush=True)
        parts.append(text)
    (root / "scale.md").write_text("\n".join(parts), encoding="utf-8")


if __name__ == "__main__":
    main()
