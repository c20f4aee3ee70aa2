"""Compact per-note columns expand to exactly the arrays they replace, and shrink scorers'
kept results (``assemble.kept_for_outputs``) without changing what the pipeline writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bridgewatch.io import Dataset, read_dataset
from bridgewatch.scoring import assemble as A
from bridgewatch.scoring import compact as C
from bridgewatch.scoring import pipeline
from bridgewatch.scoring.compact import (
    MAX_DENSITY,
    Coded,
    Overlay,
    Packed,
    code,
    compact,
    compact_frame,
    expand,
    expand_fields,
    expand_frame,
    expand_rows,
    kept_bytes,
    overlay,
    pack,
    pack_frame,
)
from bridgewatch.scoring.scorer_run import expand_prescore, pack_prescore
from bridgewatch.sim.config import config_for_scale
from bridgewatch.sim.simulate import simulate

EPOCH = 1795305600000


@pytest.fixture(autouse=True)
def _compact_small_arrays(monkeypatch) -> None:
    """These tests compact arrays of a few hundred entries (and a tiny community's runs), below
    the size ``compact`` leaves dense; ``test_small_columns_stay_dense`` checks that size itself."""
    monkeypatch.setattr(C, "MIN_ENTRIES", 0)


def test_small_columns_stay_dense(monkeypatch) -> None:
    """Below ``MIN_ENTRIES`` a column is returned as it is (the SparseArray costs more than it
    saves); from it on, the same column is kept sparse and expands to the same bits."""
    monkeypatch.setattr(C, "MIN_ENTRIES", 65_536)
    rng = np.random.default_rng(3)
    small = _sparse_column(rng, np.float64, np.nan, 0.05, n=65_535)
    assert compact(small) is small
    frame = pd.DataFrame({"a": small, "b": np.zeros(small.size, dtype=np.int32)})
    assert compact_frame(frame) is frame  # nothing to shrink: not rebuilt column by column
    large = _sparse_column(rng, np.float64, np.nan, 0.05, n=65_536)
    kept = compact(large)
    assert isinstance(kept, pd.arrays.SparseArray)
    _same(np.asarray(kept), large)
    assert kept_bytes(kept) < large.nbytes / 4


def _same(expanded: np.ndarray, original: np.ndarray) -> None:
    """Equal dtype and bits (NaN payloads and signs, -0.0 included)."""
    assert expanded.dtype == original.dtype
    assert expanded.tobytes() == original.tobytes()


def _sparse_column(rng: np.random.Generator, dtype: type, fill: float, share: float, n: int = 1000):
    values = np.full(n, fill, dtype=dtype)
    hit = rng.random(n) < share
    values[hit] = rng.integers(-5, 6, hit.sum()).astype(dtype)  # zeros among them too
    return values


@pytest.mark.parametrize(
    ("dtype", "fill"),
    [(np.float64, np.nan), (np.float32, np.nan), (np.float64, 0.0), (np.float32, 0.0)]
    + [(t, 0) for t in (np.int64, np.int32, np.int8, np.uint32, bool)],
)
def test_sparse_columns_expand_to_the_same_array(dtype: type, fill: float) -> None:
    rng = np.random.default_rng(3)
    values = _sparse_column(rng, dtype, fill, 0.1)
    kept = compact(values)
    assert isinstance(kept, pd.arrays.SparseArray), dtype
    assert kept_bytes(kept) < values.nbytes
    _same(np.asarray(kept), values)
    _same(pd.Series(kept).to_numpy(), values)


def test_dense_or_unsupported_columns_stay_as_they_are() -> None:
    rng = np.random.default_rng(4)
    dense = rng.random(100)
    dense[: int(100 * (1 - MAX_DENSITY)) - 1] = np.nan  # just above MAX_DENSITY finite
    assert compact(dense) is dense
    names = np.array([None] * 99 + ["x"], dtype=object)
    assert compact(names) is names
    assert compact(np.zeros(0)).size == 0


def test_negative_zero_and_negative_nan_survive() -> None:
    values = np.zeros(100)
    values[7] = -0.0
    values[9] = 2.5
    _same(np.asarray(compact(values)), values)
    values[11] = -np.float64(np.nan)
    values[12] = np.nan
    _same(np.asarray(compact(values)), values)
    nan = np.full(100, np.nan, dtype=np.float32)
    nan[3] = -nan[3]
    nan[5] = -0.0
    kept = compact(nan)
    assert isinstance(kept, pd.arrays.SparseArray) and kept_bytes(kept) < nan.nbytes
    _same(np.asarray(kept), nan)
    _same(np.asarray(compact(-nan)), -nan)  # mostly negative NaNs
    assert kept_bytes(compact(-nan)) < nan.nbytes


def test_frame_keeps_columns_order_and_index() -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "noteId": np.arange(500, dtype=np.int64) * 7,
            "x": _sparse_column(rng, np.float64, np.nan, 0.05, 500),
            "y": _sparse_column(rng, np.float32, 0.0, 0.2, 500),
            "n": _sparse_column(rng, np.int32, 0, 0.3, 500),
        }
    )
    kept = compact_frame(frame)
    assert list(kept.columns) == list(frame.columns) and kept.index.equals(frame.index)
    assert kept_bytes(kept) < sum(frame[c].to_numpy().nbytes for c in frame.columns)
    for c in frame.columns:
        _same(kept[c].to_numpy(), frame[c].to_numpy())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Dataset:
    data = tmp_path_factory.mktemp("community")
    simulate(config_for_scale("tiny", seed=5), Path(data))
    return read_dataset(data)


def test_kept_runs_expand_to_every_scorers_full_results(dataset: Dataset, monkeypatch) -> None:
    """Every run of a real pipeline, as kept for the outputs, expands to its full arrays; the
    small-scope scorers keep less than their full size."""
    pairs = []
    gaussians: list[bool] = []
    real = A.kept_for_outputs

    def record(run, prescoring=None, note_ids=None):
        kept = real(run, prescoring, note_ids)
        # every scorer's note ids are the dataset's own array, held once
        assert note_ids is not None and np.shares_memory(kept.final["noteId"].to_numpy(), note_ids)
        if prescoring is not None:  # a run keeps the packed state it was scored on (Gaussian: its base's)
            assert kept.pre is prescoring.pre and isinstance(kept.pre.params.note_intercept, Packed)
            assert kept.diligence is (None if run.diligence is None else prescoring.diligence)
            gaussians.append(run.spec.kernel == "gaussian")
        pairs.append((run, kept))
        return kept

    monkeypatch.setattr(A, "kept_for_outputs", record)
    pipeline.score_dataset(dataset, epoch_millis=EPOCH)
    assert len(pairs) > 4 and any(gaussians) and not all(gaussians)
    shrunk = overlays = coded = 0
    for full, kept in pairs:
        name = full.spec.name
        own = [c for c in full.final.columns if c == "noteId" or c.startswith(full.spec.prefix)]
        assert list(kept.final.columns) == own and "numRatings" in full.final.columns, name
        for c in own:
            _same(kept.final[c].to_numpy(), full.final[c].to_numpy())
        assert set(kept.fits) == set(full.fits), name
        for k, v in full.fits.items():
            _same(np.asarray(kept.fits[k]), v)
        _same(np.asarray(kept.low_diligence), full.low_diligence)
        expanded = expand_fields(kept.result)
        for f in ("status", "rule_mask", "deciding_rule"):
            _same(getattr(expanded, f), getattr(full.result, f))
        assert expanded.active_filter_tags.tolist() == full.result.active_filter_tags.tolist(), name
        coded += isinstance(kept.result.active_filter_tags, Coded)
        held = [kept.low_diligence, *(kept.final[c].array for c in kept.final.columns)]
        held += [kept.final[c].to_numpy() for c in kept.final.columns]

        def kept_again(v: object, held: list = held) -> bool:
            base = v.base if isinstance(v, Overlay) else v
            return any(base is h or (isinstance(base, np.ndarray) and isinstance(h, np.ndarray)
                                     and np.shares_memory(base, h)) for h in held)  # fmt: skip

        overlays += sum(isinstance(v, Overlay) for v in kept.fits.values())
        if full.spec.capture_threshold is None:  # each fit its final column again (or an overlay), no copy
            assert all(kept_again(v) for v in kept.fits.values()), name
        before = kept_bytes(full.final) + kept_bytes(full.fits) + kept_bytes(full.low_diligence)
        after = kept_bytes(kept.final) + kept_bytes(kept.fits) + kept_bytes(kept.low_diligence)
        assert after <= before, name
        shrunk += full.scored.mean() < 0.2 and after < before / 2
    assert shrunk > 0
    assert overlays > 0
    assert coded == len(pairs)  # the filter tags: a few distinct texts, None for most notes


@pytest.mark.filterwarnings("ignore:The 'sparse_index' parameter")
def test_pandas_without_from_indices_builds_the_same_columns(monkeypatch) -> None:
    """pandas < 3 has no ``SparseArray.from_indices``: the ``sparse_index`` route stores the same."""
    rng = np.random.default_rng(6)
    columns = [
        _sparse_column(rng, t, f, 0.2) for t, f in ((np.float32, np.nan), (np.float64, 0.0), (np.int64, 0))
    ]
    columns[0][::50] = -columns[0][::50]  # negative NaNs among the fill
    columns[1][::60] = -0.0
    built = [compact(c) for c in columns]
    monkeypatch.delattr(pd.arrays.SparseArray, "from_indices", raising=False)
    for values, new in zip(columns, built, strict=True):
        old = compact(values)
        assert isinstance(old, pd.arrays.SparseArray) and old.dtype == new.dtype
        _same(np.asarray(old), values)
        assert kept_bytes(old) == kept_bytes(new)


def test_pack_expands_bit_for_bit_and_narrows_only_when_exact() -> None:
    rng = np.random.default_rng(6)
    exact = rng.random((400, 2)).astype(np.float32).astype(np.float64)  # float32 fits, stored as float64
    exact[50:, 0] = np.nan
    exact[7, 1] = -0.0
    exact[9, 1] = -np.float64(np.nan)
    wide = rng.random(400)  # needs float64
    counts = np.zeros(400, dtype=np.int64)
    counts[::9] = rng.integers(1, 10**6, counts[::9].shape[0])
    big = counts.copy()
    big[3] = 2**40  # does not fit int32
    helpful = np.zeros(400, dtype=bool)
    helpful[::7] = True
    for values in (exact, exact[:, 0].copy(), wide, counts, big, helpful):
        packed = pack(values)
        assert isinstance(packed, Packed)
        _same(expand(packed), values)
        assert expand(values) is values  # an unpacked array passes through
    assert kept_bytes(pack(exact)) < exact.nbytes / 2
    assert kept_bytes(pack(counts)) < counts.nbytes / 4
    assert kept_bytes(pack(wide)) == wide.nbytes
    assert pack(np.array(["a"], dtype=object)).dtype == object  # text stays as it is


def test_rows_of_a_packed_column_are_its_expanded_rows() -> None:
    """``expand_rows`` gives a block of what ``expand`` gives, bit for bit, from every kept form."""
    rng = np.random.default_rng(8)
    narrow = rng.random((1000, 2)).astype(np.float32).astype(np.float64)
    narrow[100:, 0] = np.nan
    narrow[5, 1] = -0.0
    narrow[7, 0] = -np.float64(np.nan)
    sparse_neg = np.full(1000, -np.float64(np.nan))  # a -NaN fill, as NaN arithmetic leaves it
    sparse_neg[::50] = rng.random(20)
    counts = np.zeros(1000, dtype=np.int64)
    counts[::13] = 7
    cases = [(pack(narrow), narrow), (pack(rng.random(1000)), None), (pack(counts), counts),
             (compact(sparse_neg), sparse_neg), (narrow, narrow)]  # fmt: skip
    for kept, full in cases:
        full = np.asarray(expand(kept)) if full is None else full
        for start, stop in ((0, 1000), (0, 1), (333, 777), (990, 1000), (1000, 1000)):
            for column in (None,) if full.ndim == 1 else (0, 1):
                want = full[start:stop] if column is None else full[start:stop, column]
                _same(expand_rows(kept, start, stop, column), want)


def test_packed_frame_keeps_dtypes_index_and_text() -> None:
    frame = pd.DataFrame(
        {
            "raterParticipantId": pd.array([f"r{i}" for i in range(300)], dtype="str"),
            "x": np.where(np.arange(300) % 5 == 0, 0.25, np.nan),
            "ok": np.arange(300) % 3 == 0,
        },
        index=pd.RangeIndex(300),
    )
    back = expand_frame(pack_frame(frame))
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    for c in frame.columns:
        assert back[c].dtype == frame[c].dtype


def _arrays(obj, path=""):
    """(path, array or frame) for every array and frame field, nested dataclasses included."""
    import dataclasses

    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type) and f.name != "spec":
            yield from _arrays(value, f"{path}{f.name}.")
        elif isinstance(value, np.ndarray | pd.DataFrame):
            yield f"{path}{f.name}", value


def test_packed_prescoring_states_expand_to_the_fitted_ones(dataset: Dataset) -> None:
    """Every scorer's prescoring state packs smaller and expands to the very arrays it fitted."""
    pre = pipeline.prescore_dataset(dataset)
    assert len(pre.scorers) > 4
    for name, state in pre.scorers.items():
        packed = pack_prescore(state)
        assert not any(isinstance(v, np.ndarray) and v.size > 100 for _, v in _arrays(packed)), name
        assert kept_bytes(packed) < kept_bytes(state), name
        back = dict(_arrays(expand_prescore(packed)))
        full = dict(_arrays(state))
        assert back.keys() == full.keys(), name
        for key, value in full.items():
            if isinstance(value, pd.DataFrame):
                pd.testing.assert_frame_equal(back[key], value, check_exact=True)
            else:
                _same(back[key], value)
        unpacked = expand_prescore(state)  # a state never packed keeps its values
        _same(unpacked.pre.params.rater_factor, state.pre.params.rater_factor)


def test_overlay_keeps_only_the_entries_that_differ_from_a_held_column() -> None:
    rng = np.random.default_rng(12)
    base = rng.random(100_000)
    base[rng.random(base.size) < 0.9] = np.nan
    kept_base = compact(base)
    same = overlay(base.copy(), base, kept_base)
    assert same is kept_base  # every bit the same: the held object itself
    few = base.copy()
    few[[3, 70_000]] = [0.25, -np.float64(np.nan)]  # a negative NaN differs too
    kept = overlay(few, base, kept_base)
    assert isinstance(kept, Overlay) and kept.positions.tolist() == [3, 70_000]
    _same(np.asarray(kept), few)
    assert np.asarray(kept, dtype=np.float32).dtype == np.float32 and len(kept) == few.size
    assert kept_bytes(kept) == 2 * (8 + 4)
    many = rng.random(100_000)  # differs nearly everywhere: kept on its own
    assert not isinstance(overlay(many, base, kept_base), Overlay)
    _same(np.asarray(overlay(many, base, kept_base)), many)
    assert not isinstance(overlay(few.astype(np.float32), base, kept_base), Overlay)  # other dtype


def test_code_keeps_few_texts_as_codes_and_none_as_none() -> None:
    texts = np.array(["", "", "a,b", None, "", "c"] * 50, dtype=object)
    kept = code(texts)
    assert isinstance(kept, Coded) and len(kept) == texts.size
    back = np.asarray(kept)
    assert back.dtype == object and back.tolist() == texts.tolist()
    assert [v is None for v in back.tolist()] == [v is None for v in texts.tolist()]
    assert kept_bytes(kept) < texts.nbytes / 2
    assert expand(kept).tolist() == texts.tolist()
    # NaN (another missing value), many distinct texts, or numbers: left as they are
    for other in (
        np.array(["", np.nan] * 50, dtype=object),
        np.array([f"t{i}" for i in range(300)], dtype=object),
        np.arange(300),
    ):
        assert code(other) is other


def test_shared_columns_are_the_held_array_and_dense_ones_copies() -> None:
    ids = np.arange(500, dtype=np.int64) * 7
    frame = pd.DataFrame({"noteId": ids.copy(), "x": np.random.default_rng(1).random(500)})
    kept = compact_frame(frame, {"noteId": ids})
    assert np.shares_memory(kept["noteId"].to_numpy(), ids)
    # a dense column is its own copy, not a view that keeps the frame's block alive
    assert not np.shares_memory(kept["x"].to_numpy(), frame["x"].to_numpy())
    other = compact_frame(frame, {"noteId": ids + 1})  # not equal: kept as a column of its own
    assert not np.shares_memory(other["noteId"].to_numpy(), ids)
    _same(other["noteId"].to_numpy(), ids)
