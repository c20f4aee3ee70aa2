"""Incremental final scoring (§6.7): which notes to rescore, and how to merge with the last run.

With rater parameters frozen by prescoring, a note's final result depends on its own ratings,
its notes and status-history rows, its topic, a few per-rater flags of its raters, and the clock
(the stabilization timer and the 14-day lock). ``note_fingerprints`` condenses the per-note part
into hashes; ``notes_to_rescore`` compares them with the previous final run's and adds the notes
the clock can move. Every other note keeps the previous run's rows (``merge_rows``).

Partial rescoring: a note whose only changed input is the high-volume flag of some of its raters
(``raters_changed`` split by ``high_only``) keeps every fit except the NoHighVol refits. Its other
fitted values come from the previous run (``ReusedFits``, stored per scorer as ``FIT_NAMES``);
the cheap rest of the scorer (filters, rules, meta, history) runs on it as on any rescored note.

The reference rescores a looser union (new ratings, notes < 14 days old not rescored in 24 h,
recent flips, stabilization, unlocked notes aged 14–21 days); ours is driven by the inputs that
actually changed, so statuses match a full final run on the same data.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

from bridgewatch.io.matrix import RatingMatrix, first_positions
from bridgewatch.scoring.compact import compact
from bridgewatch.scoring.rating_pass import note_counts

HOUR_MILLIS = 3_600_000
# aux_note_info's numRatingsLast28 counts ratings newer than this before the scoring time.
RECENT_MILLIS = 28 * 86_400_000
FINGERPRINTS = ("ratingsHash", "noteRowHash", "historyRowHash", "topic")


@numba.njit(cache=True, inline="always")
def _mix1(x):
    """splitmix64's finalizer of one uint64 (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def _ratings_hashes(indptr, population_sampled, created_at, tags, value, rater, rater_hash):
    """uint64[N]: per note, the wrapping sum over its ratings of the chained ``_mix1`` of
    (population-sampled, time bits, tags, float64 value bits, rater id hash). One pass: the
    vectorized chain held ~5 uint64 arrays of length R at once (~40 bytes a rating over every
    rating of the dataset, final scoring's largest step in phase mode)."""
    n = indptr.shape[0] - 1
    out = np.zeros(n, dtype=np.uint64)
    bits = np.zeros(1, dtype=np.float64)
    as_int = bits.view(np.uint64)
    for i in range(n):
        acc = np.uint64(0)
        for r in range(indptr[i], indptr[i + 1]):
            h = _mix1(np.uint64(1) if population_sampled[r] else np.uint64(0))
            h = _mix1(h ^ np.uint64(created_at[r]))
            h = _mix1(h ^ np.uint64(tags[r]))
            bits[0] = np.float64(value[r])
            h = _mix1(h ^ as_int[0])
            acc += _mix1(h ^ rater_hash[rater[r]])
        out[i] = acc
    return out


def _row_hashes(frame: pd.DataFrame) -> np.ndarray:
    return pd.util.hash_pandas_object(frame, index=False).to_numpy(np.uint64)


def _per_note(frame: pd.DataFrame, note_ids: np.ndarray) -> np.ndarray:
    """uint64[N] hash of each note's row in ``frame`` (0 where the note has no row)."""
    out = np.zeros(note_ids.shape[0], dtype=np.uint64)
    if frame.empty:
        return out
    rows = frame.drop_duplicates(subset=["noteId"])
    pos = pd.Index(note_ids).get_indexer(rows["noteId"].to_numpy(np.int64))
    ok = pos >= 0
    out[pos[ok]] = _row_hashes(rows.reset_index(drop=True))[ok]
    return out


def _id_hashes(ids: np.ndarray) -> np.ndarray:
    """uint64[U]: ``pd.util.hash_array`` of the ids as text. Ids that are all ``str`` already
    hash as they are, unfactorized (they are unique): the same hashes, without the round trip
    through a numpy text array and the factorization that cost ~7x more."""
    ids = np.asarray(ids, dtype=object)
    if pd.api.types.infer_dtype(ids, skipna=False) == "string":
        return pd.util.hash_array(ids, categorize=False)
    return pd.util.hash_array(ids.astype(str))


def note_row_hashes(notes: pd.DataFrame, note_ids: np.ndarray) -> np.ndarray:
    """uint64[N]: the ``noteRowHash`` fingerprint of each note of ``note_ids`` (0: no notes row),
    over every column of its notes row: for a caller that narrows the notes frame before
    ``note_fingerprints`` runs."""
    return _per_note(notes, note_ids)


def note_fingerprints(
    matrix: RatingMatrix,
    notes: pd.DataFrame,
    status_history: pd.DataFrame,
    topic: np.ndarray | None,
    note_rows: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per note of ``matrix`` (N rows): noteId and the ``FINGERPRINTS`` columns (int64).

    ``ratingsHash`` is an order-free sum of per-rating hashes over (rater id, value, tags, time,
    population-sampled), so it does not depend on the dense ids of one run. ``note_rows``:
    ``note_row_hashes`` of the notes as read, where ``notes`` has been narrowed since.
    """
    ratings = _ratings_hashes(
        matrix.note_indptr, matrix.population_sampled, np.asarray(matrix.created_at, dtype=np.int64),
        matrix.tags, matrix.value, matrix.rater, _id_hashes(matrix.rater_ids),
    )  # fmt: skip
    t = np.full(matrix.n_notes, -1, dtype=np.int64) if topic is None else np.asarray(topic, dtype=np.int64)
    rows = note_row_hashes(notes, matrix.note_ids) if note_rows is None else note_rows
    return pd.DataFrame(
        {
            "noteId": matrix.note_ids,
            "ratingsHash": ratings.view(np.int64),
            "noteRowHash": rows.view(np.int64),
            "historyRowHash": _per_note(status_history, matrix.note_ids).view(np.int64),
            "topic": t,
        }
    )


# A scorer's fitted per-note values the rules, filters and outputs read; everything else final
# scoring computes per note is a count or a filter over the ratings, cheap to redo.
FIT_NAMES = (
    "intercept",
    "factor",
    "noCorrelated",
    "populationSampled",
    "interceptMin",
    "interceptMax",
    "lowDiligence",
    "noHighVol",
)
# The final frame's column (after the scorer's prefix) each fit is, before the capture test
# blanks some notes; the low-diligence fit is the run's ``low_diligence`` instead.
FIT_COLUMNS = {
    "intercept": "NoteIntercept",
    "factor": "NoteFactor1",
    "noCorrelated": "NoteInterceptNoCorrelated",
    "populationSampled": "NoteInterceptPopulationSampled",
    "interceptMin": "NoteInterceptMin",
    "interceptMax": "NoteInterceptMax",
    "noHighVol": "NoteInterceptNoHighVol",
}
# Fits a scorer may leave out of its ``fits`` (stored as NaN) and a state may lack (older runs):
# the Gaussian NoHighVol pass, reused where its inputs provably did not move (``gaussian_run``).
OPTIONAL_FITS = frozenset({"noHighVol"})


@dataclass(frozen=True, eq=False)
class ReusedFits:
    """One scorer's fits carried over from the previous final run (partial rescoring).

    ``fixed``: bool[N] notes (of the matrix being scored) whose fits are not redone;
    ``values``: ``FIT_NAMES`` → float64[N] (or its ``compact`` form: read through ``np.asarray``),
    the previous run's values (read on ``fixed`` only; an ``OPTIONAL_FITS`` name the previous
    state lacks is absent).
    The NoHighVol refit runs; every other fit skips the ``fixed`` notes' ratings. ``high_flipped``:
    bool[U] raters whose high-volume flag alone flipped since that run (None: unknown), from
    which a scorer whose NoHighVol values depend on each note's ratings only (Gaussian) tells
    the ``fixed`` notes whose NoHighVol input did not move.
    """

    fixed: np.ndarray
    values: Mapping[str, np.ndarray]
    high_flipped: np.ndarray | None = None

    def fit_mask(self, mask: np.ndarray, note: np.ndarray) -> np.ndarray:
        """bool[R]: ``mask`` without the ratings of ``fixed`` notes (``note``: int[R])."""
        return mask & _refitted(self.fixed, note)

    def take(self, name: str, fresh: np.ndarray) -> np.ndarray:
        """float64[N]: ``fresh`` with the previous run's ``name`` values on ``fixed`` notes."""
        out = np.array(fresh, dtype=np.float64, copy=True)
        out[self.fixed] = np.asarray(self.values[name], dtype=np.float64)[self.fixed]
        return out


# (weak refs to ``fixed`` and ``note``, read-only ``~fixed[note]``) of the last call: every
# scorer's ReusedFits of one run shares one ``fixed`` array and the matrix's ``note``, and each
# asks for its ratings ~5 times; the gather over R ratings is then made once per run.
# The last two: a Gaussian scorer's NoHighVol pass asks with its own ``fixed`` in between.
_LAST_REFITTED: list[tuple[weakref.ref, weakref.ref, np.ndarray]] = []


def _refitted(fixed: np.ndarray, note: np.ndarray) -> np.ndarray:
    """bool[R] (read-only): the ratings of notes not ``fixed`` (``note``: int[R])."""
    for f, n, out in _LAST_REFITTED:
        if f() is fixed and n() is note:
            return out
    out = ~np.asarray(fixed, dtype=bool)[note]
    out.flags.writeable = False
    try:
        entry = (weakref.ref(fixed), weakref.ref(note), out)
    except TypeError:  # not weak-referenceable (a view of a non-array): no cache
        return out
    _LAST_REFITTED[:] = [entry, *_LAST_REFITTED[:1]]
    return out


def reuse_or_fit(reuse: ReusedFits | None, mask: np.ndarray, note: np.ndarray) -> np.ndarray:
    """The ratings a fit runs on: ``mask``, less the ``fixed`` notes' when fits are reused."""
    return mask if reuse is None else reuse.fit_mask(mask, note)


def taken(reuse: ReusedFits | None, name: str, fresh: np.ndarray) -> np.ndarray:
    """``fresh``, with the reused values on ``fixed`` notes when fits are reused."""
    return fresh if reuse is None else reuse.take(name, fresh)


def rater_changes(previous: pd.DataFrame, current: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(group, high_volume) bool[U] per row of ``current``: raters whose group changed (or who are
    new) since ``previous``, and raters whose high-volume flag alone flipped.

    Both frames hold ``raterParticipantId``, ``highVolume`` and ``group`` (the final state's
    rater table). A high-volume flip counts for every rater, helpful or not: the NoHighVol refits
    apply the 5-ratings-per-note filter before the helpfulness filter (MF and Gaussian alike), so
    an unhelpful rater's flip can move a note across it. A rater absent from ``previous`` counts
    as changed group (it had none there).
    """
    pos = first_positions(previous["raterParticipantId"], current["raterParticipantId"])
    known = pos >= 0
    at = np.maximum(pos, 0)
    was_high = np.where(known, previous["highVolume"].to_numpy(bool)[at], False)
    was_group = np.where(known, previous["group"].to_numpy(np.int64)[at], -2)
    high = was_high != current["highVolume"].to_numpy(bool)
    group = was_group != current["group"].to_numpy(np.int64)
    return group, high & ~group


def raters_changed(previous: pd.DataFrame, current: pd.DataFrame) -> np.ndarray:
    """bool[U] per row of ``current``: raters whose per-rater final inputs changed (``rater_changes``)."""
    group, high = rater_changes(previous, current)
    return group | high


def touched_notes(matrix: RatingMatrix, raters: np.ndarray) -> np.ndarray:
    """bool[N]: notes with at least one rating by ``raters`` (bool[U])."""
    hit = np.asarray(raters, dtype=bool)[matrix.rater]
    return note_counts(matrix, hit) > 0


def ratings_aged_out(matrix: RatingMatrix, previous_epoch_millis: int, epoch_millis: int) -> np.ndarray:
    """bool[N]: notes with a rating that left the last-28-days window between the two runs
    (their ``numRatingsLast28`` moved although no input did)."""
    created = matrix.created_at
    left = (created > previous_epoch_millis - RECENT_MILLIS) & (created <= epoch_millis - RECENT_MILLIS)
    return note_counts(matrix, left) > 0


def notes_to_rescore(
    current: pd.DataFrame,
    previous: pd.DataFrame,
    rater_changed: np.ndarray,
    matrix: RatingMatrix,
    created: np.ndarray,
    stabilization_timer: np.ndarray,
    *,
    epoch_millis: int,
    previous_epoch_millis: int,
    lock_millis: int,
) -> np.ndarray:
    """bool[N]: notes of ``matrix`` whose final result may differ from the previous run's.

    ``current`` / ``previous``: ``note_fingerprints`` frames (previous: of the last final run);
    ``rater_changed``: bool[U] raters whose per-rater inputs changed (group; with the high-volume
    flag unless those notes are rescored partially, ``rater_changes``);
    ``created``: float64[N] note creation times; ``stabilization_timer``: float64[N] the input
    ``timestampMillisOfNmrDueToMinStableCrhTime``. A clock that went backwards rescores everything.
    """
    n = matrix.n_notes
    if epoch_millis < previous_epoch_millis:
        return np.ones(n, dtype=bool)
    prev = previous.drop_duplicates(subset=["noteId"])
    pos = pd.Index(prev["noteId"].to_numpy(np.int64)).get_indexer(current["noteId"].to_numpy(np.int64))
    out = pos < 0
    for col in FINGERPRINTS:
        before = prev[col].to_numpy(np.int64)[np.maximum(pos, 0)] if len(prev) else 0
        out |= before != current[col].to_numpy(np.int64)
    out |= touched_notes(matrix, rater_changed)
    out |= np.nan_to_num(stabilization_timer, nan=0.0) > 0
    # The lock needs age > lock_millis: notes that crossed that age between the two runs (with an
    # hour to spare either side).
    age_prev = previous_epoch_millis - created
    age_now = epoch_millis - created
    out |= (age_prev <= lock_millis + HOUR_MILLIS) & (age_now > lock_millis - HOUR_MILLIS)
    out |= np.isnan(created)
    return out


def merge_rows(
    new: pd.DataFrame,
    previous: pd.DataFrame,
    rescored: np.ndarray,
    key: str = "noteId",
    universe: np.ndarray | None = None,
):
    """Rows of ``new`` for ``rescored`` ids (int64 array), rows of ``previous`` for the others.

    The row set is ``universe`` (ids; None: ``new``'s): notes that vanished are dropped, a note
    missing from ``previous`` keeps its new row; order and dtypes follow ``new``.
    """
    ids = new[key].to_numpy() if universe is None else np.asarray(universe)
    old_keys = previous[key].to_numpy()
    take_prev = ids[~np.isin(ids, rescored) & np.isin(ids, old_keys)]
    old = previous[list(new.columns)]
    # (the dtypes side by side: reading each of ~100 columns back as a Series cost more than the rest)
    cast = {c: t for (c, t), was in zip(new.dtypes.items(), old.dtypes, strict=True) if was != t}
    old = old.astype(cast) if cast else old
    # new's rows not taken from ``previous``, then previous's taken ones, in key order (stable):
    # one concatenation and one take per column instead of two filters, a concatenation and a sort
    new_keys = new[key].to_numpy()
    from_new = np.flatnonzero(~np.isin(new_keys, take_prev))
    rows = np.concatenate([from_new, len(new) + np.flatnonzero(np.isin(old_keys, take_prev))])
    keys = np.concatenate([new_keys, old_keys])[rows]
    order = rows[np.argsort(keys, kind="stable")]
    # A column at a time: the two frames concatenated, then taken, were two copies of the whole
    # table at once (an incremental run's rows are mostly the last run's: the whole table).
    columns = {}
    for c in new.columns:
        both = pd.concat([new[c], old[c]], ignore_index=True)
        columns[c] = both.take(order).reset_index(drop=True)
    return pd.DataFrame(columns, copy=False)


@dataclass(frozen=True, eq=False)
class RescorePlan:
    """What an incremental final run scores: ``notes`` bool[N] (fully or partially) and, per
    scorer name, the fits its partially rescored notes keep (``ReusedFits``; none: all fully)."""

    notes: np.ndarray
    reuse: Mapping[str, ReusedFits]


def fits_table(runs: Mapping[str, object], note_ids: np.ndarray, rows: np.ndarray) -> pd.DataFrame:
    """Long table of every scorer's fitted values (``FIT_NAMES``) on the notes ``rows`` (bool[N]):
    one row per (scorer, note) with any finite value, sorted by scorer then noteId.

    ``runs``: scorer name → ``ScorerRun`` (its ``fits``: ``FIT_NAMES`` → float64[N])."""
    return pd.concat(list(fits_frames(runs, note_ids, rows)), ignore_index=True)


def fits_frames(runs: Mapping[str, object], note_ids: np.ndarray, rows: np.ndarray) -> Iterator[pd.DataFrame]:
    """``fits_table`` as one frame per scorer, in its order (one empty frame when no scorer has
    fits), made as they are read: written so (``state``), the table is never whole (at X's
    scale ~20M rows, ~2 GB a copy)."""
    rows = np.asarray(rows, dtype=bool)
    ids = np.asarray(note_ids, dtype=np.int64)
    picked = np.flatnonzero(rows)
    nan = np.full(picked.shape[0], np.nan)
    made = False
    for name in sorted(runs):
        fits = getattr(runs[name], "fits", None)
        if not fits:
            continue
        # only the rows asked for are expanded (the kept fits may be sparse, ``compact``)
        values = {
            f: nan if f in OPTIONAL_FITS and f not in fits else np.asarray(fits[f], dtype=np.float64)[picked]
            for f in FIT_NAMES
        }
        keep = np.logical_or.reduce([np.isfinite(v) for v in values.values()])
        frame = {"scorer": np.full(int(keep.sum()), name, dtype=object), "noteId": ids[picked[keep]]}
        yield pd.DataFrame(frame | {f: v[keep] for f, v in values.items()}, copy=False)
        made = True
    if not made:
        yield empty_fits()


def empty_fits() -> pd.DataFrame:
    cols = {"scorer": pd.Series([], dtype=object), "noteId": pd.Series([], dtype=np.int64)}
    cols |= {f: pd.Series([], dtype=np.float64) for f in FIT_NAMES}
    return pd.DataFrame(cols)


def merge_fits(new: pd.DataFrame, previous: pd.DataFrame, rescored: np.ndarray) -> pd.DataFrame:
    """``new``'s rows for the ``rescored`` note ids (int64 array), ``previous``'s for the others;
    sorted by scorer then noteId."""
    old = previous[~previous["noteId"].isin(rescored)]
    old = old.reindex(columns=list(new.columns))  # an older state lacks the OPTIONAL_FITS (NaN)
    merged = pd.concat([new[new["noteId"].isin(rescored)], old], ignore_index=True)
    return merged.sort_values(["scorer", "noteId"], kind="stable").reset_index(drop=True)


def reused_fits(
    table: pd.DataFrame, note_ids: np.ndarray, partial: np.ndarray, high_flipped: np.ndarray | None = None
) -> dict[str, ReusedFits]:
    """Per scorer of ``table`` (``fits_table`` of the previous run): its values on the ``partial``
    notes (bool[N] over ``note_ids``), NaN where it had none (the scorer did not fit the note).
    ``high_flipped``: bool[U] raters whose high-volume flag alone flipped since that run."""
    partial = np.asarray(partial, dtype=bool)
    out: dict[str, ReusedFits] = {}
    index = pd.Index(np.asarray(note_ids, dtype=np.int64))
    if table.empty:
        return out
    # Each column read once, then sliced per scorer (a groupby read every column of every
    # scorer's group as a Series: ~250 reads, a fixed cost of each incremental run).
    group, scorers = pd.factorize(table["scorer"], sort=True)  # as groupby's keys (codes)
    pos = index.get_indexer(table["noteId"].to_numpy(np.int64))
    columns = {f: table[f].to_numpy(np.float64) for f in FIT_NAMES if f in table.columns}
    order = np.argsort(group, kind="stable")  # each scorer's rows in table order
    bounds = np.searchsorted(group[order], np.arange(scorers.shape[0] + 1))
    for k, name in enumerate(map(str, scorers)):
        rows = order[bounds[k] : bounds[k + 1]]
        rows = rows[pos[rows] >= 0]
        values = {}
        for f, column in columns.items():  # an OPTIONAL_FITS name an older state lacks is absent
            v = np.full(index.shape[0], np.nan)
            v[pos[rows]] = column[rows]
            # kept sparse: read on the few partial notes only, it was 8 bytes a note a fit a
            # scorer (~1.9 KB a note over ~30 scorers, by dtype) for the incremental run's scoring
            values[f] = compact(v)
        out[name] = ReusedFits(partial, values, high_flipped)
    return out


def same_fit(
    mask: np.ndarray, rho_n: float, fit_mask: np.ndarray, fit_rho: float, fitted: np.ndarray
) -> np.ndarray | None:
    """A copy of ``fitted`` (float64[N], the final fit's intercepts, made on the ratings
    ``fit_mask`` bool[R] with ``fit_rho``) when a refit on ``mask`` with ``rho_n`` is that same fit,
    else None. A fit is a function of its ratings and regularization alone (deterministic), so a
    refit whose subset drops no rating of the fit's (no correlated rater in scope, say) need not
    run again: the same bits, one Adam fit less."""
    if rho_n != fit_rho or not np.array_equal(mask, fit_mask):
        return None
    return np.array(fitted, dtype=np.float64, copy=True)
