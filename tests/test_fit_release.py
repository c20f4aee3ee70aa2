"""Every fit hands back the pages of the columns its epochs do not read before they start, and
the passes that read ``created_at`` hand it back once read.

At X's scale ``created_at`` and ``tags`` are 2.3 GiB; the harassment labels and the low-diligence
targets read them just before their fits, which would leave them resident through hundreds of
epochs. The check reads the process's own page table (``/proc/self/pagemap``'s present bit) for
the columns of a matrix mapped read-only from ``.npy`` files, as the columnar cache maps them, at
the moment the fit's epochs begin.
"""

from __future__ import annotations

import mmap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bridgewatch import schema
from bridgewatch.io.matrix import RATING_COLUMNS, UNFITTED_COLUMNS, RatingMatrix, build_rating_matrix
from bridgewatch.scoring import diligence as dl
from bridgewatch.scoring import harassment as hr
from bridgewatch.scoring import mf


def mapped_pages(arr: np.ndarray) -> int:
    """How many of ``arr``'s pages this process has mapped now (present bit, bit 63)."""
    page = mmap.PAGESIZE
    first = arr.ctypes.data // page
    last = (arr.ctypes.data + arr.nbytes - 1) // page
    with open("/proc/self/pagemap", "rb") as fh:
        fh.seek(first * 8)
        raw = np.frombuffer(fh.read((last - first + 1) * 8), dtype=np.uint64)
    return int(np.count_nonzero(raw >> np.uint64(63)))


def _matrix(tmp_path: Path, seed: int = 0, n_ratings: int = 40_000) -> RatingMatrix:
    """A community whose per-rating columns are read-only file mappings, each many pages long."""
    rng = np.random.default_rng(seed)
    n_notes, n_raters = 400, 600
    abuse = 1 << schema.TAG_BIT[hr.HARASSMENT_TAG]
    dil = sum(1 << schema.TAG_BIT[t] for t in dl.DILIGENCE_TAGS)
    tags = np.where(rng.random(n_ratings) < 0.15, abuse, 0) | np.where(rng.random(n_ratings) < 0.2, dil, 0)
    m = build_rating_matrix(
        note=rng.integers(0, n_notes, n_ratings).astype(np.int32),
        rater=rng.integers(0, n_raters, n_ratings).astype(np.int32),
        value=rng.choice(np.array([0.0, 0.5, 1.0], dtype=np.float32), n_ratings),
        created_at=hr.LAST_RATING_TAGS_CHANGE_MILLIS + rng.integers(0, 300, n_ratings) * 86_400_000,
        tags=tags.astype(np.uint32),
        population_sampled=np.zeros(n_ratings, dtype=bool),
        note_ids=np.arange(n_notes, dtype=np.int64) * 7 + 3,
        rater_ids=np.array([f"r{i:05d}" for i in range(n_raters)], dtype=object),
    )
    columns = {}
    for name in RATING_COLUMNS:
        np.save(tmp_path / f"{name}.npy", getattr(m, name))
        columns[name] = np.load(tmp_path / f"{name}.npy", mmap_mode="r")
    return replace(m, **columns)


def _watch(monkeypatch, module, name: str, m: RatingMatrix) -> list[dict[str, int]]:
    """Record the mapped pages of every per-rating column each time ``module.name`` is called."""
    seen: list[dict[str, int]] = []
    real = getattr(module, name)

    def watched(*args, **kwargs):
        seen.append({col: mapped_pages(getattr(m, col)) for col in RATING_COLUMNS})
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, watched)
    return seen


def _mapped_community(tmp_path: Path):
    """A tiny simulated community read through the columnar cache: its columns are mapped."""
    from bridgewatch.io import read_dataset
    from bridgewatch.sim.config import config_for_scale
    from bridgewatch.sim.simulate import simulate

    data = tmp_path / "data"
    simulate(config_for_scale("tiny", seed=3), data)
    read_dataset(data, cache_dir=tmp_path / "cache")  # writes the entry
    return read_dataset(data, cache_dir=tmp_path / "cache")  # maps it


def _score_serially(dataset) -> None:
    """A whole run with one thread: scorers one at a time, so page counts are each scorer's."""
    import numba

    from bridgewatch.scoring import pipeline

    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        pipeline.score_dataset(dataset, epoch_millis=1795305600000)
    finally:
        numba.set_num_threads(threads)


def _touch(m: RatingMatrix) -> None:
    for name in RATING_COLUMNS:
        int(np.asarray(getattr(m, name)).view(np.uint8).sum())  # every page mapped
        assert mapped_pages(getattr(m, name)) > 0, name


def _check(seen: list[dict[str, int]], fits: int, *, reads_columns: bool = True) -> None:
    """``fits`` fits started, without the columns no fit reads; with the others (``note``) only
    when the fit's epochs read them (``reads_columns``), else without any column."""
    assert len(seen) == fits
    for pages in seen:
        for name in UNFITTED_COLUMNS if reads_columns else RATING_COLUMNS:
            assert pages[name] == 0, (name, pages)
        if reads_columns:
            assert pages["note"] > 0  # what a fit still reads is left alone


def test_harassment_fit_starts_without_the_labels_columns(tmp_path: Path, monkeypatch) -> None:
    m = _matrix(tmp_path)
    _touch(m)
    seen = _watch(monkeypatch, hr, "fit_adam_signed", m)
    counted = _watch(monkeypatch, hr.RP, "count_filter", m)
    out = hr.fit_tag_consensus_kept(m, np.ones(m.n_ratings, dtype=bool))
    assert np.isfinite(out.note_intercept).any()
    _check(seen, 1)
    # created_at goes right after the labels read it: the count filter and layout, where the
    # set-up peaks, run without it
    assert [c["created_at"] for c in counted] == [0] and counted[0]["tags"] > 0


def test_validity_pass_hands_back_the_rating_times(tmp_path: Path) -> None:
    from bridgewatch.schema import Status
    from bridgewatch.scoring import helpfulness as H
    from bridgewatch.scoring.config import HelpfulnessConfig

    m = _matrix(tmp_path, seed=2)
    _touch(m)
    created = np.full(m.n_notes, float(hr.LAST_RATING_TAGS_CHANGE_MILLIS))
    status = np.full(m.n_notes, Status.CRH, dtype=np.int8)
    valid = H.valid_ratings(m, np.ones(m.n_ratings, dtype=bool), created, np.full(m.n_notes, np.nan), status,
                            HelpfulnessConfig())  # fmt: skip
    assert valid.valid.any()
    assert mapped_pages(m.created_at) == 0 and mapped_pages(m.value) > 0


def test_low_diligence_fits_start_without_any_column(tmp_path: Path, monkeypatch) -> None:
    m = _matrix(tmp_path, seed=1)
    _touch(m)
    seen = _watch(monkeypatch, dl, "fit_adam_signed", m)
    keep = np.ones(m.n_ratings, dtype=bool)
    pre = dl.fit_prescoring_kept(m, keep, np.zeros(m.n_raters))
    # the epochs read the layout's copies only: no column, round 3 after its weights read the
    # notes, raters and tags again either
    _check(seen, 3, reads_columns=False)
    seen.clear()
    _touch(m)
    dl.fit_final_kept(m, keep, pre)
    _check(seen, 2, reads_columns=False)


def test_low_diligence_gather_runs_with_only_the_columns_it_reads(tmp_path: Path, monkeypatch) -> None:
    """The Gaussian scorers' final fits peak in this gather: the raters, values, times and
    samples that the passes before it left resident are handed back before it allocates."""
    m = _matrix(tmp_path, seed=3)
    seen = _watch(monkeypatch, dl, "kept_by_rater", m)
    keep = np.ones(m.n_ratings, dtype=bool)
    pre = dl.fit_prescoring_kept(m, keep, np.zeros(m.n_raters))
    seen.clear()
    _touch(m)
    dl.fit_final_kept(m, keep, pre)
    assert len(seen) == 1
    for name in RATING_COLUMNS:
        assert (seen[0][name] > 0) == (name in ("by_rater", "note", "tags")), (name, seen[0])


def test_gaussian_passes_hand_back_the_raters_and_values_they_walk(tmp_path: Path, monkeypatch) -> None:
    """The kernel table is built without the rater column resident, and the walk hands the raters
    and values back a block of notes at a time: same scores as from arrays held in memory."""
    from bridgewatch.scoring import gaussian as G
    from bridgewatch.scoring import gaussian_walk as GW

    m = _matrix(tmp_path, seed=4)
    rng = np.random.default_rng(4)
    factor = rng.normal(0.0, 0.5, m.n_raters)
    author = np.where(np.arange(m.n_notes) % 3 == 0, -1, np.arange(m.n_notes) % m.n_raters)
    select = rng.random(m.n_ratings) < 0.8
    monkeypatch.setattr(GW, "_SCORE_NOTES", 64)  # several blocks
    tables: list[int] = []
    table = G._kernel_table

    def spy(*args, **kwargs):
        tables.append(mapped_pages(m.rater))
        return table(*args, **kwargs)

    monkeypatch.setattr(G, "_kernel_table", spy)
    held = GW.gaussian_scores(m.note_indptr, select, np.array(m.rater), np.array(m.value), factor, author)
    _touch(m)
    mapped = GW.gaussian_scores(m.note_indptr, select, m.rater, m.value, factor, author)
    assert tables[2:] == [0, 0]  # (the first two: the arrays held in memory)
    assert mapped_pages(m.rater) == 0 and mapped_pages(m.value) == 0
    assert mapped_pages(m.note) > 0  # not read by the walk: left alone
    for key in held:
        np.testing.assert_array_equal(mapped[key], held[key])
    assert np.isfinite(mapped["intercept"]).any()


def test_release_range_drops_only_the_pages_inside_the_range(tmp_path: Path) -> None:
    from bridgewatch.io.matrix import release_range

    np.save(tmp_path / "col.npy", np.arange(200_000, dtype=np.int64))  # ~390 pages
    col = np.load(tmp_path / "col.npy", mmap_mode="r")
    total = int(col.sum())
    all_pages = mapped_pages(col)
    per_page = mmap.PAGESIZE // col.itemsize
    dropped = release_range(col, 10_000, 110_000)
    assert dropped % mmap.PAGESIZE == 0 and 0.95 * 100_000 * 8 <= dropped <= 100_000 * 8
    assert mapped_pages(col) == all_pages - dropped // mmap.PAGESIZE
    assert mapped_pages(col[: 10_000 - per_page]) > 0 and mapped_pages(col[110_000 + per_page :]) > 0
    assert mapped_pages(col[10_000 + per_page : 110_000 - per_page]) == 0
    assert int(col.sum()) == total  # read back as it was
    assert (
        release_range(col, 5, 6) == 0 and release_range(np.arange(9), 0, 9) == 0
    )  # part of a page; in memory


@pytest.mark.parametrize("seed", [0, 1])
def test_factorization_problem_leaves_the_unfitted_columns_unmapped(tmp_path: Path, seed: int) -> None:
    m = _matrix(tmp_path, seed=seed)
    _touch(m)
    mf.build_problem(m, np.ones(m.n_ratings, dtype=bool))
    for name in UNFITTED_COLUMNS:
        assert mapped_pages(getattr(m, name)) == 0, name
    assert mapped_pages(m.note) > 0


def test_pss_co_selection_runs_without_the_note_and_value_pages(tmp_path: Path, monkeypatch) -> None:
    """PSS peaks in its co-selection step, which reads raters and times only: the note and value
    columns (read by coordination and the author pairs before it) are handed back first."""
    import pandas as pd

    from bridgewatch.integrity import pairs
    from bridgewatch.integrity.adapters import detect_integrity

    m = _matrix(tmp_path)
    n = m.n_notes
    notes = pd.DataFrame(
        {
            "noteId": m.note_ids,
            "noteAuthorParticipantId": m.rater_ids[np.arange(n) % m.n_raters],
            "createdAtMillis": np.full(n, hr.LAST_RATING_TAGS_CHANGE_MILLIS, dtype=np.int64),
            "tweetId": np.arange(n, dtype=np.int64) // 3 + 1,
            "classification": schema.MISLEADING,
        }
    )
    seen: list[tuple[int, int]] = []
    gather = pairs.gather_notes_by_tweet

    def spy(*args, **kwargs):
        seen.append((mapped_pages(m.note), mapped_pages(m.value)))
        return gather(*args, **kwargs)

    monkeypatch.setattr(pairs, "gather_notes_by_tweet", spy)
    m.note.sum(), m.value.sum()  # resident, as coordination leaves them
    assert mapped_pages(m.note) > 0 and mapped_pages(m.value) > 0
    detect_integrity(m, notes)
    assert seen == [(0, 0)]


def test_a_streamed_pass_never_holds_its_columns_whole(tmp_path: Path) -> None:
    """``matrix.streamed``: the chunks already read are handed back while the pass goes on, every
    page once it ends; an array held in memory is left alone."""
    from bridgewatch.io.matrix import streamed

    np.save(tmp_path / "col.npy", np.arange(200_000, dtype=np.int64))
    col = np.load(tmp_path / "col.npy", mmap_mode="r")
    pages = col.nbytes // mmap.PAGESIZE
    total, seen = 0, []
    for lo, hi in streamed([col], col.shape[0], chunk=50_000):
        # at most the chunk before (the kernel maps a few pages around each fault) and this one
        assert mapped_pages(col) <= pages // 2
        total += int(col[lo:hi].sum())
        seen.append((lo, hi))
    assert seen == [(0, 50_000), (50_000, 100_000), (100_000, 150_000), (150_000, 200_000)]
    assert total == int(np.arange(200_000).sum()) and mapped_pages(col) == 0
    held = np.arange(10)
    assert [r for r in streamed([held], 10, chunk=4)] == [(0, 4), (4, 8), (8, 10)]
    assert list(streamed([held], 0)) == []


def test_the_contributor_passes_hand_back_what_they_read_last(tmp_path: Path) -> None:
    """Contributor scoring's window counts read the notes, raters and times for the last time and
    the tag counts the notes and tags: each hands them back, a chunk at a time (at X's scale 3.1
    and 1.5 GiB that sat on top of contributor scoring); the values stay."""
    from bridgewatch.scoring import contributor as ct
    from bridgewatch.scoring.explanation import tag_counts

    m = _matrix(tmp_path, seed=3)
    _touch(m)
    counts = tag_counts(m.note, m.tags, m.n_notes, schema.NOT_HELPFUL_TAGS)
    assert counts.sum() > 0
    assert mapped_pages(m.note) == 0 and mapped_pages(m.tags) == 0 and mapped_pages(m.value) > 0
    _touch(m)
    nan = np.full(m.n_notes, np.nan)
    got = ct._rating_window_counts(
        m.note, m.rater, m.created_at, np.arange(m.n_raters), nan, nan, np.zeros(m.n_notes, dtype=bool),
        1e18, 0.0, m.n_raters, chunk=8192,
    )  # fmt: skip
    assert np.array_equal(got[3], np.bincount(m.note, minlength=m.n_notes))  # every rating is recent
    assert all(mapped_pages(getattr(m, c)) == 0 for c in ("rater", "created_at"))
    assert mapped_pages(m.value) > 0


def test_the_validity_pass_gives_the_same_codes_a_block_of_notes_at_a_time(
    tmp_path: Path, monkeypatch
) -> None:
    """The validity codes do not depend on how the notes are blocked (each note's outcome reads
    its own ratings only), old notes' first-n rule and notes without ratings included."""
    from bridgewatch.schema import Status
    from bridgewatch.scoring import helpfulness_pass as HP

    m = _matrix(tmp_path, seed=4)
    rng = np.random.default_rng(4)
    launch = float(hr.LAST_RATING_TAGS_CHANGE_MILLIS) + 30 * 86_400_000
    created = launch + rng.integers(-60, 60, m.n_notes) * 86_400_000.0  # old and new notes
    latest = np.where(rng.random(m.n_notes) < 0.5, created + 5 * 86_400_000.0, np.nan)
    status = rng.choice(np.array([Status.CRH, Status.CRNH, Status.NMR], dtype=np.int8), m.n_notes)
    keep = rng.random(m.n_ratings) < 0.9

    def codes() -> np.ndarray:
        return HP.valid_rating_codes(
            m, keep, created, latest, status, window=200 * 86_400_000.0, launch=launch, first_n=5,
            crh=int(Status.CRH), crnh=int(Status.CRNH),
        )  # fmt: skip

    whole = codes()
    assert len(np.unique(whole)) == 5  # every outcome occurs
    monkeypatch.setattr(HP, "VALID_BLOCK", 997)
    assert np.array_equal(codes(), whole)


def test_the_note_filters_and_side_counts_hand_back_what_they_read(tmp_path: Path, monkeypatch) -> None:
    """The tag and incorrect filters' passes and the side counts read the matrix a chunk at a
    time and hand each chunk back: after them no page of the columns they read is mapped (they
    sat under every later step of a scorer, where the Gaussian scorers peaked), and the chunked
    sums have the bits of the whole-array pass on columns held in memory."""
    from bridgewatch.io import matrix as M
    from bridgewatch.scoring import incorrect_filter as inc
    from bridgewatch.scoring import rules
    from bridgewatch.scoring import tag_filter as tf

    m = _matrix(tmp_path, seed=5)
    held = replace(m, **{name: np.array(getattr(m, name)) for name in RATING_COLUMNS})
    rng = np.random.default_rng(5)
    keep = rng.random(m.n_ratings) < 0.7
    nf = rng.normal(0.0, 0.5, m.n_notes)
    nf[::17] = np.nan  # notes without a factor: their ratings count nowhere
    rf = rng.normal(0.0, 0.5, m.n_raters)

    def passes(mat: RatingMatrix) -> list[np.ndarray]:
        num, total = inc.rater_incorrect_totals_kept(mat, keep)
        agg = tf.note_tag_aggregates_kept(mat, keep, nf, rf)
        ia = inc.incorrect_aggregates_kept(mat, keep, nf, rf, num, total)
        sides = rules.note_counts_by_rater_sign_kept(mat.note, mat.rater, mat.value, keep, rf, mat.n_notes)
        return [num, total, agg.adjusted, agg.rating_weight, ia.incorrect, ia.voters, ia.p_incorrect,
                sides.neg_mean_helpful, sides.pos_mean_helpful, sides.min_sign_count]  # fmt: skip

    whole = passes(held)
    for module in (inc, tf, rules):  # many chunks (a whole pass is one chunk at this size)
        monkeypatch.setattr(
            module, "streamed", lambda cols, n, chunk=0: M.streamed(cols, n, 3_001), raising=False
        )
    _touch(m)
    chunked = passes(m)
    for name in ("note", "rater", "tags", "value"):
        assert mapped_pages(getattr(m, name)) == 0, name
    assert mapped_pages(m.created_at) > 0  # not read by them: left alone
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(whole[2]).any() and (whole[5] > 0).any()


def test_gaussian_passes_after_the_refit_run_without_the_note_column(tmp_path: Path, monkeypatch) -> None:
    """A Gaussian scorer's frozen-rater MF refit reads the notes, raters and values whole; the
    kernel passes after it read no note, and the raters and values a block at a time, so the
    refit hands the columns back: on a community mapped from the columnar cache, every pass
    after a scorer's first starts with no page of ``note`` mapped."""

    from bridgewatch.scoring import gaussian_run as GR

    dataset = _mapped_community(tmp_path)
    assert not dataset.ratings.note.flags.writeable
    events: list[tuple[str, int]] = []  # ("run" | "refit" | "pass", note pages mapped then)

    def spy(name: str, real):
        def watched(first, *args, **kwargs):
            # (``score_notes`` takes the refit's problem, the others the scoring inputs)
            events.append((name, 0 if name == "refit" else mapped_pages(first.matrix.note)))
            return real(first, *args, **kwargs)

        return watched

    monkeypatch.setattr(GR, "run_gaussian", spy("run", GR.run_gaussian))
    monkeypatch.setattr(GR, "gaussian_intercepts", spy("pass", GR.gaussian_intercepts))
    monkeypatch.setattr(GR, "score_notes", spy("refit", GR.score_notes))
    _score_serially(dataset)
    after_refit, before_refit, refitted = [], [], False
    for name, pages in events:
        if name == "run":
            refitted = False
        elif name == "refit":
            refitted = True
        else:
            (after_refit if refitted else before_refit).append(pages)
    assert len(after_refit) >= 2 and any(pages > 0 for pages in before_refit), events
    assert all(pages == 0 for pages in after_refit), events


def test_final_scoring_hands_back_the_columns_its_fits_read(tmp_path: Path, monkeypatch) -> None:
    """Each MF scorer's final fits read the notes, raters and values whole, and its final-round
    counts read the raters: on a community mapped from the columnar cache, once a scorer's final
    columns are built no page of those columns is left mapped (a normalized-loss scorer, with no
    low-diligence fit after them, left them to the next scorer)."""

    from bridgewatch.scoring import scorer_run as SR

    dataset = _mapped_community(tmp_path)
    m = dataset.ratings
    assert not m.note.flags.writeable
    seen: list[tuple[str, dict[str, int]]] = []
    real = SR.final_columns

    def watched(inputs, spec, *args, **kwargs):
        out = real(inputs, spec, *args, **kwargs)
        # (the dataset's mapped matrix: a group scorer's own is an in-memory subset of it)
        seen.append((spec.name, {c: mapped_pages(getattr(m, c)) for c in ("note", "rater", "value")}))
        return out

    monkeypatch.setattr(SR, "final_columns", watched)
    _score_serially(dataset)
    assert len(seen) >= 4, seen
    assert all(not any(pages.values()) for _, pages in seen), seen
