"""Partial rescoring (§6.7): notes touched only by high-volume flips keep every fit but NoHighVol.

The exact test runs the closed-form note solver (``solver = "als"``), where a note's fit does not
depend on which other notes are fitted with it: a partially rescored note must then equal a full
final run bit for bit. The phase-level tests run the default Adam replay, whose stopping rule sees
every note fitted together, so numbers agree to its tolerance and statuses exactly.
"""

from __future__ import annotations

import dataclasses
import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bridgewatch import schema
from bridgewatch.io import read_dataset
from bridgewatch.io.tsv import splice_rows
from bridgewatch.runner import score_directory
from bridgewatch.scoring import rescore as RS
from bridgewatch.scoring.config import FilterConfig, MFConfig, ScoringConfig
from bridgewatch.scoring.outputs import COLUMNS
from bridgewatch.scoring.pipeline import final_dataset, prescore_dataset
from bridgewatch.scoring.scorer import prepare_inputs
from bridgewatch.scoring.scorer_specs import core, expansion, gaussian
from bridgewatch.sim.config import config_for_scale
from bridgewatch.sim.simulate import simulate
from bridgewatch.sim.yesterday import hold_back
from texts import frame_text

EPOCH = 1_795_305_600_000
HOUR = 3_600_000
SCORERS = [core(), expansion(), gaussian()]
STATUS_COLUMNS = ("finalRatingStatus", "decidedBy", "metaScorerActiveRules", "firstTag")
# Tag-outlier aggregates z-normalize note factors over the notes scored together (§3.3), so they
# move with the set of rescored notes; everything else of a partially rescored note is exact.
_SET_DEPENDENT = ("ratingWeight", "Adjusted", "AdjustedRatio")


def _config(quantile: float, solver: str = "adam") -> ScoringConfig:
    # The high-volume tagging switches off below 200 notes; these communities are smaller.
    filters = dataclasses.replace(FilterConfig(), min_notes_for_prod_data=0, high_volume_quantile=quantile)
    return ScoringConfig(mf=dataclasses.replace(MFConfig(), solver=solver), filters=filters)


@pytest.fixture(scope="module")
def community(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("community")
    simulate(config_for_scale("tiny", seed=11, notes=120, raters=400, ratings=3000, days=40.0), data)
    return data


def _high_volume(dataset, config: ScoringConfig) -> np.ndarray:
    m = dataset.ratings
    return prepare_inputs(m, dataset.notes, dataset.status_history, dataset.enrollment, config).high_volume


def test_partially_rescored_notes_equal_a_full_run_exactly(community: Path) -> None:
    dataset = read_dataset(community)
    before, after = _config(0.97, "als"), _config(0.9, "als")
    flipped = _high_volume(dataset, before) != _high_volume(dataset, after)
    assert flipped.any()
    pre = prescore_dataset(dataset, config=before, seed=3, scorers=SCORERS)
    old = final_dataset(dataset, pre, epoch_millis=EPOCH, config=before)
    full = final_dataset(dataset, pre, epoch_millis=EPOCH, config=after)
    m = dataset.ratings
    partial = RS.touched_notes(m, flipped)
    assert 0 < partial.sum() < m.n_notes
    table = RS.fits_table(old.runs, m.note_ids, np.ones(m.n_notes, dtype=bool))
    plan = RS.RescorePlan(partial, RS.reused_fits(table, m.note_ids, partial))
    inc = final_dataset(dataset, pre, epoch_millis=EPOCH, config=after, rescore=lambda inputs: plan)
    ids = m.note_ids[partial]
    # Scored in a note space of the rescored notes; ``notes`` and ``inputs`` cover every note.
    np.testing.assert_array_equal(inc.notes.note_ids, m.note_ids)
    np.testing.assert_array_equal(inc.notes.final_status[partial], full.notes.final_status[partial])
    np.testing.assert_array_equal(inc.notes.core_intercept[partial], full.notes.core_intercept[partial])
    assert (
        pd.isna(inc.notes.final_status[~partial]).all() and np.isnan(inc.notes.core_intercept[~partial]).all()
    )
    assert inc.inputs.matrix.n_notes == m.n_notes
    # The NoHighVol refits moved (the flip matters), and the partial run followed them.
    a = old.scored_notes.set_index("noteId").loc[ids, "coreNoteInterceptNoHighVol"]
    b = full.scored_notes.set_index("noteId").loc[ids, "coreNoteInterceptNoHighVol"]
    assert not np.allclose(a.to_numpy(np.float64), b.to_numpy(np.float64), equal_nan=True)
    for name in ("scored_notes", "note_status_history", "aux_note_info"):
        x = getattr(inc, name).set_index("noteId").loc[ids]
        y = getattr(full, name).set_index("noteId").loc[ids]
        cols = [c for c in x.columns if not c.endswith(_SET_DEPENDENT)]
        pd.testing.assert_frame_equal(x[cols], y[cols], check_exact=True, obj=name)


@pytest.fixture(scope="module")
def held_back(community: Path, tmp_path_factory) -> Path:
    """The community without its newest 2% of ratings: yesterday's data."""
    data = tmp_path_factory.mktemp("held_back")
    hold_back(community, data, 0.02)
    return data


def _score(data: Path, out: Path, **kw) -> object:
    return score_directory(
        data, out, seed=7, epoch_millis=kw.pop("epoch", EPOCH), scorers=SCORERS, config=_config(0.9), **kw
    )


@pytest.fixture(scope="module")
def day1(held_back: Path, tmp_path_factory) -> Path:
    """Prescoring and a full final run on yesterday's data: the state a deployment holds."""
    root = tmp_path_factory.mktemp("day1")
    _score(held_back, root / "pre", phase="prescore", state_dir=root / "state")
    _score(held_back, root / "final", phase="final", state_dir=root / "state")
    return root / "state"


def _run_both(data: Path, day1: Path, tmp: Path, epoch: int) -> tuple[object, object]:
    shutil.copytree(day1, tmp / "inc_state")
    shutil.copytree(day1, tmp / "full_state")
    inc = _score(data, tmp / "inc", phase="final", state_dir=tmp / "inc_state", incremental=True, epoch=epoch)
    full = _score(data, tmp / "full", phase="final", state_dir=tmp / "full_state", epoch=epoch)
    return inc, full


def _assert_like_full(tmp: Path) -> None:
    a = pd.read_parquet(tmp / "inc" / "scored_notes.parquet").set_index("noteId")
    b = pd.read_parquet(tmp / "full" / "scored_notes.parquet").set_index("noteId")
    pd.testing.assert_frame_equal(a[list(STATUS_COLUMNS)], b[list(STATUS_COLUMNS)])
    # A note the run carries over keeps the previous run's fit, which Adam stopped at another
    # point (it sees all notes fitted together): one sitting on a scorer's threshold may differ.
    for col in ("coreRatingStatus", "expansionRatingStatus", "gaussianRatingStatus"):
        differ = (a[col] != b[col]) & ~(a[col].isna() & b[col].isna())
        assert differ.sum() <= 0.02 * len(a), col
    # The Gaussian kernel reads each note's own ratings only: carried and rescored notes alike
    # must equal the full run exactly (a note missed by the selection would not).
    fitted = [c for c in a.columns if c.endswith(("NoteIntercept", "NoHighVol", "NoCorrelated"))]
    exact = [c for c in fitted if c.startswith("gaussian")]
    pd.testing.assert_frame_equal(a[exact], b[exact], check_exact=True)
    # Adam stops on the loss of all the notes it fits together (a NoHighVol refit's set changes
    # with every flip), so the MF values agree to its tolerance.
    mf = [c for c in fitted if c not in exact]
    pd.testing.assert_frame_equal(a[mf], b[mf], check_exact=False, atol=2e-2, rtol=0)
    for name in (schema.SCORED_NOTES_FILE, schema.NOTE_STATUS_HISTORY_FILE, schema.AUX_NOTE_INFO_FILE):
        # Each spliced TSV is exactly what formatting its whole frame writes.
        frame = pd.read_parquet((tmp / "inc" / name).with_suffix(".parquet"))
        assert frame_text(frame, COLUMNS[name]) == (tmp / "inc" / name).read_bytes(), name


def test_new_ratings_and_high_volume_flips(community: Path, day1: Path, tmp_path: Path) -> None:
    inc, _ = _run_both(community, day1, tmp_path, EPOCH + 2 * HOUR)
    rescored, partial = inc.timings["rescored notes"], inc.timings["rescored notes (partially)"]
    assert 0 < partial < rescored < len(inc.scored_notes)
    _assert_like_full(tmp_path)


def test_a_state_without_fits_rescores_flips_fully(community: Path, day1: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"  # a final state written before fits and output texts were kept
    shutil.copytree(day1, old)
    for name in ("fits.parquet", schema.SCORED_NOTES_FILE, schema.AUX_NOTE_INFO_FILE):
        (old / "final" / name).unlink()
    inc, _ = _run_both(community, old, tmp_path, EPOCH + 2 * HOUR)
    assert inc.timings["rescored notes (partially)"] == 0
    assert not (tmp_path / "inc_state" / "final" / "fits.parquet").exists()  # still incomplete
    _assert_like_full(tmp_path)


def test_changed_status_history_rescores_those_notes(community: Path, day1: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(community, data)
    nsh = pd.read_csv(data / schema.STATUS_FILE, sep="\t", dtype=str, keep_default_na=False)
    changed = nsh.index[nsh["currentStatus"] == schema.NMR][:3]
    nsh.loc[changed, "currentStatus"] = schema.CRH
    nsh.to_csv(data / schema.STATUS_FILE, sep="\t", index=False)
    shutil.copytree(day1, tmp_path / "base")  # a final state on today's ratings, then the NSH change
    _score(community, tmp_path / "o", phase="final", state_dir=tmp_path / "base", incremental=True)
    inc, _ = _run_both(data, tmp_path / "base", tmp_path, EPOCH)
    assert len(changed) <= inc.timings["rescored notes"] < len(inc.scored_notes) / 2
    _assert_like_full(tmp_path)


def test_nothing_changed_rescores_nothing_and_rewrites_the_same_bytes(
    community: Path, day1: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    shutil.copytree(day1, state)
    _score(community, tmp_path / "a", phase="final", state_dir=state, incremental=True, epoch=EPOCH + HOUR)
    again = _score(
        community, tmp_path / "b", phase="final", state_dir=state, incremental=True, epoch=EPOCH + HOUR
    )
    # Only notes the clock can move: in stabilization (timer in the input NSH) or near the lock age.
    nsh = pd.read_csv(community / schema.STATUS_FILE, sep="\t")
    notes = pd.read_csv(community / schema.NOTES_FILE, sep="\t")
    in_timer = int((nsh["timestampMillisOfNmrDueToMinStableCrhTime"].fillna(0) > 0).sum())
    age = EPOCH + HOUR - notes["createdAtMillis"]
    near_lock = int((abs(age - 14 * 86_400_000) <= HOUR).sum())
    assert again.timings["rescored notes"] <= in_timer + near_lock
    assert again.timings["rescored notes (partially)"] == 0
    for name in (schema.SCORED_NOTES_FILE, schema.NOTE_STATUS_HISTORY_FILE, schema.AUX_NOTE_INFO_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_incremental_runs_are_deterministic(community: Path, day1: Path, tmp_path: Path) -> None:
    for run in ("x", "y"):
        shutil.copytree(day1, tmp_path / f"{run}_state")
        state = tmp_path / f"{run}_state"
        _score(
            community,
            tmp_path / run,
            phase="final",
            state_dir=state,
            incremental=True,
            epoch=EPOCH + 2 * HOUR,
        )
    for x, y in (("x", "y"), ("x_state/final", "y_state/final")):
        paths = sorted((tmp_path / x).glob("*.*"))
        assert len(paths) >= 6
        for path in paths:
            assert path.read_bytes() == (tmp_path / y / path.name).read_bytes(), path


def _splice(old: bytes, old_keys, new: bytes, new_keys, keys) -> bytes | None:
    out = io.BytesIO()
    if not splice_rows(io.BytesIO(old), old_keys, io.BytesIO(new), new_keys, keys, out):
        assert out.getvalue() == b""  # nothing written when it cannot splice
        return None
    return out.getvalue()


def test_splice_rows_equals_formatting_the_whole_frame() -> None:
    cols = ["noteId", "x", "s"]
    old = pd.DataFrame(
        {"noteId": [1, 2, 3, 5], "x": [0.1, np.nan, 0.3, 2.0], "s": ["a", "t\tab", None, 'q"']}
    )
    old["x"] = old["x"].astype(np.float32)
    new = old[old["noteId"] != 5].copy()
    new.loc[1, "x"] = np.float32(7.25)
    new = pd.concat([new, pd.DataFrame({"noteId": [4], "x": np.float32([1.5]), "s": ["n"]})])
    new = new.sort_values("noteId").reset_index(drop=True)
    rows = new[new["noteId"].isin([2, 4])]
    text = _splice(
        frame_text(old, cols), old["noteId"].to_numpy(), frame_text(rows, cols), rows["noteId"].to_numpy(),
        new["noteId"].to_numpy(),
    )  # fmt: skip
    assert text == frame_text(new, cols)
    # Nothing rescored, or nothing kept: one side is only a header.
    keys = old["noteId"].to_numpy()
    none = frame_text(old.iloc[:0], cols)
    assert _splice(frame_text(old, cols), keys, none, keys[:0], keys) == frame_text(old, cols)
    assert _splice(none, keys[:0], frame_text(old, cols), keys, keys) == frame_text(old, cols)
    # A quoted newline makes lines and rows differ: the caller formats the whole frame instead.
    broken = rows.assign(s=["two\nlines", "n"])
    assert _splice(frame_text(old, cols), old["noteId"].to_numpy(), frame_text(broken, cols),
                   rows["noteId"].to_numpy(), new["noteId"].to_numpy()) is None  # fmt: skip
    # Other headers, a key in neither text, an empty old text: no splice either.
    other = frame_text(rows.rename(columns={"s": "t"}), ["noteId", "x", "t"])
    assert (
        _splice(frame_text(old, cols), keys, other, rows["noteId"].to_numpy(), new["noteId"].to_numpy())
        is None
    )
    assert _splice(frame_text(old, cols), keys, none, keys[:0], np.array([1, 9])) is None
    assert _splice(b"", keys[:0], none, keys[:0], keys[:0]) is None


def test_splice_rows_reads_texts_longer_than_its_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    # The texts are read a chunk at a time (at X's scale they are gigabytes); rows and runs that
    # straddle chunk boundaries must come out whole.
    import bridgewatch.io.tsv as tsv

    monkeypatch.setattr(tsv, "_CHUNK", 7)
    n = 300
    rng = np.random.default_rng(3)
    old = pd.DataFrame(
        {"noteId": np.arange(n) * 2, "x": rng.normal(size=n), "s": [f"v{i}" * (i % 5) for i in range(n)]}
    )
    new = old.copy()
    changed = rng.random(n) < 0.3
    new.loc[changed, "x"] = rng.normal(size=int(changed.sum()))
    cols = ["noteId", "x", "s"]
    rows = new[changed]
    keys = new["noteId"].to_numpy()
    text = _splice(frame_text(old, cols), keys, frame_text(rows, cols), rows["noteId"].to_numpy(), keys)
    assert text == frame_text(new, cols)


def test_rater_changes_split_group_changes_from_high_volume_flips() -> None:
    previous = pd.DataFrame(
        {"raterParticipantId": ["a", "b", "c"], "highVolume": [False, True, False], "group": [1, 2, 3]}
    )
    current = pd.DataFrame(
        {
            "raterParticipantId": ["a", "b", "c", "d"],
            "highVolume": [True, True, True, False],
            "group": [1, 5, 3, 4],
        }
    )
    group, high = RS.rater_changes(previous, current)
    assert group.tolist() == [False, True, False, True]
    assert high.tolist() == [True, False, True, False]


def _gaussian_no_high(result) -> pd.Series:
    return result.scored_notes.set_index("noteId")["gaussianNoteInterceptNoHighVol"].astype(np.float64)


def test_gaussian_no_high_vol_pass_reuses_exactly_the_notes_whose_input_did_not_move(community: Path) -> None:
    dataset = read_dataset(community)
    before, after = _config(0.97, "als"), _config(0.9, "als")
    flipped = _high_volume(dataset, before) != _high_volume(dataset, after)
    pre = prescore_dataset(dataset, config=before, seed=3, scorers=SCORERS)
    old = final_dataset(dataset, pre, epoch_millis=EPOCH, config=before)
    full = final_dataset(dataset, pre, epoch_millis=EPOCH, config=after)
    m = dataset.ratings
    partial = RS.touched_notes(m, flipped)
    table = RS.fits_table(old.runs, m.note_ids, np.ones(m.n_notes, dtype=bool))
    gauss = table["scorer"] == "GaussianScorer"
    assert table.loc[gauss, "noHighVol"].notna().any()
    assert table.loc[~gauss, "noHighVol"].isna().all()  # MF scorers always refit NoHighVol

    def run(fits: pd.DataFrame) -> object:
        plan = RS.RescorePlan(partial, RS.reused_fits(fits, m.note_ids, partial, high_flipped=flipped))
        return final_dataset(dataset, pre, epoch_millis=EPOCH, config=after, rescore=lambda inputs: plan)

    # With the real previous values the partial run equals a full run on every note.
    ids = m.note_ids[partial]
    pd.testing.assert_series_equal(_gaussian_no_high(run(table)).loc[ids], _gaussian_no_high(full).loc[ids])
    # Poisoned previous values show which notes the pass kept: a kept note's value did not move,
    # a note whose value moved was refitted (one whose input moved may land on the same value:
    # it is refitted all the same).
    poisoned = table.assign(noHighVol=np.where(gauss, 99.0, table["noHighVol"]))
    got = _gaussian_no_high(run(poisoned)).loc[ids]
    was, now = _gaussian_no_high(old).loc[ids], _gaussian_no_high(full).loc[ids]
    kept = got == 99.0
    moved = ~((was == now) | (was.isna() & now.isna()))
    assert kept.any() and moved.any()
    assert not (kept & moved).any()
    pd.testing.assert_series_equal(got[~kept], now[~kept])


def test_a_state_without_gaussian_no_high_vol_reruns_the_pass(
    community: Path, day1: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old"  # a final state written before the fits kept NoHighVol
    shutil.copytree(day1, old)
    fits = pd.read_parquet(old / "final" / "fits.parquet")
    assert "noHighVol" in fits.columns
    fits.drop(columns=["noHighVol"]).to_parquet(old / "final" / "fits.parquet", index=False)
    inc, _ = _run_both(community, old, tmp_path, EPOCH + 2 * HOUR)
    assert inc.timings["rescored notes (partially)"] > 0
    assert "noHighVol" in pd.read_parquet(tmp_path / "inc_state" / "final" / "fits.parquet").columns
    _assert_like_full(tmp_path)
