"""The per-run and per-scorer costs an incremental final run cut, each pinned to what it replaced.

Every form below must give exactly (to the bit) what the code before it gave: the numpy
bincounts of the tag aggregates and side counts, the whole dataset's reference rank, the text
hashes of the rater ids, the copy-and-set of the capture test's blanking; and the heap trim
between phases happens only when there is much to return.
"""

from __future__ import annotations

import gc

import numpy as np
import pandas as pd
import pytest

from bridgewatch import runner
from bridgewatch.io import heap
from bridgewatch.io.matrix import build_rating_matrix, index_dtype
from bridgewatch.schema import NOT_HELPFUL_TAGS, TAG_BIT
from bridgewatch.scoring import compact as compact_module
from bridgewatch.scoring import preprocess as P
from bridgewatch.scoring import rescore as RS
from bridgewatch.scoring.capture import drop_captured_out
from bridgewatch.scoring.rules import note_counts_by_rater_sign, note_counts_by_rater_sign_kept
from bridgewatch.scoring.scorer import ScoringInputs
from bridgewatch.scoring.scorer_specs import core
from bridgewatch.scoring.tag_filter import distance_weights, note_tag_aggregates, zscore

NOW = 1_795_305_600_000


def _matrix(rng: np.random.Generator, n_ratings: int, n_notes: int, n_raters: int):
    return build_rating_matrix(
        note=rng.integers(0, n_notes, n_ratings).astype(np.int32),
        rater=rng.integers(0, n_raters, n_ratings).astype(np.int32),
        value=rng.choice(np.array([0.0, 0.5, 1.0], dtype=np.float32), n_ratings),
        created_at=NOW + rng.integers(-50, 50, n_ratings) * 1000,  # ties in time too
        tags=rng.integers(0, 2**22, n_ratings).astype(np.uint32),
        population_sampled=rng.random(n_ratings) < 0.1,
        note_ids=np.arange(n_notes, dtype=np.int64) * 5 + 1,
        rater_ids=np.array([f"r{i:04d}" for i in range(n_raters)], dtype=object),
    )


def _aggregates_bincount(note, rater, tags, note_factor, rater_factor):
    """``note_tag_aggregates`` as it was: one np.bincount per tag."""
    n_notes = note_factor.shape[0]
    fn, fu = zscore(note_factor)[note], zscore(rater_factor)[rater]
    keep = ~(np.isnan(fn) | np.isnan(fu))
    note_k = note[keep]
    w = distance_weights(np.abs(fu[keep] - fn[keep]), 40.0)
    tags_k = tags[keep]
    weight = np.bincount(note_k, weights=w, minlength=n_notes).astype(np.float64)
    present = np.bincount(note_k, minlength=n_notes) > 0
    adjusted = np.empty((n_notes, len(NOT_HELPFUL_TAGS)))
    for j, tag in enumerate(NOT_HELPFUL_TAGS):
        has = ((tags_k >> np.uint32(TAG_BIT[tag])) & np.uint32(1)).astype(bool)
        adjusted[:, j] = np.bincount(note_k[has], weights=w[has], minlength=n_notes)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = adjusted / weight[:, None]
    adjusted[~present] = weight[~present] = np.nan
    ratio[~present] = np.nan
    return adjusted, weight, ratio, present


@pytest.mark.parametrize("seed", range(4))
def test_tag_aggregates_are_the_bincounts_to_the_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_notes, n_raters, r = 50, 80, 3000
    note = rng.integers(0, n_notes, r)
    rater = rng.integers(0, n_raters, r)
    tags = rng.integers(0, 2**22, r).astype(np.uint32)
    fn, fu = rng.normal(size=n_notes), rng.normal(size=n_raters)
    fn[rng.random(n_notes) < 0.2] = np.nan
    fu[rng.random(n_raters) < 0.2] = np.nan
    agg = note_tag_aggregates(note, rater, tags, fn, fu)
    adjusted, weight, ratio, present = _aggregates_bincount(note, rater, tags, fn, fu)
    assert not present.all()
    for got, want in ((agg.adjusted, adjusted), (agg.rating_weight, weight), (agg.adjusted_ratio, ratio)):
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    np.testing.assert_array_equal(agg.present, present)


def test_tag_aggregates_refuse_a_negative_note_index() -> None:
    with pytest.raises(ValueError, match="note index"):
        tags = np.zeros(2, np.uint32)
        note_tag_aggregates(np.array([0, -1]), np.array([0, 1]), tags, np.arange(3.0), np.arange(2.0))


def _side_counts_bincount(note, rater_factor, helpful, n_notes):
    """``note_counts_by_rater_sign``'s counts as they were: one np.bincount each."""
    keep = ~np.isnan(rater_factor)
    note, rater_factor, helpful = note[keep], rater_factor[keep], helpful[keep]
    neg, pos = rater_factor < 0, rater_factor >= 0

    def count(sel, weights=None):
        return np.bincount(note[sel], weights=None if weights is None else weights[sel], minlength=n_notes)

    with np.errstate(invalid="ignore", divide="ignore"):
        neg_mean = (count(neg, helpful) / count(neg)).astype(np.float32)
        pos_mean = (count(pos, helpful) / count(pos)).astype(np.float32)
    one, zero = helpful == 1.0, helpful == 0.0
    neg_net, pos_net = count(neg & one) - count(neg & zero), count(pos & one) - count(pos & zero)
    net = np.maximum(np.minimum(neg_net, pos_net), 0)
    total = count(neg) + count(pos)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(total > 0, net / np.maximum(total, 1), 0.0).astype(np.float32)
    return count(neg), count(pos), neg_mean, pos_mean, net, ratio


@pytest.mark.parametrize("seed", range(4))
def test_side_counts_are_the_bincounts_to_the_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_notes, r = 40, 2000
    note = rng.integers(0, n_notes - 3, r).astype(np.int32)  # the last notes have no ratings
    factor = rng.normal(size=r)
    factor[rng.random(r) < 0.1] = np.nan
    factor[rng.random(r) < 0.05] = 0.0  # the "pos" side
    helpful = rng.choice(np.array([0.0, 0.5, 1.0], dtype=np.float32), r)
    got = note_counts_by_rater_sign(note, factor, helpful, n_notes)
    neg_n, pos_n, neg_mean, pos_mean, net, ratio = _side_counts_bincount(
        note.astype(np.int64), factor, helpful.astype(np.float64), n_notes
    )
    np.testing.assert_array_equal(got.neg_count, neg_n.astype(np.int32))
    np.testing.assert_array_equal(got.pos_count, pos_n.astype(np.int32))
    np.testing.assert_array_equal(got.min_sign_count, np.minimum(neg_n, pos_n).astype(np.int32))
    np.testing.assert_array_equal(got.net_min_helpful, net.astype(np.int32))
    for a, b in ((got.neg_mean_helpful, neg_mean), (got.pos_mean_helpful, pos_mean),
                 (got.net_min_helpful_ratio, ratio)):  # fmt: skip
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("seed", range(3))
def test_side_counts_of_kept_ratings_read_in_place_give_the_copies_bits(seed: int) -> None:
    """The scorers' form (a matrix's arrays, a keep mask, a factor per rater, no copies) against
    the per-rating form on the kept copies, as the scorers called it before."""
    rng = np.random.default_rng(seed)
    n_notes, n_raters, r = 40, 300, 3000
    note = np.sort(rng.integers(0, n_notes - 3, r)).astype(np.int32)
    rater = rng.integers(0, n_raters, r).astype(np.int32)
    helpful = rng.choice(np.array([0.0, 0.5, 1.0], dtype=np.float32), r)
    factor = np.column_stack([rng.normal(size=n_raters), rng.normal(size=n_raters)])
    factor[rng.random(n_raters) < 0.1, 0] = np.nan
    factor[rng.random(n_raters) < 0.05, 0] = 0.0
    keep = rng.random(r) < 0.7
    keep[note == 5] = False  # a note with ratings, none kept
    got = note_counts_by_rater_sign_kept(note, rater, helpful, keep, factor[:, 0], n_notes)
    want = note_counts_by_rater_sign(note[keep], factor[rater[keep], 0], helpful[keep], n_notes)
    for name in ("neg_count", "pos_count", "min_sign_count", "neg_mean_helpful", "pos_mean_helpful",
                 "net_min_helpful", "net_min_helpful_ratio"):  # fmt: skip
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
    assert got.neg_count[5] == got.pos_count[5] == 0
    with pytest.raises(ValueError, match="lengths"):
        note_counts_by_rater_sign_kept(note, rater, helpful, keep[:-1], factor[:, 0], n_notes)


@pytest.mark.parametrize("seed", range(3))
def test_the_rank_of_a_subset_orders_it_as_the_whole_dataset_rank_does(seed: int) -> None:
    """An incremental run ranks only the ratings it rescores; only the order is ever read."""
    rng = np.random.default_rng(seed)
    m = _matrix(rng, 4000, 60, 200)
    high, corr, pss = (rng.random(m.n_raters) < s for s in (0.2, 0.1, 0.1))
    whole = P.reference_rating_rank(m, high, corr, pss)
    keep = (rng.random(m.n_notes) < 0.3)[m.note]
    part = P.reference_rating_rank(m.subset(keep), high, corr, pss)
    np.testing.assert_array_equal(np.argsort(part, kind="stable"), np.argsort(whole[keep], kind="stable"))


@pytest.mark.parametrize("seed", range(3))
def test_the_rank_is_the_six_key_lexsort_it_replaced(seed: int) -> None:
    """(highVolume, correlated, not PSS, note, time, rater): ties in time fall to the rater, and
    a rater's duplicate ratings of one note (possible in raw files) to the matrix order."""
    rng = np.random.default_rng(seed)
    m = _matrix(rng, 5000, 80, 150)
    high, corr, pss = (rng.random(m.n_raters) < s for s in (0.2, 0.1, 0.1))
    r = m.rater
    order = np.lexsort((r, m.created_at, m.note, ~pss[r], corr[r], high[r]))
    want = np.empty(m.n_ratings, dtype=np.int64)
    want[order] = np.arange(m.n_ratings)
    got = P.reference_rating_rank(m, high, corr, pss)
    assert got.dtype == index_dtype(m.n_ratings)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(P.reference_rating_rank(m, high), np.argsort(np.lexsort(
        (r, m.created_at, m.note, high[r]))))  # fmt: skip


def test_rater_id_hashes_are_those_of_the_ids_as_text() -> None:
    ids = np.array(["a", "b\tc", "é", "1234567890" * 3, ""], dtype=object)
    np.testing.assert_array_equal(RS._id_hashes(ids), pd.util.hash_array(ids.astype(str)))
    mixed = np.array(["a", 7, 2.5], dtype=object)  # not all text: hashed as text all the same
    np.testing.assert_array_equal(RS._id_hashes(mixed), pd.util.hash_array(mixed.astype(str)))


def test_refitted_ratings_are_gathered_once_per_fixed_set() -> None:
    note = np.array([0, 0, 1, 2, 2, 2])
    fixed, other = np.array([True, False, True]), np.array([False, True, False])
    first = RS._refitted(fixed, note)
    np.testing.assert_array_equal(first, ~fixed[note])
    assert not first.flags.writeable
    assert RS._refitted(other, note) is not first
    assert RS._refitted(fixed, note) is first  # the last two sets are kept
    copy = fixed.copy()
    assert RS._refitted(copy, note) is not first  # by identity, not by value
    mask = np.ones(6, dtype=bool)
    np.testing.assert_array_equal(RS.ReusedFits(fixed, {}).fit_mask(mask, note), ~fixed[note])


def test_the_heap_is_trimmed_only_when_enough_is_free(monkeypatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(heap, "_TRIM", lambda pad: calls.append(pad) or 1)
    monkeypatch.setattr(heap, "free_bytes", lambda: 10 << 20)
    heap.release(64 << 20)
    assert calls == []
    heap.release(8 << 20)
    heap.release()  # no minimum: always, as the readers ask
    assert calls == [0, 0]
    monkeypatch.setattr(heap, "free_bytes", lambda: None)  # unknown (no mallinfo2): trim
    heap.release(64 << 20)
    assert calls == [0, 0, 0]


def test_free_bytes_reads_the_arenas_where_glibc_says() -> None:
    free = heap.free_bytes()
    assert free is None or free >= 0


def test_drop_captured_out_blanks_only_the_model_columns_of_dropped_notes() -> None:
    spec = core()
    p = spec.prefix
    n = 6
    rng = np.random.default_rng(1)
    model = ["Intercept", "Factor1", "InterceptNoHighVol", "InterceptNoCorrelated",
             "InterceptPopulationSampled", "InterceptMin", "InterceptMax"]  # fmt: skip
    final = {"noteId": np.arange(n, dtype=np.int64) + 10}
    for name in model:
        final[f"{p}Note{name}"] = rng.normal(size=n)
    final[f"{p}NumFinalRoundRatings"] = np.arange(n, dtype=np.float64)
    final["numRatings"] = np.arange(n, dtype=np.int64)
    before = {k: v.copy() for k, v in final.items()}
    drop = np.array([True, False, False, True, False, False])
    want = pd.DataFrame(final)  # the form it replaced: a frame's copy, then each column set
    for name in model:
        col = f"{p}Note{name}"
        want[col] = np.where(drop, np.nan, want[col].to_numpy(np.float64))
    got = drop_captured_out(final, drop, spec)
    pd.testing.assert_frame_equal(pd.DataFrame(got), want, check_exact=True)
    assert list(got) == list(final)  # the columns keep their order
    for name, values in before.items():  # the input is untouched
        np.testing.assert_array_equal(final[name], values)
    pd.testing.assert_frame_equal(pd.DataFrame(drop_captured_out(final, np.zeros(n, dtype=bool), spec)),
                                  pd.DataFrame(final))  # fmt: skip


def test_is_not_misleading_is_computed_once_and_read_only() -> None:
    rng = np.random.default_rng(0)
    m = _matrix(rng, 50, 3, 5)
    labels = ["NOT_MISLEADING", "MISINFORMED_OR_POTENTIALLY_MISLEADING", None]
    notes = pd.DataFrame({"classification": labels})
    inputs = ScoringInputs(m, notes, np.ones(50, bool), np.zeros(5, np.int32), np.zeros(5, bool))
    first = inputs.is_not_misleading
    np.testing.assert_array_equal(first, [True, False, False])
    assert inputs.is_not_misleading is first
    assert not first.flags.writeable


def test_a_run_freezes_the_older_objects_only_while_it_runs() -> None:
    seen: list[int] = []

    def job(fail: bool = False) -> str:
        seen.append(gc.get_freeze_count())
        if fail:
            raise RuntimeError("boom")
        return "done"

    wrapped = runner._older_objects_frozen(job)
    assert gc.get_freeze_count() == 0
    assert wrapped() == "done"
    assert seen[-1] > 0 and gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError):
        wrapped(fail=True)
    assert gc.get_freeze_count() == 0
    gc.freeze()  # a host that froze its own objects keeps them frozen, and no more
    try:
        held = gc.get_freeze_count()
        wrapped()
        # frozen objects that die leave the permanent generation, so the count may only fall
        assert 0 < seen[-1] <= held and 0 < gc.get_freeze_count() <= held
    finally:
        gc.unfreeze()


def _reused_fits_groupby(table, note_ids, partial, high_flipped=None):
    """``rescore.reused_fits`` as it was: one groupby group (and column reads) per scorer."""
    out = {}
    index = pd.Index(np.asarray(note_ids, dtype=np.int64))
    for name, rows in table.groupby("scorer", sort=True):
        pos = index.get_indexer(rows["noteId"].to_numpy(np.int64))
        ok = pos >= 0
        values = {}
        for f in RS.FIT_NAMES:
            if f not in rows.columns:
                continue
            v = np.full(index.shape[0], np.nan)
            v[pos[ok]] = rows[f].to_numpy(np.float64)[ok]
            values[f] = v
        out[str(name)] = RS.ReusedFits(partial, values, high_flipped)
    return out


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("optional", [True, False])
def test_reused_fits_equals_the_groupby_form(optional: bool, sparse: bool, monkeypatch) -> None:
    # ``sparse``: values kept compact (as at X's scale, where ``compact`` applies), read back the same
    if sparse:
        monkeypatch.setattr(compact_module, "MIN_ENTRIES", 0)
    rng = np.random.default_rng(4)
    n_rows = 400
    table = pd.DataFrame(
        {
            "scorer": rng.choice(
                np.array(["MFGroupScorer_2", "MFCoreScorer", "GaussianScorer"], dtype=object), n_rows
            ),
            "noteId": rng.integers(0, 90, n_rows).astype(np.int64),  # some absent from the notes below
        }
    )
    for f in RS.FIT_NAMES:
        if optional or f not in RS.OPTIONAL_FITS:
            table[f] = np.where(rng.random(n_rows) < 0.2, np.nan, rng.normal(size=n_rows))
    table.loc[[3, 7], "scorer"] = None  # no scorer: in no group
    note_ids = np.arange(0, 80, dtype=np.int64)
    partial = rng.random(80) < 0.5
    flipped = rng.random(30) < 0.3
    got = RS.reused_fits(table, note_ids, partial, high_flipped=flipped)
    want = _reused_fits_groupby(table, note_ids, partial, flipped)
    assert list(got) == list(want)
    for name in want:
        assert got[name].fixed is partial and got[name].high_flipped is flipped
        assert list(got[name].values) == list(want[name].values)
        for f, v in want[name].values.items():
            kept = got[name].values[f]
            assert isinstance(kept, pd.arrays.SparseArray) == (sparse and np.isnan(v).mean() >= 0.5)
            np.testing.assert_array_equal(np.asarray(kept), v)
            fresh = np.arange(v.shape[0], dtype=np.float64)
            np.testing.assert_array_equal(got[name].take(f, fresh), want[name].take(f, fresh))
    assert RS.reused_fits(table.iloc[:0], note_ids, partial) == {}


def test_merge_rows_casts_the_previous_rows_to_the_new_dtypes() -> None:
    new = pd.DataFrame({"noteId": np.array([3, 1], dtype=np.int64),
                        "x": np.array([0.5, 1.5], dtype=np.float32),
                        "n": pd.array([7, None], dtype="Int64")})  # fmt: skip
    previous = pd.DataFrame({"noteId": np.array([1, 2, 4], dtype=np.int64), "n": np.array([1.0, 2.0, 3.0]),
                             "x": np.array([9.0, 8.0, 7.0])})  # fmt: skip
    got = RS.merge_rows(new, previous, np.array([3], dtype=np.int64), universe=np.array([1, 2, 3]))
    assert list(got.columns) == ["noteId", "x", "n"] and (got.dtypes == new.dtypes).all()
    assert got["noteId"].tolist() == [1, 2, 3]
    np.testing.assert_array_equal(got["x"].to_numpy(), np.array([9.0, 8.0, 0.5], dtype=np.float32))
    assert got["n"].tolist() == [1, 2, 7]


def _rater_changes_reindex(previous: pd.DataFrame, current: pd.DataFrame):
    """``rescore.rater_changes`` as it was: a reindex of the previous table by id."""
    old = previous.drop_duplicates(subset=["raterParticipantId"]).set_index("raterParticipantId")
    old = old.reindex(current["raterParticipantId"].to_numpy(dtype=object))
    high = old["highVolume"].fillna(False).to_numpy(bool) != current["highVolume"].to_numpy(bool)
    group = old["group"].fillna(-2).to_numpy(np.int64) != current["group"].to_numpy(np.int64)
    return group, high & ~group


def test_rater_changes_equal_the_reindex_form() -> None:
    rng = np.random.default_rng(8)
    ids = np.array([f"r{i:05d}" for i in range(300)], dtype=object)
    previous = pd.DataFrame(
        {
            "raterParticipantId": np.r_[ids[:250], ids[10:20]],  # duplicates: the first row counts
            "highVolume": rng.random(260) < 0.3,
            "group": rng.integers(-1, 5, 260).astype(np.int32),
        }
    )
    current = pd.DataFrame(
        {
            "raterParticipantId": ids[rng.permutation(300)],  # 50 new raters, another order
            "highVolume": rng.random(300) < 0.3,
            "group": rng.integers(-1, 5, 300).astype(np.int32),
        }
    )
    for prev in (previous, previous.astype({"raterParticipantId": "str"})):
        got, want = RS.rater_changes(prev, current), _rater_changes_reindex(prev, current)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        assert got[0].any() and got[1].any() and not got[0].all()


def test_remap_index_of_text_ids_equals_the_pandas_lookup() -> None:
    from bridgewatch.scoring.phases import _index

    rng = np.random.default_rng(9)
    space = np.array(sorted(f"p{i:04d}" for i in rng.choice(5000, 400, replace=False)), dtype=object)
    ids = np.r_[space[rng.permutation(400)][:350], np.array(["new1", "new2"], dtype=object)]
    want = pd.Index(space).get_indexer(ids)
    got = _index(space, ids)
    assert got.dtype == np.int64 and (got < 0).sum() == 2
    np.testing.assert_array_equal(got, want)
    notes = np.arange(10, dtype=np.int64) * 3
    np.testing.assert_array_equal(_index(notes, np.array([3, 4, 27])), [1, -1, 9])  # int ids as before
    mixed = np.array([1, "p"], dtype=object)  # not all text: the pandas lookup
    np.testing.assert_array_equal(_index(space, mixed), pd.Index(space).get_indexer(mixed))
