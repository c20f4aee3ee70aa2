"""The one-pass tokenizer (fast path) agrees with the careful pyarrow path, its slow twin:
same arrays on valid files, same (line, field) on bad ones, and a fallback where it is unsure."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridgewatch import schema
from bridgewatch.errors import DataFormatError
from bridgewatch.io import fastratings, formats, ratings, scan, segments
from bridgewatch.io.dataset import assemble_matrix
from test_io_helpers import T0, rating_row, tsv

_FIELDS = ("note", "rater", "value", "created_at", "tags", "population_sampled", "note_ids", "rater_ids")


def _layouts(paths: list[Path]) -> list[scan.Layout]:
    return [
        scan.resolve_layout(p, scan.read_header(p), formats.RATINGS, [], formats.RATINGS_UNUSED)
        for p in paths
    ]


def _fast(paths: list[Path], **kw: int) -> ratings.RawRatings:
    layouts = _layouts(paths)
    spans = [ratings.FileSpan(layout, 0) for layout in layouts]
    out, dropped, note_ids, rater_ids = fastratings.read_tsv_ratings(layouts, spans, **kw)
    for i in range(1, len(spans)):
        spans[i].first = spans[i - 1].first + spans[i - 1].count
    return ratings.RawRatings(*out, note_ids=note_ids, rater_ids=rater_ids, spans=spans, dropped=dropped)


def _careful(paths: list[Path]) -> ratings.RawRatings:
    return ratings._read_careful(_layouts(paths), None, 0)


def _same(a: ratings.RawRatings, b: ratings.RawRatings) -> None:
    """Equal after assembly (which consumes both)."""
    assert a.dropped.tolist() == b.dropped.tolist()
    assert [s.count for s in a.spans] == [s.count for s in b.spans]
    ma = assemble_matrix(a, a.note_ids, np.empty(0, np.int64), [])
    mb = assemble_matrix(b, b.note_ids, np.empty(0, np.int64), [])
    for f in _FIELDS:
        assert np.array_equal(getattr(ma, f), getattr(mb, f)), f


def _error(read, paths: list[Path]) -> DataFormatError:
    with pytest.raises(DataFormatError) as info:
        read(paths)
    return info.value


_LEVELS = ["", *schema.HELPFULNESS_LEVELS]
_row = st.fixed_dictionaries(
    {
        "noteId": st.integers(-5, 2**63 - 1) | st.integers(0, 30),
        "raterParticipantId": st.sampled_from(["007", "7", "a b"]) | st.text("AB7_-", min_size=1, max_size=6),
        "createdAtMillis": st.integers(schema.MIN_PLAUSIBLE_MILLIS, schema.MAX_PLAUSIBLE_MILLIS),
        "helpful": st.sampled_from([0, 1, ""]),
        "notHelpful": st.sampled_from([0, 1, ""]),
        "helpfulnessLevel": st.sampled_from(_LEVELS),
        "helpfulClear": st.sampled_from([0, 1, ""]),
        "helpfulGoodSources": st.sampled_from([0, 1]),
        "notHelpfulOutdated": st.sampled_from([0, 1]),
        "ratingSourceBucketed": st.sampled_from(["", *schema.RATING_SOURCES]),
        "suggestion": st.sampled_from(["", "free text", "é"]),
    }
)
_HEADERS = [
    list(schema.RATING_COLUMNS),
    ["raterParticipantId", "notHelpfulOutdated", "noteId", "helpfulnessLevel", "createdAtMillis"],
    ["noteId", "participantId", "createdAtMillis", "helpful", "notHelpful", "extra", "helpfulClear"],
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_row, max_size=40), which=st.sampled_from(range(len(_HEADERS))), newline=st.booleans())
def test_fast_path_matches_careful_path_on_valid_files(
    tmp_path: Path, rows, which: int, newline: bool
) -> None:
    header = _HEADERS[which]
    # Tags a row does not set are 0 on even rows (runs of 0/1 fields), empty on odd ones.
    zeros = {t: 0 for t in schema.RATING_TAGS}
    rows = [
        {**(zeros if i % 2 == 0 else {}), **r, "participantId": r["raterParticipantId"]}
        for i, r in enumerate(rows)
    ]
    path = tsv(tmp_path / "ratings-00000.tsv", header, rows)
    if not newline and rows:  # (the careful path rejects a header-only file with no newline)
        path.write_bytes(path.read_bytes().rstrip(b"\n"))
    _same(_fast([path], chunk=64, initial=1), _careful([path]))


def test_growth_and_multiple_files_match_careful_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    paths = []
    for k, extra in enumerate(["x" * 300, ""]):  # long rows first: the size estimate falls short
        rows = [
            rating_row(
                int(rng.integers(0, 400)),
                f"R{int(rng.integers(0, 300))}",
                _LEVELS[int(rng.integers(0, 4))],
                helpfulClear=int(rng.integers(0, 2)),
                suggestion=extra,
                createdAtMillis=T0 + i,
            )
            for i in range(1500)
        ]
        paths.append(tsv(tmp_path / f"ratings-0000{k}.tsv", schema.RATING_COLUMNS, rows))
    gz = tmp_path / "ratings-00002.tsv.gz"
    gz.write_bytes(gzip.compress(paths[1].read_bytes()))
    paths.append(gz)
    fast = _fast(paths, chunk=256, initial=2)
    careful = _careful(paths)
    assert fast.dropped.shape[0] > 0 and len(fast.rater_ids) == len(careful.rater_ids) > 250
    _same(fast, careful)
    # And through the public reader, with the default sizes.
    _same(ratings.read_ratings([str(p) for p in paths], []), _careful(paths))


@pytest.mark.parametrize(
    ("row", "field"),
    [
        (rating_row(20, "B", noteId="12x"), "noteId"),
        (rating_row(20, "B", noteId="99999999999999999999"), "noteId"),
        (rating_row(20, "B", noteId=""), "noteId"),
        (rating_row(20, "B", createdAtMillis="soon"), "createdAtMillis"),
        (rating_row(20, "B", createdAtMillis=T0 // 1000), "createdAtMillis"),
        (rating_row(20, "B", createdAtMillis=""), "createdAtMillis"),
        (rating_row(20, "B", helpfulClear=2), "helpfulClear"),
        (rating_row(20, "B", helpful="-1"), "helpful"),
        (rating_row(20, "B", "VERY_HELPFUL"), "helpfulnessLevel"),
        (rating_row(20, "B", "HELPFUL "), "helpfulnessLevel"),
        (rating_row(20, "B", ratingSourceBucketed="RANDOM"), "ratingSourceBucketed"),
        (rating_row(20, ""), "raterParticipantId"),
    ],
)
def test_bad_value_same_line_field_and_reason(tmp_path: Path, row: dict, field: str) -> None:
    path = tsv(tmp_path / "ratings-00000.tsv", schema.RATING_COLUMNS, [rating_row(10, "A")] * 3 + [row])
    fast = _error(_fast, [path])
    careful = _error(_careful, [path])
    assert (fast.line, fast.field) == (careful.line, careful.field) == (5, field)
    assert fast.reason.split(",")[0] == careful.reason.split(",")[0]


@pytest.mark.parametrize("extra", ["\tmore", "\tmore\tand more", None])
def test_ragged_row_same_line(tmp_path: Path, extra: str | None) -> None:
    path = tsv(tmp_path / "ratings-00000.tsv", schema.RATING_COLUMNS, [rating_row(10, "A")] * 3)
    lines = path.read_text().splitlines()
    lines[2] = lines[2] + extra if extra is not None else lines[2].rsplit("\t", 2)[0]
    path.write_text("\n".join(lines) + "\n")
    fast = _error(_fast, [path])
    careful = _error(_careful, [path])
    assert fast.line == careful.line == 3 and fast.reason == careful.reason


@pytest.mark.parametrize(
    "edit",
    [
        lambda b: b.replace(b"\tA\t", b'\t"A"\t', 1),  # a quoted field
        lambda b: b.replace(b"\n", b"\r\n"),  # CRLF line ends
        lambda b: b + b"\n",  # a blank line
        lambda b: b.replace(b"\tA\t", b"\t\xc3\xa9\t", 1),  # a non-ASCII rater id
        lambda b: b.replace(b"\t1\t", b"\t01\t", 1),  # a tag the tokenizer does not take
    ],
)
def test_unsure_input_falls_back_to_the_careful_path(tmp_path: Path, edit) -> None:
    rows = [rating_row(10, "A", helpfulClear=1), rating_row(20, "B"), rating_row(20, "A", "")]
    path = tsv(tmp_path / "ratings-00000.tsv", schema.RATING_COLUMNS, rows)
    path.write_bytes(edit(path.read_bytes()))
    with pytest.raises(fastratings.Fallback):
        _fast([path])
    warnings: list[str] = []
    got = ratings.read_ratings([str(path)], warnings)
    assert got.value.shape[0] == 2 and any("line 4" in w for w in warnings)
    _same(got, _careful([path]))


def _rows(n: int, long_first: bool, seed: int = 11) -> list[dict]:
    """``n`` valid rows on 60 notes by 90 raters; the long ones (a suggestion) in one half."""
    rng = np.random.default_rng(seed)
    return [
        rating_row(
            int(rng.integers(0, 60)),
            f"R{int(rng.integers(0, 90))}",
            _LEVELS[int(rng.integers(0, 4))],
            helpfulClear=int(rng.integers(0, 2)),
            suggestion="x" * 400 if (i < n // 2) == long_first else "",
            createdAtMillis=T0 + i,
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("long_first", [True, False])
@pytest.mark.parametrize("threads", [1, 2, 5])
def test_ranges_in_parallel_give_the_single_pass_result(
    tmp_path: Path, long_first: bool, threads: int
) -> None:
    # Long rows first: the first ranges outgrow their regions (estimated from the average row)
    # and spill, pushing later rows past the next region: the rows are copied. Long rows last:
    # the later ranges spill but fit in place.
    a = tsv(tmp_path / "ratings-00000.tsv", schema.RATING_COLUMNS, _rows(1200, long_first))
    b = tsv(tmp_path / "ratings-00001.tsv", schema.RATING_COLUMNS, _rows(300, not long_first, seed=12))
    gz = tmp_path / "ratings-00002.tsv.gz"
    gz.write_bytes(gzip.compress(b.read_bytes()))
    paths = [a, b, gz]
    got = _fast(paths, num_threads=threads, min_segment=1, chunk=512, initial=1)
    single = _fast(paths, num_threads=1)
    assert got.rater_ids.to_pylist() == single.rater_ids.to_pylist()
    assert np.array_equal(got.note_ids, single.note_ids)
    for name in ("note_code", "rater_code", "value", "created_at", "tags", "population_sampled"):
        assert np.array_equal(getattr(got, name), getattr(single, name)), name
    assert got.dropped.shape[0] > 0
    _same(got, _careful(paths))


def test_plan_cuts_plain_files_after_newlines(tmp_path: Path) -> None:
    path = tsv(tmp_path / "ratings-00000.tsv", schema.RATING_COLUMNS, _rows(500, True))
    data = path.read_bytes()
    plan = segments.plan([str(path)], 4, 1, 0)
    assert len(plan) == 4 and plan[0].start == 0 and plan[-1].stop is None
    for seg, nxt in itertools.pairwise(plan):
        assert seg.stop == nxt.start and data[nxt.start - 1 : nxt.start] == b"\n"
        assert nxt.base == seg.base + seg.cap
    assert len(segments.plan([str(path)], 4, len(data), 0)) == 1  # too small to cut


@pytest.mark.parametrize(("bad_at", "quote_at"), [(700, 1100), (1100, 700), (1100, None)])
def test_first_stop_in_file_order_wins_across_ranges(
    tmp_path: Path, bad_at: int, quote_at: int | None
) -> None:
    rows = _rows(1200, False)
    rows[bad_at]["helpfulClear"] = 7
    if quote_at is not None:
        rows[quote_at]["suggestion"] = '"quoted"'
    path = tsv(tmp_path / "ratings-00000.tsv", schema.RATING_COLUMNS, rows)
    kw = {"num_threads": 4, "min_segment": 1, "chunk": 256}
    if quote_at is not None and quote_at < bad_at:
        with pytest.raises(fastratings.Fallback):
            _fast([path], **kw)
        return
    err = _error(lambda p: _fast(p, **kw), [path])
    assert (err.line, err.field) == (bad_at + 2, "helpfulClear")
    assert (err.line, err.field) == (lambda e: (e.line, e.field))(_error(_careful, [path]))


def test_move_and_recode_match_numpy_twins() -> None:
    rng = np.random.default_rng(2)
    src = rng.integers(0, 50, 400).astype(np.int32)
    code_map = rng.permutation(50).astype(np.int32)
    for at, start in ((0, 100), (30, 30), (10, 300)):
        a, b = src.copy(), src.copy()
        segments.move(a, at, a, start, 90)
        segments.move_numpy(b, at, b, start, 90)
        assert np.array_equal(a, b)
        segments.recode(a, at, 90, code_map)
        segments.recode_numpy(b, at, 90, code_map)
        assert np.array_equal(a, b)
