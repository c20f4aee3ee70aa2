"""Run a simulation end to end and stream the public-format files to a directory.

Output (``out_dir``): ``notes-00000.tsv``, ``ratings-00000.tsv`` (or ``ratings-000NN.tsv`` shards),
``noteStatusHistory-00000.tsv``, ``userEnrollment-00000.tsv``, ``truth.tsv`` and ``meta.json``.
Every random draw comes from a ``SeedSequence`` keyed by (seed, stream, block), so the bytes depend
only on the config; ratings are generated and written one block of notes at a time, so memory is
bounded by the community arrays plus one block.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from bridgewatch.io.atomic import atomic_path, atomic_text
from bridgewatch.io.tsv import write_tsv
from bridgewatch.schema import (
    ENROLLMENT_COLUMNS,
    ENROLLMENT_FILE,
    MISLEADING,
    NOT_MISLEADING,
    NOTE_COLUMNS,
    NOTE_REASON_COLUMNS,
    NOTE_STATUS_HISTORY_COLUMNS,
    NOTES_FILE,
    RATING_COLUMNS,
    STATUS_FILE,
)
from bridgewatch.sim.attacks import apply_attack
from bridgewatch.sim.community import Community, build_community
from bridgewatch.sim.config import SimConfig, validate
from bridgewatch.sim.fastwrite import int_field, write_ratings_indexed
from bridgewatch.sim.history import (
    STATUS_NAMES,
    TRUTH_COLUMNS,
    enrollment,
    prior_status,
    status_history,
    truth,
)
from bridgewatch.sim.ratings import LEVEL_NAMES, RaterSampler, RatingBlock, honest_block, invalid_pairs
from bridgewatch.sim.text import make_vocabulary, summaries

TRUTH_FILE = "truth.tsv"
META_FILE = "meta.json"
Progress = Callable[[str, int, int], None]  # (stage, done, total)
_NOTE_CHUNK = 50_000
# (stream) keys of the SeedSequence: one independent stream per use
_COMMUNITY, _ATTACK, _HISTORY, _TEXT, _BLOCK, _TRUTH = 1, 2, 3, 4, 5, 6
# misleading reasons (first 7 of NOTE_REASON_COLUMNS) and not-misleading ones (last 5): pick weights
_MISLEADING_W = np.array([0.05, 0.35, 0.04, 0.03, 0.40, 0.12, 0.01])
_NOT_MISLEADING_W = np.array([0.2, 0.5, 0.05, 0.1, 0.15])


@dataclass(frozen=True)
class SimulationSummary:
    """What a run wrote: counts, files, the attack, time and throughput."""

    out_dir: str
    scale: str
    seed: int
    notes: int
    raters: int
    posts: int
    ratings: int
    ratings_files: tuple[str, ...]
    level_counts: dict[str, int]
    prior_status: dict[str, int]
    locked_notes: int
    attack: str | None
    attackers: int
    attack_targets: int
    attack_ratings: int
    seconds: float = field(compare=False)
    ratings_per_second: float = field(compare=False)


def _rng(cfg: SimConfig, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([cfg.seed, stream, index]))


def _note_chunks(comm: Community, cfg: SimConfig) -> Iterator[pd.DataFrame]:
    """The notes table in chunks of ``_NOTE_CHUNK`` rows (reference columns, §1.2)."""
    vocab = make_vocabulary(_rng(cfg, _TEXT, 0))
    topic = comm.post_topic[comm.note_post]
    for c, lo in enumerate(range(0, comm.n_notes, _NOTE_CHUNK)):
        hi = min(comm.n_notes, lo + _NOTE_CHUNK)
        rng = _rng(cfg, _TEXT, c + 1)
        mis = comm.misleading[lo:hi]
        n = hi - lo
        reasons = np.zeros((n, len(NOTE_REASON_COLUMNS)), dtype=np.int8)
        first_m = rng.choice(7, size=n, p=_MISLEADING_W)
        second_m = rng.choice(7, size=n, p=_MISLEADING_W)
        first_nm = 7 + rng.choice(5, size=n, p=_NOT_MISLEADING_W)
        rows = np.arange(n)
        reasons[rows, np.where(mis, first_m, first_nm)] = 1
        extra = mis & (rng.random(n) < 0.2)
        reasons[rows[extra], second_m[extra]] = 1
        frame = pd.DataFrame(
            {
                "noteId": comm.note_id[lo:hi],
                "noteAuthorParticipantId": comm.rater_id_bytes[comm.author[lo:hi]]
                .view("S64")
                .ravel()
                .astype(str),
                "createdAtMillis": comm.note_millis[lo:hi],
                "tweetId": comm.post_id[comm.note_post[lo:hi]],
                "classification": np.where(mis, MISLEADING, NOT_MISLEADING),
                **{name: reasons[:, j] for j, name in enumerate(NOTE_REASON_COLUMNS)},
                "trustworthySources": comm.has_url[lo:hi].astype(np.int8),
                "summary": summaries(rng, vocab, topic[lo:hi], comm.has_url[lo:hi]),
                "isMediaNote": (rng.random(n) < 0.03).astype(np.int8),
                "isCollaborativeNote": np.zeros(n, dtype=np.int8),
            }
        )
        yield frame


def _block_edges(planned: np.ndarray, block_ratings: int) -> np.ndarray:
    """Note-index edges (B+1,) splitting notes into blocks of about ``block_ratings`` ratings."""
    cum = np.cumsum(planned)
    total = int(cum[-1]) if cum.size else 0
    cuts = np.searchsorted(cum, np.arange(block_ratings, total, block_ratings), side="right")
    return np.unique(np.concatenate([[0], cuts, [planned.size]])).astype(np.int64)


class _ShardWriter:
    """Ratings files: one, or a new ``ratings-NNNNN.tsv`` once a shard holds ``limit`` rows. Atomic each."""

    def __init__(self, out: Path, limit: int) -> None:
        self.out, self.limit = out, limit
        self.names: list[str] = []
        self.rows = 0
        self.fh: IO[bytes] | None = None
        self._inner: contextlib.ExitStack | None = None

    def stream(self) -> IO[bytes]:
        if self.fh is None or (self.limit and self.rows >= self.limit):
            self.close()
            name = f"ratings-{len(self.names):05d}.tsv"
            self._inner = contextlib.ExitStack()
            tmp = self._inner.enter_context(atomic_path(self.out / name))
            self.fh = self._inner.enter_context(open(tmp, "wb"))  # noqa: SIM115 (closed by the stack)
            self.fh.write(("\t".join(RATING_COLUMNS) + "\n").encode("ascii"))
            self.names.append(name)
            self.rows = 0
        return self.fh

    def abort(self) -> None:
        """Drop the shard being written (its temporary file goes, nothing is renamed)."""
        if self._inner is not None:
            inner, self._inner, self.fh = self._inner, None, None
            with contextlib.suppress(RuntimeError):
                inner.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()  # closes the file, then renames it into place
            self._inner, self.fh = None, None


def _write_ratings(
    comm: Community, cfg: SimConfig, attack: RatingBlock, out: Path, progress: Progress | None
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Generate and write all ratings; return file names, per-note and per-rater counts, level counts."""
    sampler = RaterSampler(comm)
    edges = _block_edges(comm.planned, cfg.block_ratings)
    note_counts = np.zeros(comm.n_notes, dtype=np.int64)
    rater_counts = np.zeros(comm.n_raters, dtype=np.int64)
    levels = np.zeros(len(LEVEL_NAMES), dtype=np.int64)
    total = int(comm.planned.sum()) + attack.size
    done = 0
    note_digits = int_field(comm.note_id)  # (N, 19): each note rendered once, gathered per rating
    tweet_digits = int_field(comm.post_id[comm.note_post])
    writer = _ShardWriter(out, cfg.ratings_per_shard)
    try:
        for b in range(edges.size - 1):
            lo, hi = int(edges[b]), int(edges[b + 1])
            honest = honest_block(_rng(cfg, _BLOCK, b), comm, cfg, sampler, lo, hi)
            a_lo, a_hi = np.searchsorted(attack.note, [lo, hi])
            block = RatingBlock.concat([attack.take(np.arange(a_lo, a_hi)), honest])
            block = block.take(
                np.flatnonzero(~invalid_pairs(block.note, block.rater, comm.author, comm.n_raters))
            )
            block = block.take(np.lexsort((block.millis, block.note)))
            write_ratings_indexed(
                writer.stream(),
                note_digits,
                block.note,
                comm.rater_id_bytes,
                block.rater,
                block.millis,
                block.level,
                block.tags,
                tweet_digits,
                block.sampled,
            )
            writer.rows += block.size
            note_counts += np.bincount(block.note, minlength=comm.n_notes)
            rater_counts += np.bincount(block.rater, minlength=comm.n_raters)
            levels += np.bincount(block.level, minlength=len(LEVEL_NAMES))
            done += int(comm.planned[lo:hi].sum()) + int(a_hi - a_lo)
            if progress is not None:
                progress("ratings", done, total)
        if not writer.names:
            writer.stream()  # a run with no ratings still writes the header-only file
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return writer.names, note_counts, rater_counts, levels


def simulate(
    config: SimConfig, out_dir: str | os.PathLike[str], progress: Progress | None = None
) -> SimulationSummary:
    """Simulate the community of ``config`` into ``out_dir`` (created if needed); see the module doc.

    ``progress(stage, done, total)`` is called as work advances (stages: community, notes,
    ratings, tables).
    """
    cfg = validate(config)
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    comm = build_community(cfg, _rng(cfg, _COMMUNITY))
    attack = apply_attack(comm, cfg, _rng(cfg, _ATTACK))
    status = prior_status(comm, cfg, _rng(cfg, _HISTORY, 0))
    if progress is not None:
        progress("community", 1, 1)

    def notes_with_progress() -> Iterator[pd.DataFrame]:
        for i, frame in enumerate(_note_chunks(comm, cfg)):
            yield frame
            if progress is not None:
                progress("notes", min(comm.n_notes, (i + 1) * _NOTE_CHUNK), comm.n_notes)

    write_tsv(out / NOTES_FILE, notes_with_progress(), NOTE_COLUMNS)
    t_r = time.perf_counter()
    files, note_counts, rater_counts, levels = _write_ratings(comm, cfg, attack, out, progress)
    rating_seconds = time.perf_counter() - t_r
    prior_counts = dict.fromkeys(STATUS_NAMES, 0)
    locked = 0

    def nsh_chunks() -> Iterator[pd.DataFrame]:
        nonlocal locked
        for part in status_history(comm, cfg, status, _rng(cfg, _HISTORY, 1)):
            for name, count in part["currentStatus"].value_counts().items():
                prior_counts[str(name)] += int(count)
            locked += int(part["lockedStatus"].notna().sum())
            yield part

    write_tsv(out / STATUS_FILE, nsh_chunks(), NOTE_STATUS_HISTORY_COLUMNS)
    write_tsv(out / ENROLLMENT_FILE, enrollment(comm, cfg), ENROLLMENT_COLUMNS)
    truth_rows = truth(comm, cfg, status, note_counts, rater_counts, _rng(cfg, _TRUTH))
    write_tsv(out / TRUTH_FILE, truth_rows, TRUTH_COLUMNS)
    n_ratings = int(levels.sum())
    summary = SimulationSummary(
        out_dir=str(out),
        scale=cfg.scale,
        seed=cfg.seed,
        notes=comm.n_notes,
        raters=comm.n_raters,
        posts=int(comm.post_id.size),
        ratings=n_ratings,
        ratings_files=tuple(files),
        level_counts={name: int(c) for name, c in zip(LEVEL_NAMES, levels, strict=True)},
        prior_status=prior_counts,
        locked_notes=locked,
        attack=cfg.attack,
        attackers=int((comm.role > 0).sum()),
        attack_targets=int(comm.target.sum()),
        attack_ratings=attack.size,
        seconds=round(time.perf_counter() - t0, 3),
        ratings_per_second=round(n_ratings / max(rating_seconds, 1e-9), 1),
    )
    meta = {
        "generator": "bridgewatch.sim",
        "config": cfg.to_dict(),
        "startMillis": cfg.start_millis,
        "endMillis": cfg.end_millis,
        "priorScoringRunMillis": cfg.prior_run_millis,
        "counts": {
            k: v for k, v in summary.__dict__.items() if k not in ("out_dir", "seconds", "ratings_per_second")
        },
    }
    with atomic_text(out / META_FILE) as fh:
        json.dump(meta, fh, indent=2, sort_keys=True)
        fh.write("\n")
    if progress is not None:
        progress("tables", 1, 1)
    return summary
