"""Turn scorer runs and meta results into the reference's four output frames.

Everything here is bookkeeping over per-note and per-rater arrays: scattering each scorer's
results into its column family, coalescing the group / multi-group / topic scorers into one set
of columns (a note has at most one result of each family, §6.1), and the explanation text that
says which scorer and which rule decided each note.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from bridgewatch import schema
from bridgewatch.io.matrix import RatingMatrix, id_objects, streamed
from bridgewatch.scoring.compact import code, compact, compact_frame, expand_fields, overlay
from bridgewatch.scoring.helpfulness import ValidRatings
from bridgewatch.scoring.outputs import (
    FrameColumns,
    build_frame,
    format_tf_idf,
    scatter,
    scorer_columns,
    text_objects,
)
from bridgewatch.scoring.rating_pass import note_counts, rater_side_counts
from bridgewatch.scoring.rescore import FIT_COLUMNS, RECENT_MILLIS
from bridgewatch.scoring.rules import RULE_NAMES, Rule, RuleResult
from bridgewatch.scoring.scorer import PrescoreResult, ScoringInputs
from bridgewatch.scoring.scorer_run import ScorerPrescore, ScorerRun, expand_prescore, pack_prescore
from bridgewatch.scoring.scorer_specs import TOPICS, ScorerSpec
from bridgewatch.scoring.tag_filter import TagAggregates
from bridgewatch.scoring.topics import topic_note_confident

_SCORED = set(schema.SCORED_NOTES_COLUMNS)
AUX_SCORER = "MFCoreScorer"  # the scorer whose filter inputs aux_note_info writes
_EXTRA = (
    "NumFinalRoundRatings",
    "NoteInterceptNoHighVol",
    "NoteInterceptNoCorrelated",
    "NoteInterceptPopulationSampled",
    "NoteInterceptMin",
    "NoteInterceptMax",
)
# Meta rule → column prefix of the scorer whose result it copied (for the explanation text).
_DECIDER_PREFIX = {
    "CoreModel (v1.1)": "core",
    "CoreWithTopicsModel (v1.1)": "coreWithTopics",
    "ExpansionModel (v1.1)": "expansion",
    "ExpansionPlusModel (v1.1)": "expansionPlus",
    "MultiGroupModel01 (v1.0)": "multiGroup",
    "GaussianModel (v1.0)": "gaussian",
    "GaussianCoreWithTopicsModel (v1.0)": "gaussianCoreWithTopics",
}
_RULE_TABLE = np.array([RULE_NAMES[r] for r in sorted(Rule)], dtype=object)
_AUTHOR_COLUMNS = ("crhCrnhRatioDifference", "meanNoteScore", "raterAgreeRatio", "aboveHelpfulnessThreshold")
POP_COUNT_COLUMNS = (
    "coreNegFactor_populationSampledRatingCount",
    "corePosFactor_populationSampledRatingCount",
)


def _sub(result: RuleResult, idx: np.ndarray) -> RuleResult:
    """``result`` (as kept: ``_kept_result``) at the notes ``idx``."""
    full = expand_fields(result)
    return RuleResult(
        full.status[idx], full.rule_mask[idx], full.deciding_rule[idx], full.active_filter_tags[idx]
    )


def _family(prefix: str, n: int, runs: list[ScorerRun]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Columns of one family; each note takes the first run in ``runs`` that scored it.

    Returns the columns and int[N] position in ``runs`` of the run used (-1 none).
    """
    owner = np.full(n, -1, dtype=np.int64)
    for k, run in enumerate(runs):
        owner[(owner < 0) & run.scored] = k
    cols: dict[str, np.ndarray] = {}
    for k, run in enumerate(runs):
        idx = np.flatnonzero(owner == k)
        if idx.size == 0 and cols:
            continue
        p = run.spec.prefix
        extra = {
            s: run.final[f"{p}{s}"].to_numpy(np.float64)[idx] for s in _EXTRA if f"{prefix}{s}" in _SCORED
        }
        part = scorer_columns(
            prefix, n, idx, _sub(run.result, idx),
            run.final[f"{p}NoteIntercept"].to_numpy(np.float64)[idx],
            run.final[f"{p}NoteFactor1"].to_numpy(np.float64)[idx],
            extra,
        )  # fmt: skip
        for name, values in part.items():
            if name not in cols:
                cols[name] = values
            else:
                cols[name][idx] = values[idx]
    return {k: v for k, v in cols.items() if k in _SCORED}, owner


def scored_columns(
    inputs: ScoringInputs, runs: Mapping[str, ScorerRun], topic_ids: np.ndarray | None
) -> dict[str, np.ndarray]:
    """Per-scorer scored_notes columns over the N matrix notes (missing scorers → no columns)."""
    m = inputs.matrix
    n = m.n_notes
    by_prefix: dict[str, list[ScorerRun]] = {}
    for run in runs.values():
        if run.spec.report:
            by_prefix.setdefault(run.spec.prefix, []).append(run)
    cols: dict[str, np.ndarray] = {}
    for prefix, family in by_prefix.items():
        part, owner = _family(prefix, n, family)
        cols.update(part)
        if prefix == "group":
            groups = np.array([min(r.spec.included_groups or {0}) for r in family], dtype=np.float64)
            cols["modelingGroup"] = np.where(owner >= 0, groups[np.maximum(owner, 0)], np.nan)
        elif prefix == "multiGroup":
            cols["modelingMultiGroup"] = np.where(owner >= 0, 1.0, np.nan)
        elif prefix == "topic":
            names = np.array([TOPICS[r.spec.topic - 1] for r in family], dtype=object)
            cols["noteTopic"] = np.where(owner >= 0, names[np.maximum(owner, 0)], None)
            confident = np.zeros(n, dtype=bool)
            for k, run in enumerate(family):
                rf = expand_prescore(run.pre.params).rater_factor[:, 0].astype(np.float64)
                ok = topic_note_confident(m.note, m.rater, rf, n, run.spec.confident_min)
                # Only notes the scorer gave an intercept count (the reference's scoredNotes).
                ok &= np.isfinite(run.final[f"{run.spec.prefix}NoteIntercept"].to_numpy(np.float64))
                confident[owner == k] = ok[owner == k]
            cols["topicNoteConfident"] = np.where(owner >= 0, confident, None).astype(object)
    core = runs.get("MFCoreScorer")
    if core is not None:
        cols["activeFilterTags"] = scatter(
            n, np.flatnonzero(core.scored), np.asarray(core.result.active_filter_tags)[core.scored], fill=None
        )
        cols.update(population_sampled_counts(m, core))
    if topic_ids is not None and "noteTopic" not in cols:
        cols["noteTopic"] = np.where(topic_ids > 0, np.array((None, *TOPICS), dtype=object)[topic_ids], None)
    return cols


def population_sampled_counts(m: RatingMatrix, core: ScorerRun) -> dict[str, np.ndarray]:
    """Per note: population-sampled ratings by Core's rep-filtered raters on each factor sign.

    0 for notes Core gives no status (``core.scored`` False): the reference counts them inside
    Core's scored-notes frame and fills the notes missing from it with 0 when it merges.
    """
    pre = expand_prescore(core.pre)
    sides = rater_side_counts(
        m.note, m.rater, pre.params.rater_factor[:, 0], m.n_notes,
        rating_ok=m.population_sampled, rater_ok=pre.helpful_raters, note_ok=core.scored,
    )  # fmt: skip
    return {name: side.astype(np.float64) for name, side in zip(POP_COUNT_COLUMNS, sides, strict=True)}


def meta_frame(inputs: ScoringInputs, scored: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """The frame ``meta_score`` reads: noteId plus every per-scorer column (built at once: ~100
    column insertions one by one cost ~10 ms a run), over the columns' own arrays: meta and the
    status history only read it, and a copy was ~0.5 KB a note beside ``scored``. Text columns
    stay the object arrays they are: inferred as pandas' str dtype, each became an Arrow copy
    outside the Python heap (at ``large`` ~0.6 KB a note in all)."""
    columns = {
        k: pd.Series(v, dtype=object, copy=False) if v.dtype == object else v for k, v in scored.items()
    }
    return pd.DataFrame({"noteId": inputs.matrix.note_ids, **columns}, copy=False)


def rating_counts(matrix: RatingMatrix, valid: ValidRatings) -> pd.DataFrame:
    """Per rater: the six valid-rating success / failure counts of helpfulness_scores (§4.1)."""
    sh, sn, fh, fn = valid.rater_counts(matrix)
    return pd.DataFrame(
        {
            "raterParticipantId": matrix.rater_ids,
            "successfulRatingHelpfulCount": sh,
            "successfulRatingNotHelpfulCount": sn,
            "successfulRatingTotal": sh + sn,
            "unsuccessfulRatingHelpfulCount": fh,
            "unsuccessfulRatingNotHelpfulCount": fn,
            "unsuccessfulRatingTotal": fh + fn,
        }
    )


def first_round_listed(matrix: RatingMatrix, pre: PrescoreResult) -> np.ndarray:
    """bool[U]: raters whose round-1 parameters the reference writes (``coreFirstRoundRater*``).

    Its prescoring output starts from the round-2 raters and outer-joins the helpfulness table
    (authors of scored notes, raters with a valid rating); round-1 parameters are then attached
    by a left join, so a round-1 rater with neither a round-2 fit nor a helpfulness row (e.g. no
    rating made within 48 h of a note that got a status) has none written.
    """
    listed = np.isfinite(np.asarray(pre.params.rater_intercept, dtype=np.float64))
    if pre.helpfulness is not None:
        # looked up in the raters' hash index: ``np.isin`` of both id lists as numpy text held
        # ~1.5 GiB a scorer at X's scale (256 bytes an id)
        at = matrix.rater_index(id_objects(pre.helpfulness["raterParticipantId"]))
        listed[at[at >= 0]] = True
    return listed


def rater_column_scorers(specs: Iterable[ScorerSpec]) -> tuple[str, ...]:
    """The scorers of ``specs`` whose rater parameters helpfulness_scores can write: those with
    rater columns there, less the group, topic and multi-group ones, which the reference leaves
    empty. Contributor scoring reads only their prescoring states (4 of the default 24; with the
    notes and status columns it no longer reads, its start at public went 8.14 -> 5.55 GiB)."""
    return tuple(
        spec.name
        for spec in specs
        if spec.prefix not in ("topic", "group", "multiGroup")
        and f"{spec.prefix}RaterIntercept" in schema.HELPFULNESS_SCORES_COLUMNS
    )


def helpfulness_frame(
    matrix: RatingMatrix, contrib: pd.DataFrame, counts: pd.DataFrame, runs: Mapping[str, ScorerRun]
) -> pd.DataFrame:
    """helpfulness_scores.tsv: contributor state + valid-rating counts + each scorer's rater params."""
    frame = contrib.merge(counts, on="raterParticipantId", how="left", suffixes=("", "_counts"))
    frame = frame[[c for c in frame.columns if not c.endswith("_counts")]]
    pos = pd.Index(matrix.rater_ids).get_indexer(frame["raterParticipantId"].to_numpy(dtype=object))
    ok = pos >= 0

    def per_rater(values: np.ndarray) -> np.ndarray:
        out = np.full(len(frame), np.nan)
        out[ok] = np.asarray(values, dtype=np.float64)[pos[ok]]
        return out

    cols = {c: frame[c].to_numpy() for c in frame.columns}
    for name in rater_column_scorers([run.spec for run in runs.values()]):
        run = runs[name]
        p = run.spec.prefix
        if f"{p}RaterIntercept" in cols and p != "core":
            continue
        params = expand_prescore(run.pre.params)
        cols[f"{p}RaterIntercept"] = per_rater(params.rater_intercept)
        cols[f"{p}RaterFactor1"] = per_rater(params.rater_factor[:, 0])
    core = runs.get("MFCoreScorer")
    if core is not None:
        core_pre = expand_prescore(core.pre)
        first = core_pre.first_round
        listed = first_round_listed(matrix, core_pre)
        cols["coreFirstRoundRaterIntercept"] = per_rater(np.where(listed, first.rater_intercept, np.nan))
        cols["coreFirstRoundRaterFactor1"] = per_rater(np.where(listed, first.rater_factor[:, 0], np.nan))
        if core_pre.helpfulness is not None:
            h = core_pre.helpfulness.set_index("raterParticipantId")
            ids = frame["raterParticipantId"]
            for c in (
                "crhCrnhRatioDifference",
                "meanNoteScore",
                "raterAgreeRatio",
                "aboveHelpfulnessThreshold",
            ):
                cols[c] = h[c].reindex(ids).to_numpy()
    keep = {k: v for k, v in cols.items() if k in schema.HELPFULNESS_SCORES_COLUMNS}
    return build_frame(schema.HELPFULNESS_SCORES_FILE, keep, len(frame))


def _explanation_text(scored: Mapping[str, np.ndarray], decided_by: np.ndarray, runs, n: int):
    """(decidedByRule, statusExplanation) per note: the deciding scorer's rule and its numbers."""
    rule = np.full(n, None, dtype=object)
    text = np.array([f"{d}" for d in decided_by], dtype=object)
    by_prefix = {run.spec.prefix: run for run in runs.values() if run.spec.prefix not in ("group", "topic")}
    for meta_rule, prefix in _DECIDER_PREFIX.items():
        run = by_prefix.get(prefix)
        if run is None:
            continue
        sel = np.flatnonzero((decided_by == meta_rule) & run.scored)
        names = _RULE_TABLE[np.asarray(run.result.deciding_rule)[sel].astype(np.intp)]
        rule[sel] = names
        i = scored[f"{prefix}NoteIntercept"][sel]
        f = scored[f"{prefix}NoteFactor1"][sel]
        lo = scored.get(f"{prefix}NoteInterceptMin", np.full(n, np.nan))[sel]
        hi = scored.get(f"{prefix}NoteInterceptMax", np.full(n, np.nan))[sel]
        for j, k in enumerate(sel):
            interval = "" if np.isnan(lo[j]) else f" in [{lo[j]:.3f}, {hi[j]:.3f}]"
            text[k] = f"{meta_rule} via {names[j]}: intercept {i[j]:.3f}{interval}, factor {f[j]:.3f}"
    return rule, text


def scored_notes_columns(
    inputs: ScoringInputs,
    scored: Mapping[str, np.ndarray],
    meta: pd.DataFrame,
    tags,
    new_nsh: pd.DataFrame,
    keep_rows: np.ndarray,
    runs: Mapping[str, ScorerRun],
) -> FrameColumns:
    """scored_notes.tsv's columns over the notes that have a notes or status-history row."""
    m = inputs.matrix
    n = m.n_notes
    cols = {k: v for k, v in scored.items() if k in _SCORED}
    timers = ["timestampMillisOfCurrentStatus", "timestampMillisOfNmrDueToMinStableCrhTime"]
    nsh = new_nsh.set_index("noteId")[timers].reindex(m.note_ids)  # (not the other 22 columns)
    decided = text_objects(meta["decidedBy"])
    rule, text = _explanation_text(scored, decided, runs, n)
    cols.update(
        {
            "noteId": m.note_ids,
            "finalRatingStatus": text_objects(meta["finalRatingStatus"]),
            "decidedBy": decided,
            "metaScorerActiveRules": text_objects(meta["metaScorerActiveRules"]),
            "firstTag": np.where(tags.first_tag == "", None, tags.first_tag),
            "secondTag": np.where(tags.second_tag == "", None, tags.second_tag),
            "classification": text_objects(inputs.notes["classification"]),
            "createdAtMillis": inputs.notes["createdAtMillis"].to_numpy(np.float64),
            "numRatings": np.diff(m.note_indptr),  # bincount(m.note) without an int64 copy of the notes
            "timestampMillisOfCurrentStatus": nsh["timestampMillisOfCurrentStatus"].to_numpy(np.float64),
            "timestampMillisOfNmrDueToMinStableCrhTime": nsh[
                "timestampMillisOfNmrDueToMinStableCrhTime"
            ].to_numpy(np.float64),
            "decidedByRule": rule,
            "statusExplanation": text,
        }
    )
    return FrameColumns(schema.SCORED_NOTES_FILE, *_rows(cols, keep_rows))


def kept_for_outputs(
    run: ScorerRun, prescoring: ScorerPrescore | None = None, note_ids: np.ndarray | None = None
) -> ScorerRun:
    """``run`` as the outputs need it once its rule chain has run: its per-note frame without the
    rule chain's inputs, the per-note filter aggregates (``tags``, ``incorrect``: 28 float64
    columns, ~250 bytes a note) only for ``AUX_SCORER``.

    Why: a run holds them over every note of the dataset whatever the scorer's scope, and every
    scorer's run lives until the outputs are assembled; at X's 2.5M notes and ~30 scorers that
    alone would be ~19 GB, of which only Core's row set is ever written (``aux_columns``). The
    per-note frame, fits and low-diligence intercepts are kept compact (``compact``): only the
    notes a scorer fits hold values, expanded column by column as the outputs are assembled; its
    prescoring (``pre``, ``diligence``) is packed likewise (``scorer_run.pack_prescore``), unless
    the caller passes the ``prescoring`` state the run was scored on (a Gaussian run: its base
    scorer's), as it keeps it (packed by a one-process run; as read by a final phase, which holds
    it whole anyway): the run keeps that state's (the same values) instead of packing its own
    copy (~1% of an incremental run).
    """
    # The rule chain's unprefixed inputs (numRatings, minSignCount, the mean-helpful columns)
    # have been read: the outputs read the scorer's own columns only (~320 bytes a note over the
    # ~30 runs kept, measured at `large`; ~0.8 GB at X's 2.5M notes).
    read = [c for c in run.final.columns if c == "noteId" or c.startswith(run.spec.prefix)]
    final = compact_frame(run.final[read], None if note_ids is None else {"noteId": np.asarray(note_ids)})
    low_diligence = compact(run.low_diligence)
    fits = None if run.fits is None else _shared_fits(run, final, low_diligence)
    if prescoring is None:
        pre, dil = pack_prescore(run.pre), None if run.diligence is None else pack_prescore(run.diligence)
    else:
        pre, dil = prescoring.pre, None if run.diligence is None else prescoring.diligence
    kept = dataclasses.replace(
        run, final=final, fits=fits, low_diligence=low_diligence, pre=pre, diligence=dil,
        result=_kept_result(run.result),
    )  # fmt: skip
    if run.spec.name == AUX_SCORER:
        return kept if run.tags is None else dataclasses.replace(kept, tags=_as_written(run.tags))
    return dataclasses.replace(kept, tags=None, incorrect=None)


def _as_written(agg: TagAggregates) -> TagAggregates:
    """Core's tag aggregates in the float32 aux_note_info writes them in (its ``ratingWeight``,
    ``<tag>Adjusted`` and ``<tag>AdjustedRatio`` kinds): the same written values, half the ~220
    bytes a note they held from Core's final scoring to the outputs (~0.27 GB at X's 2.5M notes)."""
    return dataclasses.replace(
        agg,
        adjusted=agg.adjusted.astype(np.float32),
        rating_weight=agg.rating_weight.astype(np.float32),
        adjusted_ratio=agg.adjusted_ratio.astype(np.float32),
    )


def _kept_result(result: RuleResult) -> RuleResult:
    """The rule chain's per-note outcome as kept (read through ``expand_fields`` / ``np.asarray``):
    sparse where mostly one value, the filter tags as codes. Dense it was 14 bytes a note a
    scorer, ~0.9 GB over 27 final runs at X's 2.5M notes, for the few notes a group or topic
    scorer decides."""
    return RuleResult(
        compact(result.status),
        compact(result.rule_mask),
        compact(result.deciding_rule),
        code(result.active_filter_tags),
    )


def _shared_fits(run: ScorerRun, final: pd.DataFrame, low_diligence: object) -> dict[str, object]:
    """``run.fits`` as kept: each fit over the column of ``run.final`` it was before the capture
    test blanked some notes (``compact.overlay``: that column's kept object, plus the few notes
    that differ), the low-diligence fit over the kept low-diligence intercepts. Held apart, the
    fits were ~55 bytes a note a scorer at X's 2.5M notes from each final scoring to the outputs."""
    out: dict[str, object] = {}
    for name, values in (run.fits or {}).items():
        column = f"{run.spec.prefix}{FIT_COLUMNS.get(name, '')}"
        if name == "lowDiligence":
            out[name] = overlay(values, np.asarray(run.low_diligence), low_diligence)
        elif name in FIT_COLUMNS and column in run.final.columns:
            out[name] = overlay(values, run.final[column].to_numpy(), _kept_column(final, column))
        else:
            out[name] = compact(np.asarray(values))
    return out


def _kept_column(frame: pd.DataFrame, name: str) -> object:
    """A kept frame's column as it holds it: the ``SparseArray`` or the dense array."""
    array = frame[name].array
    return array if isinstance(array, pd.arrays.SparseArray) else frame[name].to_numpy()


def aux_columns(
    inputs: ScoringInputs,
    runs: Mapping[str, ScorerRun],
    meta: pd.DataFrame,
    counts: np.ndarray,
    previous_nsh: pd.DataFrame,
    keep_rows: np.ndarray,
    epoch_millis: int,
    population_counts: Mapping[str, np.ndarray] | None = None,
) -> FrameColumns:
    """aux_note_info.tsv's columns: tag counts, Core's filter inputs, and meta's intermediate statuses.

    Its ``currentStatus`` is the status the note had *before* this run (``previous_nsh``, the
    input status history), as the reference writes it; ``numRatingsLast28`` counts ratings newer
    than 28 days before the scoring time ``epoch_millis`` (not before the newest rating).
    ``population_counts``: ``population_sampled_counts`` of Core's run where the caller has them
    (scored_notes has the same columns): a second pass read the notes, raters and flags again,
    9 bytes a rating, where this frame peaked at `large`.
    """
    m = inputs.matrix
    cols: dict[str, np.ndarray] = {"noteId": m.note_ids}
    for j, tag in enumerate(schema.RATING_TAGS):
        cols[tag] = counts[:, j]
    for c in ("unlockedRatingStatus", "preStabilizationRatingStatus", "crhBool", "crnhBool", "awaitingBool"):
        cols[c] = text_objects(meta[c])
    cols["createdAtMillis"] = inputs.notes["createdAtMillis"].to_numpy(np.float64)
    cols["noteAuthorParticipantId"] = text_objects(inputs.notes["noteAuthorParticipantId"])
    before = previous_nsh.drop_duplicates(subset=["noteId"]).set_index("noteId")["currentStatus"]
    cols["currentStatus"] = text_objects(before.reindex(m.note_ids))
    cols["numPopulationSampledRatings"] = note_counts(m, m.population_sampled)
    recent = np.empty(m.n_ratings, dtype=np.bool_)
    for lo, hi in streamed([m.created_at], m.n_ratings):  # (its last read: 8 bytes a rating)
        np.greater(m.created_at[lo:hi], epoch_millis - RECENT_MILLIS, out=recent[lo:hi])
    cols["numRatingsLast28"] = note_counts(m, recent)
    del recent
    core = runs.get(AUX_SCORER)
    if core is not None:
        agg, inc = core.tags, core.incorrect  # kept for this scorer (``kept_for_outputs``)

        def scored(values: np.ndarray) -> np.ndarray:  # Core's rows only (capture test passed)
            return np.where(core.scored, values, np.nan)

        cols["ratingWeight"] = scored(agg.rating_weight)
        for j, tag in enumerate(schema.NOT_HELPFUL_TAGS):
            cols[f"{tag}Adjusted"] = scored(agg.adjusted[:, j])
            cols[f"{tag}AdjustedRatio"] = scored(agg.adjusted_ratio[:, j])
        cols["notHelpfulIncorrect_interval"] = scored(inc.incorrect)
        cols["p_incorrect_user_interval"] = scored(inc.p_incorrect)
        cols["num_voters_interval"] = scored(inc.voters)
        # A note with interval voters but no "incorrect" tag has 0/0, which the reference writes "nan".
        cols["tf_idf_incorrect_interval"] = format_tf_idf(inc.tf_idf, core.scored & ~np.isnan(inc.voters))
        cols["lowDiligenceIntercept"] = scored(core.low_diligence)
        cols.update(population_sampled_counts(m, core) if population_counts is None else population_counts)
    m.release()  # every rating column read above: not under the frame's build
    return FrameColumns(schema.AUX_NOTE_INFO_FILE, *_rows(cols, keep_rows))


def _rows(cols: Mapping[str, np.ndarray], keep_rows: np.ndarray) -> tuple[dict[str, np.ndarray], int]:
    """``cols`` at the ``keep_rows`` notes, and how many: as they are when that is every note
    (a selected copy of ~100 columns was ~0.8 KB a note at the outputs' peak)."""
    if keep_rows.all():
        return {k: np.asarray(v) for k, v in cols.items()}, int(keep_rows.shape[0])
    rows = np.flatnonzero(keep_rows)
    return {k: np.asarray(v)[rows] for k, v in cols.items()}, int(rows.size)
