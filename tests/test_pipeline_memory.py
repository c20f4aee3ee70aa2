"""What score_dataset keeps alive changes nothing it writes (no copy when all ratings are kept,
per-note filter aggregates kept for Core only, each phase's subset released before the next)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bridgewatch.errors import DataFormatError
from bridgewatch.io import Dataset, read_dataset
from bridgewatch.io.formats import SCORING_NOTE_COLUMNS
from bridgewatch.scoring import pipeline
from bridgewatch.scoring import preprocess as P
from bridgewatch.scoring import scorer as S
from bridgewatch.scoring.assemble import AUX_SCORER
from bridgewatch.scoring.config import ScoringConfig
from bridgewatch.scoring.scorer import scope_mask
from bridgewatch.scoring.scorer_run import expand_prescore
from bridgewatch.scoring.scorer_specs import default_scorers
from bridgewatch.sim.config import config_for_scale
from bridgewatch.sim.simulate import simulate

EPOCH = 1795305600000


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Dataset:
    data = tmp_path_factory.mktemp("community")
    simulate(config_for_scale("tiny", seed=5), Path(data))
    return read_dataset(data)


def _frames_equal(a: pipeline.PipelineResult, b: pipeline.PipelineResult) -> None:
    for name, frame in a.frames().items():
        pd.testing.assert_frame_equal(frame, b.frames()[name], check_exact=True, obj=name)


def test_keeping_every_rating_scores_the_dataset_matrix_itself(dataset: Dataset) -> None:
    everything = np.ones(dataset.ratings.n_ratings, dtype=bool)
    assert pipeline._matrix(dataset, everything) is dataset.ratings
    assert pipeline._matrix(dataset, None) is dataset.ratings
    _frames_equal(
        pipeline.score_dataset(dataset, epoch_millis=EPOCH, rating_keep=everything, final_keep=everything),
        pipeline.score_dataset(dataset, epoch_millis=EPOCH),
    )


def test_final_filter_unlike_prescoring_gives_the_phased_results(dataset: Dataset) -> None:
    """Prescoring on one subset, final scoring on another (prescoring's released first): the same
    frames as the phase-by-phase entry points, which build each subset independently."""
    rng = np.random.default_rng(0)
    n = dataset.ratings.n_ratings
    keep = rng.random(n) < 0.97
    final_keep = keep | (rng.random(n) < 0.5)
    whole = pipeline.score_dataset(dataset, epoch_millis=EPOCH, rating_keep=keep, final_keep=final_keep)
    pre = pipeline.prescore_dataset(dataset, rating_keep=keep)
    final = pipeline.final_dataset(dataset, pre, epoch_millis=EPOCH, rating_keep=final_keep)
    helpfulness = pipeline.contributor_frame(dataset, pre, final.notes, epoch_millis=EPOCH)
    pd.testing.assert_frame_equal(whole.scored_notes, final.scored_notes, check_exact=True)
    pd.testing.assert_frame_equal(whole.aux_note_info, final.aux_note_info, check_exact=True)
    pd.testing.assert_frame_equal(whole.note_status_history, final.note_status_history, check_exact=True)
    pd.testing.assert_frame_equal(whole.helpfulness_scores, helpfulness, check_exact=True)


def test_only_core_keeps_its_per_note_filter_aggregates(dataset: Dataset) -> None:
    result = pipeline.score_dataset(dataset, epoch_millis=EPOCH)
    assert AUX_SCORER in result.runs and len(result.runs) > 1
    for name, run in result.runs.items():
        kept = name == AUX_SCORER
        assert (run.tags is not None) == kept and (run.incorrect is not None) == kept, name
    core = result.runs[AUX_SCORER]
    aux = result.aux_note_info.set_index("noteId")
    rows = core.scored[pd.Index(core.final["noteId"]).get_indexer(aux.index)]
    ids = aux.index[rows]
    weight = pd.Series(core.tags.rating_weight, index=core.final["noteId"]).loc[ids]
    written = aux.loc[ids, "ratingWeight"].to_numpy()
    np.testing.assert_array_equal(written, weight.to_numpy().astype(written.dtype))  # as aux stores it
    # kept in the float32 aux_note_info writes them in: no written value can differ
    from bridgewatch import schema
    from bridgewatch.scoring.outputs import KINDS

    kinds = KINDS[schema.AUX_NOTE_INFO_FILE]
    columns = ["ratingWeight", *(f"{t}Adjusted{r}" for t in schema.NOT_HELPFUL_TAGS for r in ("", "Ratio"))]
    assert {kinds[c] for c in columns} == {"f32"}
    assert {core.tags.rating_weight.dtype, core.tags.adjusted.dtype, core.tags.adjusted_ratio.dtype} == {
        np.dtype(np.float32)
    }


def test_runs_keep_their_prescoring_packed(dataset: Dataset) -> None:
    """A one-process run keeps every scorer's prescoring packed (no full-size array left), and
    it expands to the very state the phase-by-phase entry point fits."""
    result = pipeline.score_dataset(dataset, epoch_millis=EPOCH)
    pre = pipeline.prescore_dataset(dataset)
    n, u = dataset.ratings.n_notes, dataset.ratings.n_raters
    for name, run in result.runs.items():
        p = run.pre.params
        for arr in (p.note_intercept, p.note_factor, p.rater_intercept, run.pre.helpful_raters):
            assert not isinstance(arr, np.ndarray), name
        if name not in pre.scorers:
            continue  # (a Gaussian scorer keeps its base scorer's)
        full = expand_prescore(run.pre)
        fitted = pre.scorers[name].pre
        assert full.params.note_factor.shape == (n, fitted.params.note_factor.shape[1])
        assert full.params.rater_intercept.shape == (u,)
        for a, b in ((full.params, fitted.params), (full.first_round, fitted.first_round)):
            for f in ("note_intercept", "note_factor", "rater_intercept", "rater_factor"):
                assert getattr(a, f).tobytes() == getattr(b, f).tobytes(), (name, f)
        assert full.helpful_raters.tobytes() == fitted.helpful_raters.tobytes()


def test_scope_masks_are_kept_for_the_last_few_scorers_only(dataset: Dataset) -> None:
    cfg = ScoringConfig()
    inputs = pipeline._inputs(dataset, dataset.ratings, cfg, None, None)
    specs = [s for s in default_scorers() if s.topic is None][:6]
    first = [tuple(a.copy() for a in scope_mask(inputs, s)) for s in specs]
    assert S._SCOPES.held(inputs) == S._SCOPES.size < len(specs)
    for spec, (scope, group) in zip(specs, first, strict=True):  # evicted ones computed again
        again = scope_mask(inputs, spec)
        assert np.array_equal(again[0], scope) and np.array_equal(again[1], group)
    last = scope_mask(inputs, specs[-1])
    assert scope_mask(inputs, specs[-1])[0] is last[0]  # a kept one is not recomputed


def test_scoring_note_columns_score_the_same(tmp_path: Path, dataset: Dataset) -> None:
    """The batch job's lean notes frame (``SCORING_NOTE_COLUMNS``) holds the same values and
    scores to the same frames as the whole one."""
    data = tmp_path / "community"
    simulate(config_for_scale("tiny", seed=5), data)
    lean = read_dataset(data, note_columns=SCORING_NOTE_COLUMNS)
    full = read_dataset(data)
    assert tuple(lean.notes.columns) == SCORING_NOTE_COLUMNS
    pd.testing.assert_frame_equal(lean.notes, full.notes[list(SCORING_NOTE_COLUMNS)], check_exact=True)
    _frames_equal(
        pipeline.score_dataset(lean, epoch_millis=EPOCH), pipeline.score_dataset(full, epoch_millis=EPOCH)
    )


def test_prescoring_status_columns_prescore_the_same(tmp_path: Path) -> None:
    """Prescoring's lean status history (``PRESCORING_STATUS_COLUMNS``) holds the same values and
    prescores to the same states as the whole one; with no status history file, the same columns."""
    from bridgewatch.io.formats import PRESCORING_STATUS_COLUMNS

    data = tmp_path / "community"
    simulate(config_for_scale("tiny", seed=5), data)
    lean = read_dataset(data, status_columns=PRESCORING_STATUS_COLUMNS)
    full = read_dataset(data)
    assert tuple(lean.status_history.columns) == PRESCORING_STATUS_COLUMNS
    assert len(full.status_history.columns) > len(PRESCORING_STATUS_COLUMNS)
    kept = full.status_history[list(PRESCORING_STATUS_COLUMNS)]
    pd.testing.assert_frame_equal(lean.status_history, kept, check_exact=True)
    a, b = pipeline.prescore_dataset(lean), pipeline.prescore_dataset(full)
    for name, state in b.scorers.items():
        for field in ("note_intercept", "note_factor", "rater_intercept", "rater_factor"):
            want = getattr(state.pre.params, field)
            assert getattr(a.scorers[name].pre.params, field).tobytes() == want.tobytes(), (name, field)
        assert np.array_equal(a.scorers[name].pre.provisional_status, state.pre.provisional_status)
    (data / "noteStatusHistory-00000.tsv").unlink()
    none = read_dataset(data, status_columns=PRESCORING_STATUS_COLUMNS)
    assert tuple(none.status_history.columns) == PRESCORING_STATUS_COLUMNS and none.status_history.empty


def test_a_conflict_in_a_column_not_kept_is_still_fatal(tmp_path: Path) -> None:
    simulate(config_for_scale("tiny", seed=5), tmp_path)
    path = tmp_path / "notes-00000.tsv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    header = lines[0].rstrip("\n").split("\t")
    row = lines[1].rstrip("\n").split("\t")
    col = header.index("harmful")
    row[col] = "LITTLE_HARM" if row[col] != "LITTLE_HARM" else "CONSIDERABLE_HARM"
    path.write_text("".join([*lines, "\t".join(row) + "\n"]), encoding="utf-8")
    with pytest.raises(DataFormatError, match="appears again with different values"):
        read_dataset(tmp_path, note_columns=SCORING_NOTE_COLUMNS)


def test_prescoring_keeps_no_scope_once_each_scorer_is_done(dataset: Dataset, monkeypatch) -> None:
    """Each scorer's prescoring finds its scope kept for its own passes, and the next scorer's
    starts with none kept but its own (``scope_space.on_scope`` measured it to decide whether to
    score on a subset): no older mask held through its fits."""
    from bridgewatch.scoring import scorer_run

    cfg = ScoringConfig()
    inputs = pipeline._inputs(dataset, dataset.ratings, cfg, None, None)
    own = [s for s in default_scorers() if s.topic is None and s.kernel == "mf" and s.prescoring is None]
    specs = own[:3]
    held_at_start, held_at_end, filtered_at_start = [], [], []
    fit = scorer_run.prescore_scorer

    def counted(inputs, spec, *args, **kw):
        own = S._SCOPES.get(inputs, spec) is not None
        held_at_start.append(S._SCOPES.held(inputs) - own)
        filtered_at_start.append(inputs.matrix in P._LAST_FILTER)
        out = fit(inputs, spec, *args, **kw)
        held_at_end.append(S._SCOPES.held(inputs))
        return out

    monkeypatch.setattr(pipeline, "prescore_scorer", counted)
    pipeline._prescore(inputs, None, "", cfg, 42, specs, pipeline.Clock(None))
    assert held_at_start == [0, 0, 0]
    assert all(n >= 1 for n in held_at_end)  # the scorer's own passes did keep its scope
    assert S._SCOPES.held(inputs) == 0
    # nor the last scorer's filtered scope (``count_filter``'s, a rating mask)
    assert filtered_at_start == [False, False, False] and inputs.matrix not in P._LAST_FILTER


def test_final_scoring_keeps_no_mask_once_each_scorer_is_done(dataset: Dataset, monkeypatch) -> None:
    """Each scorer's final scoring (a Gaussian scorer's too) finds no scope but its own nor any
    final-round mask kept from the scorer before it: a kept final mask also held that scorer's expanded
    prescoring through every later fit and the outputs' assembly."""
    import numba

    from bridgewatch.scoring import final_scoring as F

    held: list[tuple[str, int, int, int, int]] = []

    def counted(fn, name_of):
        def run(inputs, spec_or_pre, *args, **kw):
            # (its own scope may be kept: ``scope_space.on_scope`` measured it)
            spec = getattr(spec_or_pre, "spec", spec_or_pre)
            own = S._SCOPES.get(inputs, spec) is not None
            start = (S._SCOPES.held(inputs) - own, F._FINAL_MASK.held(inputs))
            out = fn(inputs, spec_or_pre, *args, **kw)
            held.append((name_of(out), *start, S._SCOPES.held(inputs), F._FINAL_MASK.held(inputs)))
            return out

        return run

    monkeypatch.setattr(pipeline, "final_scorer", counted(pipeline.final_scorer, lambda run: run.spec.name))
    monkeypatch.setattr(pipeline, "run_derived", counted(pipeline.run_derived, lambda run: run.spec.name))
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # scorers one at a time, so that no other scorer's masks are in flight
    try:
        result = pipeline.score_dataset(dataset, epoch_millis=EPOCH)
    finally:
        numba.set_num_threads(threads)
    names = [h[0] for h in held]
    assert any(n.startswith("Gaussian") for n in names) and "MFCoreScorer" in names
    assert [(h[1], h[2]) for h in held] == [(0, 0)] * len(held), held
    assert all(h[3] == 0 for h in held)  # each lets its scopes go before its filters
    assert sum(h[4] for h in held) > 0  # and the final-round masks
    assert "finalRatingStatus" in result.scored_notes.columns


def test_final_fits_and_gaussian_passes_keep_no_filtered_scope(dataset: Dataset, monkeypatch) -> None:
    """The final round's masks are made in one pass (``rating_pass.final_round``): no
    ``count_filter`` result of the scope stays cached under the final note fits or the Gaussian
    kernel passes (a rating mask each, 0.19 GiB at X's scale, held for nothing)."""
    from bridgewatch.scoring import final_scoring as F
    from bridgewatch.scoring import gaussian_run as GR

    cached: dict[str, list[bool]] = {"fit": [], "pass": []}

    def spied(fn, kind):
        def run(*args, **kw):
            cached[kind].append(len(P._LAST_FILTER) > 0)
            return fn(*args, **kw)

        return run

    monkeypatch.setattr(F, "final_note_fit", spied(F.final_note_fit, "fit"))
    monkeypatch.setattr(GR.GW, "gaussian_scores", spied(GR.GW.gaussian_scores, "pass"))
    result = pipeline.score_dataset(dataset, epoch_millis=EPOCH)
    assert len(cached["fit"]) > 0 and len(cached["pass"]) > 0
    assert not any(cached["fit"]) and not any(cached["pass"]), cached
    assert "finalRatingStatus" in result.scored_notes.columns


def test_aux_note_info_takes_cores_population_counts_from_the_output_columns(
    dataset: Dataset, monkeypatch
) -> None:
    """Core's population-sampled counts (a pass over the notes, raters and flags of every rating)
    are counted once, with the output columns, and aux_note_info writes them from there (its
    values are checked against the reference's on the golden cases, bench/agreement.py)."""
    from bridgewatch.scoring import assemble as A

    calls: list[int] = []
    real = A.population_sampled_counts

    def counted(m, core):
        calls.append(m.n_ratings)
        return real(m, core)

    monkeypatch.setattr(A, "population_sampled_counts", counted)
    result = pipeline.score_dataset(dataset, epoch_millis=EPOCH)
    assert len(calls) == 1
    aux = result.aux_note_info
    assert all(aux[column].notna().any() for column in A.POP_COUNT_COLUMNS)
