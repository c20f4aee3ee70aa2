"""The parallel per-rating passes (``scoring.rating_pass``) give exactly what their numpy forms gave.

Each reference below is the numpy expression the kernel replaced; matrices have repeated (note,
rater) pairs, notes on both sides of the tombstone launch, NaN creation and status times, and the
comparisons are exact (bytes, not tolerances), in the serial forms and in the parallel ones on two threads.
"""

from __future__ import annotations

import numpy as np
import pytest

from bridgewatch import schema
from bridgewatch.io import matrix as M
from bridgewatch.schema import Status
from bridgewatch.scoring import helpfulness as H
from bridgewatch.scoring import rating_gather as RG
from bridgewatch.scoring import rating_pass as RP
from bridgewatch.scoring.config import HelpfulnessConfig

LAUNCH = schema.DELETED_NOTE_TOMBSTONES_LAUNCH_MILLIS
DAY = 86_400_000


def _matrix(rng: np.random.Generator, n_ratings: int, n_notes: int, n_raters: int) -> M.RatingMatrix:
    return M.build_rating_matrix(
        note=rng.integers(0, n_notes, n_ratings).astype(np.int32),
        rater=rng.integers(0, n_raters, n_ratings).astype(np.int32),
        value=rng.choice(np.array([0.0, 0.5, 1.0], dtype=np.float32), n_ratings),
        created_at=LAUNCH + rng.integers(-20, 20, n_ratings) * (DAY // 4),  # ties in time too
        tags=rng.integers(0, 2**20, n_ratings).astype(np.uint32),
        population_sampled=rng.random(n_ratings) < 0.1,
        note_ids=np.arange(n_notes, dtype=np.int64) * 7 + 3,
        rater_ids=np.array([f"r{i:05d}" for i in range(n_raters)], dtype=object),
    )


def _count_filter_numpy(m, keep, min_note, min_rater):
    keep = keep.copy()

    def notes_pass(k):
        return k & (np.bincount(m.note[k], minlength=m.n_notes) >= min_note)[m.note]

    keep = notes_pass(keep)
    if min_rater > 0:
        keep &= (np.bincount(m.rater[keep], minlength=m.n_raters) >= min_rater)[m.rater]
        keep = notes_pass(keep)
    return keep


def _valid_numpy(m, keep, created, latest, status, config):
    note = m.note
    rated_at = m.created_at.astype(np.float64)
    cand = keep & (rated_at - created[note] < config.valid_rating_window_millis)
    before = (rated_at < latest[note]) | np.isnan(latest)[note]
    new_note = (created >= LAUNCH)[note]
    cand_new = cand & new_note & before
    cand_old = cand & ~new_note & ~np.isnan(created)[note]
    if cand_old.any():
        idx = np.flatnonzero(cand_old)
        idx = idx[np.lexsort((m.created_at[idx], note[idx]))]
        first = np.r_[True, note[idx][1:] != note[idx][:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(idx.shape[0]), 0))
        cand_old = np.zeros_like(cand_old)
        cand_old[idx[np.arange(idx.shape[0]) - start < config.legacy_first_n_ratings]] = True
    st = status[note]
    crh, crnh = st == Status.CRH, st == Status.CRNH
    helpful, not_helpful = m.value == 1.0, m.value == 0.0
    valid = (cand_new | cand_old) & (crh | crnh) & (helpful | not_helpful)
    sh, snh = valid & helpful & crh, valid & not_helpful & crnh
    return valid, sh, snh, valid & not_helpful & crh, valid & helpful & crnh


def _penalty_numpy(m, keep, score, config):
    h = score[m.note]
    with np.errstate(invalid="ignore"):
        hit = keep & (m.value == 1.0) & (h >= config.harassment_min_score)
    per = np.full(m.n_ratings, config.harassment_penalty)
    if config.multiply_penalty_by_score:
        per = per * h / config.harassment_min_score
    return np.bincount(m.rater[hit], weights=per[hit], minlength=m.n_raters)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_counts_and_count_filter_match_bincount(pass_threads, seed: int, share: float):
    rng = np.random.default_rng(seed)
    m = _matrix(rng, 4000, 60, 300)
    keep = rng.random(m.n_ratings) < share
    np.testing.assert_array_equal(RP.note_counts(m, keep), np.bincount(m.note[keep], minlength=m.n_notes))
    np.testing.assert_array_equal(RP.rater_counts(m, keep), np.bincount(m.rater[keep], minlength=m.n_raters))
    for rater_share in (0.0, 0.4, 1.0):
        raters = rng.random(m.n_raters) < rater_share
        want = np.bincount(m.note[keep & raters[m.rater]], minlength=m.n_notes)
        np.testing.assert_array_equal(RP.note_counts_by(m, keep, raters), want, err_msg=str(rater_share))
    for mins in ((5, 10), (5, 0), (70, 10), (0, 20)):
        got = RP.count_filter(m, keep, *mins)
        np.testing.assert_array_equal(got, _count_filter_numpy(m, keep, *mins), err_msg=str(mins))
    assert not np.shares_memory(RP.count_filter(m, keep, 0, 0), keep)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("share", [0.0, 0.3, 1.0])
def test_final_round_is_the_note_filter_then_the_raters(pass_threads, seed: int, share: float):
    rng = np.random.default_rng(seed)
    m = _matrix(rng, 4000, 60, 300)
    keep = rng.random(m.n_ratings) < share
    for rater_share in (0.0, 0.4, 1.0):
        raters = rng.random(m.n_raters) < rater_share
        for min_note in (0, 5, 40, 500):
            got = RP.final_round(m, keep, min_note, raters)
            want = _count_filter_numpy(m, keep, min_note, 0) & raters[m.rater]
            np.testing.assert_array_equal(got, want, err_msg=f"{rater_share} {min_note}")


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("share", [0.0, 0.02, 0.6, 1.0])
def test_compact_problem_matches_the_numpy_build(pass_threads, seed: int, share: float):
    rng = np.random.default_rng(seed)
    m = _matrix(rng, 3000, 40, 150)
    keep = rng.random(m.n_ratings) < share
    plain = RG.compact_problem(m, keep)
    full = np.flatnonzero(keep)
    note_present = np.bincount(m.note[full], minlength=m.n_notes) > 0
    rater_present = np.bincount(m.rater[full], minlength=m.n_raters) > 0
    note = (np.cumsum(note_present) - 1)[m.note[full]].astype(np.int32)
    rater = (np.cumsum(rater_present) - 1)[m.rater[full]].astype(np.int32)
    want = {
        "note": note,
        "rater": rater,
        "value": m.value[full].astype(np.float64),
        "note_indptr": M.counts_indptr(note, int(note_present.sum())),
        "by_rater": M.kept_order(m.by_rater, keep),
        "rater_indptr": M.counts_indptr(rater, int(rater_present.sum())),
        "note_full": np.flatnonzero(note_present).astype(np.int64),
        "rater_full": np.flatnonzero(rater_present).astype(np.int64),
        "rating_full": full.astype(M.index_dtype(m.n_ratings)),
    }
    shape = RG.problem_shape(m, keep)
    for name, a in shape.items():  # the per-note and per-rater arrays alone, as MFProblem holds them
        assert a.dtype == want[name].dtype, name
        np.testing.assert_array_equal(a, want[name], err_msg=name)
    for got in (plain, RG.compact_problem(m, keep, shape)):
        assert set(got) == set(want)
        for name, a in want.items():
            assert got[name].dtype == a.dtype, name
            np.testing.assert_array_equal(got[name], a, err_msg=name)


@pytest.mark.parametrize("seed", range(5))
def test_valid_ratings_and_their_rater_counts_match_the_numpy_form(pass_threads, seed: int):
    rng = np.random.default_rng(seed)
    m = _matrix(rng, 5000, 50, 120)
    config = HelpfulnessConfig()
    keep = rng.random(m.n_ratings) < 0.8
    created = LAUNCH + rng.integers(-10, 10, m.n_notes).astype(np.float64) * (DAY // 2)
    created[rng.random(m.n_notes) < 0.1] = np.nan
    latest = created + rng.integers(0, 4, m.n_notes) * (DAY // 3)
    latest[rng.random(m.n_notes) < 0.3] = np.nan
    status = rng.choice(np.array([Status.CRH, Status.CRNH, Status.NMR], dtype=np.int8), m.n_notes)
    got = H.valid_ratings(m, keep, created, latest, status, config)
    valid, sh, snh, fh, fnh = _valid_numpy(m, keep, created, latest, status, config)
    assert valid.any() and (created < LAUNCH).any()
    for name, want in (("valid", valid), ("success_helpful", sh), ("success_not_helpful", snh),
                       ("fail_helpful", fh), ("fail_not_helpful", fnh), ("agrees", sh | snh)):  # fmt: skip
        np.testing.assert_array_equal(getattr(got, name), want, err_msg=name)
    assert got.code.dtype == np.int8 and got.code.nbytes == m.n_ratings  # one byte a rating
    counts = got.rater_counts(m)
    for row, mask in enumerate((sh, snh, fh, fnh)):
        np.testing.assert_array_equal(counts[row], np.bincount(m.rater[mask], minlength=m.n_raters))


@pytest.mark.parametrize("multiply", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_harassment_penalty_is_bincount_to_the_bit(pass_threads, seed: int, multiply: bool):
    rng = np.random.default_rng(seed)
    m = _matrix(rng, 6000, 40, 90)
    config = HelpfulnessConfig(multiply_penalty_by_score=multiply)
    keep = rng.random(m.n_ratings) < 0.7
    score = rng.normal(2.0, 1.5, m.n_notes)
    score[rng.random(m.n_notes) < 0.2] = np.nan
    got = H.harassment_penalty(m, keep, score, config)
    want = _penalty_numpy(m, keep, score, config)
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


@pytest.mark.parametrize("share", [0.0, 0.4, 1.0])
def test_note_rater_tags_is_the_three_boolean_selections(pass_threads, share: float):
    rng = np.random.default_rng(7)
    m = _matrix(rng, 5000, 30, 100)
    keep = rng.random(m.n_ratings) < share
    got = RG.note_rater_tags(m, keep)
    for a, want in zip(got, (m.note[keep], m.rater[keep], m.tags[keep]), strict=True):
        assert a.dtype == want.dtype
        np.testing.assert_array_equal(a, want)


@pytest.mark.parametrize("seed", range(4))
def test_participant_ids_are_the_string_union_and_its_search(seed: int):
    rng = np.random.default_rng(seed)
    m = _matrix(rng, 3000, 30, 200)
    for share in (0.0, 0.3, 1.0):
        has_valid = rng.random(m.n_raters) < share
        strangers = np.array(["nan", "zz-long-author-id", "a0", "a0", np.nan], dtype=object)  # never rated
        pool = np.concatenate([m.rater_ids[rng.integers(0, m.n_raters, 20)], strangers])
        authors = pool[rng.random(pool.shape[0]) < 0.6]
        ids, ridx, arow = H.participant_ids(m, has_valid, authors)
        as_text = np.array([str(a) for a in authors])  # how the string form read a missing id
        want = np.union1d(m.rater_ids[has_valid].astype(str), as_text)
        assert ids.dtype == object
        np.testing.assert_array_equal(ids.astype(str), want)
        np.testing.assert_array_equal(ridx, np.searchsorted(want, m.rater_ids[has_valid].astype(str)))
        np.testing.assert_array_equal(arow, np.searchsorted(want, as_text))


def _high_volume_numpy(m, keep, quantile, windows_days, min_notes):
    """``preprocess.high_volume_raters`` as it was: gathered columns, masks and a note sort."""
    keep = np.ones(m.n_ratings, dtype=bool) if keep is None else keep
    flagged = np.zeros(m.n_raters, dtype=bool)
    if keep.sum() == 0 or np.unique(m.note[keep]).shape[0] < min_notes:
        return flagged
    created, rater = m.created_at[keep], m.rater[keep]
    newest = created.max()
    for days in windows_days:
        counts = np.bincount(rater[created > newest - days * DAY], minlength=m.n_raters)
        active = counts > 0
        if active.any():
            flagged |= active & (counts > np.quantile(counts[active].astype(np.float64), quantile))
    return flagged


@pytest.mark.parametrize("seed", range(3))
def test_counts_since_a_time_and_the_newest_kept_rating_are_the_gathered_forms(pass_threads, seed: int):
    from bridgewatch.scoring import preprocess as P

    rng = np.random.default_rng(seed)
    m = _matrix(rng, 8000, 300, 150)
    newest_all = int(m.created_at.max())
    for keep in (None, rng.random(m.n_ratings) < 0.6, np.zeros(m.n_ratings, dtype=bool)):
        k = np.ones(m.n_ratings, dtype=bool) if keep is None else keep
        assert RP.newest_kept(m, keep) == (int(m.created_at[k].max()) if k.any() else None)
        cutoffs = np.array([newest_all - 3 * DAY, newest_all - 30 * DAY, LAUNCH], dtype=np.int64)
        got = RP.rater_counts_since(m, keep, cutoffs)
        assert got.shape == (3, m.n_raters) and got.dtype == np.int64
        for row, cut in zip(got, cutoffs, strict=True):
            want = np.bincount(m.rater[k & (m.created_at > cut)], minlength=m.n_raters)
            np.testing.assert_array_equal(row, want)
        for q, days, min_notes in ((0.9, (2, 5), 200), (0.5, (1,), 10), (0.9, (7,), 301)):
            np.testing.assert_array_equal(
                P.high_volume_raters(m, keep, q, days, min_notes),
                _high_volume_numpy(m, keep, q, days, min_notes),
            )
    assert P.high_volume_raters(m, None, 0.5, (5,), 10).any()  # the comparisons saw flags


@pytest.mark.parametrize("masks", [(), ("rating",), ("rating", "rater", "note")])
def test_rater_side_counts_are_the_gathered_bincounts(masks):
    """Ratings per note by raters of each factor sign (topic confidence, population-sampled
    counts): the numpy form's counts, NaN factors on neither side, -0.0 on the ≥ 0 side."""
    rng = np.random.default_rng(8)
    m = _matrix(rng, 20_000, 300, 900)
    factor = rng.normal(0, 1, m.n_raters).astype(np.float32)
    factor[rng.random(m.n_raters) < 0.1] = np.nan
    factor[:5] = -0.0
    rating_ok = m.population_sampled if "rating" in masks else np.ones(m.n_ratings, bool)
    rater_ok = rng.random(m.n_raters) < 0.8 if "rater" in masks else np.ones(m.n_raters, bool)
    note_ok = rng.random(m.n_notes) < 0.7 if "note" in masks else np.ones(m.n_notes, bool)
    kw = {"rating_ok": rating_ok if "rating" in masks else None,
          "rater_ok": rater_ok if "rater" in masks else None,
          "note_ok": note_ok if "note" in masks else None}  # fmt: skip
    neg, pos = RP.rater_side_counts(m.note, m.rater, factor, m.n_notes, **kw)
    ok = rating_ok & rater_ok[m.rater] & note_ok[m.note]
    f = factor[m.rater]
    assert neg.tolist() == np.bincount(m.note[ok & (f < 0)], minlength=m.n_notes).tolist()
    assert pos.tolist() == np.bincount(m.note[ok & (f >= 0)], minlength=m.n_notes).tolist()
    assert 0 < pos.sum() + neg.sum() < ok.sum()  # NaN factors counted nowhere


def test_any_rater_in_is_the_gathered_any():
    rng = np.random.default_rng(9)
    m = _matrix(rng, 5_000, 100, 400)
    keep = rng.random(m.n_ratings) < 0.3
    for share in (0.0, 0.001, 0.2):
        raters = rng.random(m.n_raters) < share
        assert RP.any_rater_in(m.rater, keep, raters) == bool(raters[m.rater[keep]].any())
    raters = np.zeros(m.n_raters, bool)
    raters[m.rater[0]] = True  # a rater whose every rating lies outside the selection
    keep &= m.rater != m.rater[0]
    assert not RP.any_rater_in(m.rater, keep, raters)
    assert RP.any_rater_in(m.rater, np.ones(m.n_ratings, bool), raters)
