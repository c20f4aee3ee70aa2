"""What prescoring hands to final scoring, and how it follows the data into a later run (§6.8).

Prescoring fits rater parameters once; final scoring runs "as often as possible" on newer data
with those parameters frozen. Newer data has more notes and raters, so the dense index spaces
move: ``remap_prescoring`` carries every per-note and per-rater array of a ``Prescoring`` into
the index space of another matrix by id (new raters get no parameters and are not allowed in
final scoring, new notes get none either, exactly as the reference ignores new raters until the
next prescoring).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bridgewatch.io.matrix import first_positions
from bridgewatch.scoring.compact import Packed, expand
from bridgewatch.scoring.diligence import DiligencePrescoring
from bridgewatch.scoring.mf import MFParams
from bridgewatch.scoring.rules import NO_STATUS
from bridgewatch.scoring.scorer_run import ScorerPrescore, pack_prescore
from bridgewatch.scoring.scorer_specs import TOPICS, ScorerSpec


@dataclass(frozen=True, eq=False)
class Prescoring:
    """Every scorer's prescoring over one matrix, plus the run-wide inputs final scoring reuses.

    - ``note_ids``: int64[N], ``rater_ids``: object[U] — the index space of every array below;
    - ``scorers``: name → ``ScorerPrescore``, in scoring order; ``skipped``: scorers without data;
    - ``note_topic``: int64[N] topic id (-1 none, ``scorer_specs.TOPICS`` + 1) or None when the
      topic model did not run; ``topic_warning``: why not ("" when it ran);
    - ``derived``: specs scored in final on another scorer's prescoring (the Gaussian scorers);
      ``order``: every spec name in inventory order (final scoring runs them in this order).
    """

    note_ids: np.ndarray
    rater_ids: np.ndarray
    scorers: dict[str, ScorerPrescore]
    skipped: tuple[str, ...]
    note_topic: np.ndarray | None
    topic_warning: str = ""
    derived: tuple[ScorerSpec, ...] = ()
    order: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, eq=False)
class _Positions:
    """Where each id of a new index space sits in the old one (``pos``: int64, -1 absent), with
    what ``_take`` needs computed once per space rather than once per array (~450 arrays a final
    run): ``same`` when the spaces agree, ``safe`` (absent ones pointed at 0) and ``absent``."""

    pos: np.ndarray
    same: bool
    safe: np.ndarray
    absent: np.ndarray

    @classmethod
    def of(cls, pos: np.ndarray, old_size: int) -> _Positions:
        absent = pos < 0
        same = pos.shape[0] == old_size and bool(np.array_equal(pos, np.arange(old_size)))
        return cls(pos, same, np.where(absent, 0, pos), absent)


def _take(values: np.ndarray, pos: _Positions, fill) -> np.ndarray:
    """``values`` (rows in the old space) in the new space, ``fill`` for ids the old one lacks;
    the array itself when the spaces agree (as ``remap_prescoring`` returns ``pre`` itself then)."""
    values = np.asarray(expand(values))  # (a one-process run keeps its states packed)
    if pos.same and values.shape[0] == pos.pos.shape[0]:
        return values
    if values.shape[0] == 0:
        return np.full((pos.pos.shape[0], *values.shape[1:]), fill, dtype=values.dtype)
    out = values.take(pos.safe, axis=0)
    out[pos.absent] = fill
    return out


def unread_params(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(i_n, f_n, i_u, f_u) of parameters a load left unread: empty, in no index space, so that
    ``remap_prescoring`` has nothing to move (final scoring never reads round 1's parameters)."""
    return np.zeros(0), np.zeros((0, k)), np.zeros(0), np.zeros((0, k))


def _unread(p: MFParams) -> bool:
    return p.note_intercept.shape[0] == 0 and p.rater_intercept.shape[0] == 0


def _params(p: MFParams, notes: _Positions, raters: _Positions) -> MFParams:
    return MFParams(
        p.mu,
        _take(p.note_intercept, notes, np.nan),
        _take(p.note_factor, notes, np.nan),
        _take(p.rater_intercept, raters, np.nan),
        _take(p.rater_factor, raters, np.nan),
    )


def _diligence(d: DiligencePrescoring | None, notes: _Positions, raters: _Positions):
    if d is None:
        return None
    return dataclasses.replace(
        d,
        note_intercept=_take(d.note_intercept, notes, np.nan),
        note_factor=_take(d.note_factor, notes, np.nan),
        note_intercept_round2=_take(d.note_intercept_round2, notes, np.nan),
        rater_intercept=_take(d.rater_intercept, raters, np.nan),
        rater_intercept_round2=_take(d.rater_intercept_round2, raters, np.nan),
        rater_factor=_take(d.rater_factor, raters, np.nan),
        rater_reputation=_take(d.rater_reputation, raters, np.nan),
    )


def remap_prescoring(pre: Prescoring, note_ids: np.ndarray, rater_ids: np.ndarray) -> Prescoring:
    """``pre`` in the index space (``note_ids`` int64[N'], ``rater_ids`` object[U']) of another matrix.

    Returns ``pre`` itself when the spaces already agree, so a one-process run copies nothing.
    """
    same_raters = pre.rater_ids is rater_ids or np.array_equal(pre.rater_ids, rater_ids)
    if same_raters and np.array_equal(pre.note_ids, note_ids):
        return pre
    notes = _Positions.of(_index(pre.note_ids, note_ids), pre.note_ids.shape[0])
    raters = _Positions.of(_index(pre.rater_ids, rater_ids), pre.rater_ids.shape[0])
    scorers = {}
    for name, s in pre.scorers.items():
        r = s.pre
        moved = dataclasses.replace(
            r,
            params=_params(r.params, notes, raters),
            first_round=r.first_round if _unread(r.first_round) else _params(r.first_round, notes, raters),
            helpful_raters=_take(r.helpful_raters, raters, False),
            provisional_status=_take(r.provisional_status, notes, NO_STATUS),
            harassment_intercept=None
            if r.harassment_intercept is None
            else _take(r.harassment_intercept, notes, np.nan),
            scored=None if r.scored is None else _take(r.scored, raters, False),
        )
        state = ScorerPrescore(
            moved,
            s.thresholds,
            _take(s.incorrect_num, raters, 0),
            _take(s.incorrect_total, raters, 0),
            _diligence(s.diligence, notes, raters),
        )
        # a packed state (as final scoring reads them) stays packed: one scorer's is expanded at a time
        scorers[name] = pack_prescore(state) if isinstance(r.helpful_raters, Packed) else state
    topic = None if pre.note_topic is None else _take(pre.note_topic, notes, -1)
    return Prescoring(
        np.asarray(note_ids, dtype=np.int64), np.asarray(rater_ids, dtype=object), scorers,
        pre.skipped, topic, pre.topic_warning, pre.derived, pre.order,
    )  # fmt: skip


def _index(space: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """int64 position of each of ``ids`` in ``space`` (unique; -1 absent); text ids (raters)
    through ``io.matrix.first_positions``, which hashes them without a Python object each."""

    def text(a: np.ndarray) -> bool:
        return a.dtype == object and pd.api.types.infer_dtype(a, skipna=False) == "string"

    ids = np.asarray(ids)
    if text(space) and text(ids):
        return first_positions(space, ids)
    return pd.Index(space).get_indexer(np.asarray(ids, dtype=space.dtype)).astype(np.int64)


def final_topics(pre: Prescoring, notes: pd.DataFrame, note_ids: np.ndarray) -> np.ndarray | None:
    """int64[N] topic per note of ``note_ids`` for final scoring, without retraining the classifier.

    Notes prescoring saw keep their topic. A newer note inherits the topic of a known note on the
    same post (the reference assigns topics per post); a note on a new post gets its seed-term
    label (the classifier is not kept, a documented simplification).
    """
    if pre.note_topic is None:
        return None
    from bridgewatch.scoring.topics import TOPICS as MODEL_TOPICS
    from bridgewatch.scoring.topics import seed_labels

    pos = _Positions.of(_index(pre.note_ids, note_ids), pre.note_ids.shape[0])
    out = _take(pre.note_topic, pos, -1).astype(np.int64)
    known = np.isin(note_ids, pre.note_ids)
    if known.all() or notes.empty:
        return out
    rows = notes.drop_duplicates(subset=["noteId"]).set_index("noteId")
    tweet = rows["tweetId"].reindex(note_ids).fillna(-1).to_numpy(np.int64)
    by_post = pd.Series(out[known], index=tweet[known])
    by_post = by_post[(by_post.index >= 0) & ~by_post.index.duplicated()]
    new = np.flatnonzero(~known)
    inherited = by_post.reindex(tweet[new]).to_numpy(dtype=np.float64)
    text = rows["summary"].reindex(note_ids[new]).fillna("").astype(str).tolist() if "summary" in rows else []
    seeds, _ = seed_labels(text) if text else (np.zeros(new.shape[0], dtype=np.int64), None)
    codes = {name: i + 1 for i, name in enumerate(TOPICS)}
    seeded = np.array([codes.get(MODEL_TOPICS[s], -1) if s > 0 else -1 for s in seeds], dtype=np.int64)
    out[new] = np.where(np.isnan(inherited), seeded, np.nan_to_num(inherited)).astype(np.int64)
    return out
