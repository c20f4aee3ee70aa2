"""Run the integrity detectors on a ``RatingMatrix`` and a notes table.

The detectors take plain arrays; this module is the one place that maps the matrix's dense ids and
the notes columns (noteId, noteAuthorParticipantId, createdAtMillis, tweetId, classification) onto
them, so the scoring pipeline and the reports call one function each (``detect_integrity``,
``integrity_tables``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

from bridgewatch import schema
from bridgewatch.integrity.coordination import CoordinationParams, concerted_ratings, coordinated_groups
from bridgewatch.integrity.pss import PSSParams, apply_pss, participant_space, post_selection_similarity
from bridgewatch.integrity.quasi_clique import QuasiCliqueParams, quasi_cliques
from bridgewatch.integrity.surprise import SurpriseParams, surprise_filter
from bridgewatch.integrity.views import (
    GROUP_ACTIVITY_FILE,
    GROUP_KINDS,
    NOTE_INTEGRITY_FILE,
    RATER_INTEGRITY_FILE,
    RATER_SIMILARITY_FILE,
    ViewParams,
    group_activity,
    note_view,
    rater_view,
)
from bridgewatch.io.matrix import RatingMatrix, first_positions

RaterModel = tuple[float, np.ndarray, np.ndarray]  # mu, rater intercept float[U], rater factor 1 float[U]


@dataclass(frozen=True)
class IntegrityResult:
    """Per-participant values and per-rating flags for one dataset.

    ``participant_ids`` object[P] (the matrix's raters first, then authors who never rated);
    ``post_selection_value`` int32[P], ``quasi_clique_value`` int32[P] and ``coordinated_value``
    int32[P] (0 = none; the last two are 0 for authors who never rated; ``coordinated_value`` is
    None when the coordination defence is off); ``keep`` bool[R] in matrix order.
    ``surprise_value`` int32[P] (concerted-surprise group, 0 = none) and ``surprise_aside``
    (int64, ascending positions in the matrix of the surprising ratings on flagged notes, already
    out of ``keep``) are None when that defence is off.

    Why positions and no per-rating flags beyond ``keep``: the caller holds this result through
    the whole run, and at X's scale each bool[R] is 0.19 GiB; the set-aside ratings are a few,
    and each rating's quasi-clique flag is ``correlated_rater(matrix.rater, quasi_clique_value)``.
    """

    participant_ids: np.ndarray
    post_selection_value: np.ndarray
    quasi_clique_value: np.ndarray
    keep: np.ndarray
    coordinated_value: np.ndarray | None = None
    surprise_value: np.ndarray | None = None
    surprise_aside: np.ndarray | None = None

    @property
    def surprise_keep(self) -> np.ndarray | None:
        """bool[R], made on each call: false where the defence set a rating aside (final scoring's mask)."""
        if self.surprise_aside is None:
            return None
        out = np.ones(self.keep.shape[0], dtype=bool)
        out[self.surprise_aside] = False
        return out

    @property
    def correlated_ids(self) -> np.ndarray:
        """object[C]: ids of the quasi-clique raters (``quasi_clique_value`` follows the matrix's raters)."""
        qc = self.quasi_clique_value
        return self.participant_ids[: qc.shape[0]][qc > 0]

    def values_frame(self) -> pd.DataFrame:
        """Participants in any clique: raterParticipantId, postSelectionValue, quasiCliqueValue."""
        qc = np.zeros(self.participant_ids.shape[0], dtype=np.int32)
        qc[: self.quasi_clique_value.shape[0]] = self.quasi_clique_value
        m = (self.post_selection_value > 0) | (qc > 0)
        return pd.DataFrame(
            {
                "raterParticipantId": self.participant_ids[m],
                "postSelectionValue": self.post_selection_value[m],
                "quasiCliqueValue": qc[m],
            }
        )


def _note_arrays(matrix: RatingMatrix, notes: pd.DataFrame):
    """Participant space and per-matrix-note author, creation time, tweet and misleading flag."""
    note_ids = notes["noteId"].to_numpy(np.int64)
    row = matrix.note_index(note_ids)
    ids, author_all = participant_space(matrix.rater_ids, notes["noteAuthorParticipantId"].to_numpy(object))
    n_n = matrix.n_notes
    author = np.full(n_n, -1, dtype=np.int32)
    created = np.zeros(n_n, dtype=np.int64)
    tweet = np.full(n_n, -1, dtype=np.int64)
    misleading = np.zeros(n_n, dtype=bool)
    hit = row >= 0
    author[row[hit]] = author_all[hit]
    created[row[hit]] = notes["createdAtMillis"].to_numpy(np.int64)[hit]
    tweet[row[hit]] = pd.to_numeric(notes["tweetId"], errors="coerce").fillna(-1).to_numpy(np.int64)[hit]
    misleading[row[hit]] = (notes["classification"] == schema.MISLEADING).to_numpy()[hit]
    return ids, author_all, author, created, tweet, misleading


def nth_true(mask: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """int64: the positions of the ``ranks``-th (ascending, 0-based) true entries of ``mask``
    (bool[R]), in one pass and without ``flatnonzero``'s int64 per true entry (206M × 8 B,
    1.5 GiB, at X's scale when all are true)."""
    ranks = np.asarray(ranks, dtype=np.int64)
    if ranks.shape[0] and (np.any(np.diff(ranks) <= 0) or ranks[0] < 0):
        raise ValueError("ranks must be ascending, distinct and non-negative")
    out = _nth_true_nb(np.asarray(mask, dtype=np.bool_), ranks)
    if ranks.shape[0] and out[-1] < 0:
        raise ValueError(f"mask has fewer than {int(ranks[-1]) + 1} true entries")
    return out


@numba.njit(cache=True, nogil=True)
def _nth_true_nb(mask, ranks):
    out = np.full(ranks.shape[0], -1, dtype=np.int64)
    seen, j = 0, 0
    for i in range(mask.shape[0]):
        if j == ranks.shape[0]:
            break
        if mask[i]:
            if seen == ranks[j]:
                out[j] = i
                j += 1
            seen += 1
    return out


def _collapsed(
    matrix: RatingMatrix,
    author: np.ndarray,
    n_notes: int,
    coordinated: np.ndarray | None,
    coordination: CoordinationParams | None,
    pss: PSSParams,
) -> tuple[np.ndarray, RatingMatrix]:
    """(keep bool[R], the matrix of the kept ratings): on the notes where a coordinated group acts
    in concert, its ratings go (``coordination.keep_earliest``: all but its earliest, the PSS
    application rule of §7.1)."""
    keep = np.ones(matrix.n_ratings, dtype=bool)
    if coordinated is None or not np.any(coordinated):
        return keep, matrix
    params = coordination if coordination is not None else CoordinationParams()
    c = np.flatnonzero(concerted_ratings(matrix.note, matrix.rater, matrix.value, coordinated, params))
    if params.keep_earliest:
        note, rater, created = matrix.note[c], matrix.rater[c], matrix.created_at[c]
        keep[c] = apply_pss(note, rater, created, author, coordinated, n_notes, pss)
    else:
        keep[c] = False
    return keep, matrix.subset(keep)


def _pss_after(
    first: np.ndarray,
    base: RatingMatrix,
    author: np.ndarray,
    clique: np.ndarray,
    n_notes: int,
    pss: PSSParams,
) -> np.ndarray:
    """bool[R]: the PSS filter on ``base`` (the ratings ``first`` kept), mapped back onto all ratings."""
    out = first.copy()
    out[first] = apply_pss(base.note, base.rater, base.created_at, author, clique, n_notes, pss)
    return out


def _all_text(ids: np.ndarray) -> bool:
    return pd.api.types.infer_dtype(ids, skipna=False) == "string"


def pss_keep(
    matrix: RatingMatrix,
    notes: pd.DataFrame,
    participant_ids: np.ndarray,
    post_selection_value: np.ndarray,
    pss: PSSParams | None = None,
    coordinated_value: np.ndarray | None = None,
    coordination: CoordinationParams | None = None,
) -> np.ndarray:
    """bool[R]: the PSS filter of groups found on earlier data, applied to today's ratings.

    Final scoring reuses prescoring's cliques (§6.8): ``participant_ids`` object[P'] and their
    ``post_selection_value`` int32[P'] (and ``coordinated_value`` int32[P'], if the coordination
    defence ran with ``coordination``) are matched by id (participants not in them: no group). As
    in ``detect_integrity``, coordinated groups are collapsed first (on the notes where each acts
    in concert in today's ratings), then PSS applies to the rest.
    """
    pss = pss if pss is not None else PSSParams()
    ids, _, author, _, _, _ = _note_arrays(matrix, notes)
    participant_ids = np.asarray(participant_ids, dtype=object)
    if _all_text(participant_ids) and _all_text(ids):  # arrow's lookup: no Python hash per id
        pos = first_positions(participant_ids, ids)
    else:
        pos = pd.Index(participant_ids).get_indexer(ids)

    def by_id(values: np.ndarray) -> np.ndarray:
        v = np.asarray(values, dtype=np.int32)
        return np.where(pos >= 0, v[np.maximum(pos, 0)], 0).astype(np.int32)

    coordinated = by_id(coordinated_value) if coordinated_value is not None else None
    first, base = _collapsed(matrix, author, len(notes), coordinated, coordination, pss)
    return _pss_after(first, base, author, by_id(post_selection_value), len(notes), pss)


def final_scoring_filter(
    matrix: RatingMatrix,
    notes: pd.DataFrame,
    participant_ids: np.ndarray,
    post_selection_value: np.ndarray,
    correlated_ids: np.ndarray,
    pss: PSSParams | None = None,
    coordinated_value: np.ndarray | None = None,
    coordination: CoordinationParams | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(keep bool[R], correlated bool[U]): the integrity filter final scoring applies.

    Prescoring drops PSS ratings of every clique and refits without every quasi-clique rater. Final
    scoring (and pflip) in the reference receive the groups as
    ``prescoringRaterModelOutput[[raterParticipantId, postSelectionValue, quasiCliqueValue]].dropna()``,
    where a participant without one of the two values is NaN there: only participants in a PSS clique
    *and* a quasi-clique survive. So final scoring filters the PSS ratings of those alone and flags
    only them as correlatedRater (the NoCorrelated refit). On golden ``mini`` (2 PSS cliques, no
    quasi-clique) the reference's final scoring keeps all 29 ratings prescoring drops: every note's
    numRatings is its raw count. ``pss.final_needs_quasi_clique=False`` applies every clique instead.
    Groups are matched by id (``participant_ids`` object[P], ``post_selection_value`` int32[P],
    ``correlated_ids`` object[C]), so groups found on earlier data apply to newer ratings.
    Coordinated groups (``coordinated_value`` int32[P], Bridgewatch's defence) are collapsed in
    final scoring as in prescoring (``pss_keep``): a campaign must not come back in the final fit.
    """
    pss = pss if pss is not None else PSSParams()
    ids = np.asarray(participant_ids, dtype=object)
    value = np.asarray(post_selection_value, dtype=np.int32)
    in_qc = pd.Index(ids).isin(np.asarray(correlated_ids, dtype=object))
    if pss.final_needs_quasi_clique:
        value = np.where(in_qc, value, 0).astype(np.int32)
        in_qc &= value > 0
    keep = pss_keep(matrix, notes, ids, value, pss, coordinated_value, coordination)
    return keep, pd.Index(np.asarray(matrix.rater_ids, dtype=object)).isin(ids[in_qc])


def detect_integrity(
    matrix: RatingMatrix,
    notes: pd.DataFrame,
    *,
    pss: PSSParams | None = None,
    quasi: QuasiCliqueParams | None = None,
    coordination: CoordinationParams | None = None,
    surprise: SurpriseParams | None = None,
    rater_model: RaterModel | Callable[[RatingMatrix], RaterModel] | None = None,
    surprise_prescoring: bool = True,
    num_threads: int = 1,
    progress: Callable[[str], None] | None = None,
) -> IntegrityResult:
    """PSS cliques (§7.1), quasi-cliques (§7.2), the PSS keep mask and correlatedRater flags.

    ``notes`` needs noteId, noteAuthorParticipantId, createdAtMillis, tweetId, classification; notes
    of the matrix missing from it have no author, no tweet and are not misleading. The PSS filter is
    skipped (all kept) when ``notes`` has fewer than ``pss.min_notes_for_filter`` rows (§9.7).

    ``coordination`` (None: off, the reference) turns on Bridgewatch's coordinated-group defence
    (``integrity.coordination``): each group's ratings on the notes where it acts in concert are set
    aside first (or collapsed to one, ``keep_earliest``), and PSS and quasi-cliques then run on the
    ratings that remain (a discounted campaign needs no second discount, and its thousands of
    identical ratings no longer swamp the pair counts).

    ``surprise`` with ``rater_model`` (mu, rater intercept float[U], rater first factor float[U] of
    a first fit, or a function giving them for the matrix of the ratings the coordination collapse
    kept; either None: off) turns on the concerted-surprise defence (``integrity.surprise``) on
    those ratings: surprising ratings on the notes it flags leave ``keep`` too. It runs after the
    collapse for the reason PSS does: a set-aside campaign's ratings would otherwise dominate the
    robust refit of its targets (and the first fit), so that the surprise found there, and set
    aside, would differ from the same community's without the campaign. ``surprise_prescoring``
    false leaves them in ``keep`` (prescoring's mask): only ``surprise_keep`` (final scoring's)
    sets them aside.
    """
    pss = pss if pss is not None else PSSParams()
    quasi = quasi if quasi is not None else QuasiCliqueParams()
    ids, author_all, author, created, tweet, misleading = _note_arrays(matrix, notes)
    n_p = ids.shape[0]
    coordinated = None
    if coordination is not None:
        coordinated = np.zeros(n_p, dtype=np.int32)
        coordinated[: matrix.n_raters] = coordinated_groups(
            matrix.note, matrix.rater, matrix.value, matrix.n_raters, coordination
        )
    first, base = _collapsed(matrix, author, len(notes), coordinated, coordination, pss)
    writer_total = np.bincount(author_all, minlength=n_p)
    helpful = base.value == 1.0
    base.release("value")  # read again by the quasi-cliques, not by PSS, which peaks in between
    clique = post_selection_similarity(
        base.note_indptr,
        base.rater,
        base.created_at,
        helpful,
        author,
        created,
        tweet,
        n_p,
        pss,
        writer_total=writer_total,
        num_threads=num_threads,
        progress=progress,
        rating_note=base.note,
    )
    del helpful
    keep = _pss_after(first, base, author, clique, len(notes), pss)
    qc, _ = quasi_cliques(base.note, base.rater, base.value, tweet, created, misleading, base.n_raters, quasi)
    surprise_value = aside = None
    if surprise is not None and rater_model is not None:
        mu, r_int, r_fac = rater_model(base) if callable(rater_model) else rater_model
        kept, group, _ = surprise_filter(base.note_indptr, base.rater, base.value, mu, r_int, r_fac, surprise)
        aside = np.flatnonzero(~kept)  # positions in ``base``, which lists ``first``'s in matrix order
        if base is not matrix:
            aside = nth_true(first, aside)
        surprise_value = np.zeros(n_p, dtype=np.int32)
        surprise_value[: matrix.n_raters] = group
        if surprise_prescoring:
            keep[aside] = False
    return IntegrityResult(ids, clique, qc, keep, coordinated, surprise_value, aside)


def integrity_tables(
    matrix: RatingMatrix,
    found: IntegrityResult,
    rater_factor: np.ndarray,
    params: ViewParams | None = None,
    num_threads: int = 1,
) -> dict[str, pd.DataFrame]:
    """The four view files (``views.py``) keyed by file name, with public note and participant ids.

    ``rater_factor`` float[U] in matrix rater order: the core scorer's rater factors (NaN where a
    rater has none). Views cover every rating of the matrix, before the PSS filter. Rows
    follow the matrix's sorted ids, so the same input gives the same files, on any ``num_threads``.
    """
    params = params if params is not None else ViewParams()
    n_raters = matrix.n_raters
    qc, pss = found.quasi_clique_value[:n_raters], found.post_selection_value[:n_raters]
    coordinated = np.zeros(n_raters, np.int32)
    if found.coordinated_value is not None:
        coordinated = found.coordinated_value[:n_raters]
    surprise = np.zeros(n_raters, np.int32)
    if found.surprise_value is not None:
        surprise = found.surprise_value[:n_raters]
    raters, top = rater_view(
        matrix.note,
        matrix.rater,
        matrix.value,
        rater_factor,
        pss,
        qc,
        matrix.n_notes,
        params,
        coordinated,
        num_threads,
        surprise,
    )
    flagged = (pss > 0) | (qc > 0) | (coordinated > 0) | (surprise > 0)
    notes = note_view(
        matrix.note, matrix.rater, matrix.value, rater_factor, raters["polarization"].to_numpy(),
        raters["opinionGroup"].to_numpy(), flagged, matrix.n_notes, params,
    )  # fmt: skip
    ids = matrix.rater_ids
    notes.insert(0, "noteId", matrix.note_ids)
    raters.insert(0, "raterParticipantId", ids)
    near = raters.pop("nearestRater").to_numpy()
    at = raters.columns.get_loc("nearestSimilarity")
    raters.insert(at, "nearestRater", np.where(near >= 0, ids[np.maximum(near, 0)], None))
    similar = top.drop(columns=["rater", "neighbor"])
    similar.insert(0, "raterParticipantId", ids[top.rater.to_numpy()])
    similar.insert(1, "neighborParticipantId", ids[top.neighbor.to_numpy()])
    activity = []
    for kind, groups in zip(GROUP_KINDS, (pss, qc, coordinated, surprise), strict=True):
        act = group_activity(matrix.rater, matrix.created_at, groups)
        act.insert(0, "kind", kind)
        activity.append(act)
    return {
        NOTE_INTEGRITY_FILE: notes.drop(columns="note"),
        RATER_INTEGRITY_FILE: raters.drop(columns="rater"),
        RATER_SIMILARITY_FILE: similar.reset_index(drop=True),
        GROUP_ACTIVITY_FILE: pd.concat(activity, ignore_index=True),
    }
