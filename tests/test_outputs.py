"""Output frames: reference text formats (checked against rows of the reference's own files),
status strings, sorting and byte-identical reruns."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from bridgewatch import schema
from bridgewatch.io.tsv import write_frame
from bridgewatch.schema import Status
from bridgewatch.scoring import outputs as O
from bridgewatch.scoring.config import RuleConfig
from bridgewatch.scoring.rules import RuleInputs, compute_statuses

SLICE = Path(__file__).parent / "fixtures" / "reference_slice"
FILES = {
    schema.SCORED_NOTES_FILE: ("scored_notes.tsv", schema.SCORED_NOTES_COLUMNS),
    schema.HELPFULNESS_SCORES_FILE: ("helpfulness_scores.tsv", schema.HELPFULNESS_SCORES_COLUMNS),
    schema.NOTE_STATUS_HISTORY_FILE: ("note_status_history.tsv", schema.NOTE_STATUS_HISTORY_COLUMNS),
    schema.AUX_NOTE_INFO_FILE: ("aux_note_info.tsv", schema.AUX_NOTE_INFO_COLUMNS),
}


def parse_typed(name: str, text: str) -> dict[str, np.ndarray]:
    """Parse reference text into typed arrays (floats as float64, as a pipeline would hold them)."""
    d = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False)
    cols = {}
    for c in d.columns:
        v = d[c].replace("", None)
        kind = O.KINDS[name][c]
        if kind in (O.F32, O.F64):
            v = pd.to_numeric(v)
        elif kind == O.INT:
            v = pd.to_numeric(v).astype("Int64")
        elif kind == O.BOOL:
            v = v.map({"True": True, "False": False, None: None})
        cols[c] = v.to_numpy()
    return cols


@pytest.mark.parametrize("name", list(FILES))
def test_reference_rows_round_trip_byte_identical(name):
    fname, columns = FILES[name]
    text = (SLICE / fname).read_text()
    frame = O.build_frame(name, parse_typed(name, text))
    buf = io.StringIO()
    write_frame(buf, frame, columns, header=True)
    ours, theirs = buf.getvalue().splitlines(), text.splitlines()
    assert ours[0] == theirs[0]
    assert sorted(ours[1:]) == sorted(theirs[1:])


def test_kinds_cover_every_column():
    for name, cols in O.COLUMNS.items():
        assert set(O.KINDS[name]) == set(cols)
    assert O.KINDS[schema.SCORED_NOTES_FILE]["coreNoteIntercept"] == O.F32
    assert O.KINDS[schema.SCORED_NOTES_FILE]["groupNoteIntercept"] == O.F64
    assert O.KINDS[schema.SCORED_NOTES_FILE]["numRatings"] == O.INT


def test_status_strings_keep_or_map_firm_reject():
    codes = np.array([Status.CRH, Status.FIRM_REJECT, Status.NEEDS_YOUR_HELP, -1], dtype=np.int8)
    assert list(O.status_strings(codes)) == [schema.CRH, schema.FIRM_REJECT, schema.NEEDS_YOUR_HELP, None]
    assert O.status_strings(codes, firm_reject_as_nmr=True)[1] == schema.NMR


def test_tf_idf_nan_vs_absent():
    out = O.format_tf_idf(np.array([7.006631306648147, np.nan, np.nan, np.inf]), np.array([1, 1, 0, 1]))
    assert list(out) == ["7.006631306648147", "nan", None, "inf"]


def scored_frame():
    res = compute_statuses(
        RuleInputs(
            intercept=np.array([0.5, -0.5, 0.1]),
            factor=np.array([0.1, 0.0, 0.2]),
            num_ratings=np.array([9, 9, 9]),
            is_not_misleading=np.zeros(3, dtype=bool),
        ),
        RuleConfig(),
        final_round=True,
    )
    n = 4
    note_ids = np.array([30, 10, 20, 5], dtype=np.int64)
    cols = O.scorer_columns(
        "core",
        n,
        np.array([0, 1, 2]),
        res,
        np.array([0.5, -0.5, 0.1], dtype=np.float32),
        np.array([0.1, 0.0, 0.2], dtype=np.float32),
        extra={"NumFinalRoundRatings": np.array([9.0, 9.0, 9.0])},
    )
    cols["noteId"] = note_ids
    cols["numRatings"] = np.array([9, 9, 9, 0])
    cols["finalRatingStatus"] = O.status_strings(np.array([*res.status.tolist(), 0]), firm_reject_as_nmr=True)
    return O.build_frame(schema.SCORED_NOTES_FILE, cols)


def test_scorer_columns_and_sorting():
    f = scored_frame()
    assert list(f["noteId"]) == [5, 10, 20, 30]
    assert list(f["coreRatingStatus"].fillna("")) == ["", schema.CRNH, schema.FIRM_REJECT, schema.CRH]
    assert list(f["finalRatingStatus"]) == [schema.NMR, schema.CRNH, schema.NMR, schema.CRH]
    assert f.loc[3, "coreActiveRules"] == "InitialNMR (v1.0),GeneralCRH (v1.0)"
    assert f["coreNoteIntercept"].dtype == np.float32
    buf = io.StringIO()
    write_frame(buf, f, O.COLUMNS[schema.SCORED_NOTES_FILE], header=True)
    row = buf.getvalue().splitlines()[4].split("\t")
    hdr = list(O.COLUMNS[schema.SCORED_NOTES_FILE])
    assert row[hdr.index("coreNoteIntercept")] == "0.5"
    assert row[hdr.index("coreNumFinalRoundRatings")] == "9.0"
    assert row[hdr.index("numRatings")] == "9"


def test_unknown_column_and_bad_length_raise():
    with pytest.raises(KeyError):
        O.build_frame(schema.AUX_NOTE_INFO_FILE, {"noteId": np.array([1]), "bogus": np.array([1])})
    with pytest.raises(ValueError, match="ratingWeight"):
        O.build_frame(
            schema.AUX_NOTE_INFO_FILE, {"noteId": np.array([1, 2]), "ratingWeight": np.array([1.0])}
        )


def test_write_outputs_is_byte_identical_across_runs(tmp_path):
    frames = {schema.SCORED_NOTES_FILE: scored_frame()}
    a = O.write_outputs(tmp_path / "a", frames)
    b = O.write_outputs(tmp_path / "b", {schema.SCORED_NOTES_FILE: scored_frame()})
    assert [p.name for p in a] == ["scored_notes.tsv", "scored_notes.parquet"]
    for fa, fb in zip(a, b, strict=True):
        assert fa.read_bytes() == fb.read_bytes()
    back = pd.read_parquet(a[1])
    assert list(back["noteId"]) == [5, 10, 20, 30]
    header = a[0].read_text().splitlines()[0].split("\t")
    assert header == list(schema.SCORED_NOTES_COLUMNS + schema.SCORED_NOTES_EXTRA_COLUMNS)


def _series_form(values, kind: str) -> pd.Series:
    """``outputs._convert``'s general form (pandas Series conversions), which its array fast
    path must reproduce."""
    if kind == O.INT:
        s = pd.Series(values)
        return (s.round() if s.dtype.kind == "f" else s).astype("Int64")
    s = pd.Series(values, dtype=object)
    if kind == O.BOOL:
        return s.where(s.notna(), None).astype("boolean")
    return s.where(s.notna() & (s != ""), None)


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (np.array([1.5, 2.5, -0.5, np.nan, 3.0, -2.5, 1e15]), O.INT),  # half to even, as Series.round
        (np.arange(5), O.INT),
        (np.array([], dtype=float), O.INT),
        (np.full(3, np.nan), O.INT),
        (np.array([True, None, False], dtype=object), O.BOOL),
        (np.array([None, None], dtype=object), O.BOOL),
        (np.array([True, False]), O.BOOL),
        (np.array([np.True_, np.nan, False], dtype=object), O.BOOL),
        (np.array(["a", "", None, np.nan, "b"], dtype=object), O.STR),
        (np.array([None], dtype=object), O.STR),
        (np.array([], dtype=object), O.STR),
        (np.array([1.5, "a", None], dtype=object), O.STR),
        (np.array([1, 1.0, True, "1"], dtype=object), O.STR),  # equal hashes, different texts
        (np.array(["x", pd.NA, "y", "x", ""], dtype=object), O.STR),
    ],
)
def test_array_conversions_give_the_series_forms_values(values, kind):
    got, want = O._convert(values, kind), _series_form(values, kind)
    pd.testing.assert_series_equal(got.reset_index(drop=True), want.reset_index(drop=True))
    assert [v is None for v in got.tolist()] == [v is None for v in want.tolist()]


@pytest.mark.parametrize(
    ("values", "kind"),
    [(np.array([1.5, np.inf]), O.INT), (np.array(["yes", True], dtype=object), O.BOOL)],
)
def test_array_conversions_leave_what_they_cannot_convert_to_the_series_form(values, kind):
    """Values the general form rejects are rejected the same way, not converted silently."""
    with pytest.raises((TypeError, ValueError, OverflowError)) as fast:
        O._convert(values, kind)
    with pytest.raises(type(fast.value)):
        _series_form(values, kind)


def test_text_columns_share_one_object_per_distinct_value():
    """An output frame's text columns hold one str object per distinct value (a frame lives until
    written; a str a note was ~50 bytes and its text), with the same values and missing ones."""
    values = np.array([str(i % 3) + "_status" for i in range(30)] + [None, ""], dtype=object)
    got = O._convert(values, O.STR).tolist()
    assert got == [str(i % 3) + "_status" for i in range(30)] + [None, None]
    assert len({id(v) for v in got[:30]}) == 3
    mixed = np.array([1, 1.0, True, "1"], dtype=object)  # not text: each keeps its own value
    assert [repr(v) for v in O._convert(mixed, O.STR).tolist()] == ["1", "1.0", "True", "'1'"]


def _late_text_columns(n: int = 40, *, shuffled: bool = False) -> dict[str, np.ndarray]:
    """scored_notes columns whose text columns are empty in the first rows (in key order): a
    block of those rows alone would type them as null."""
    rng = np.random.default_rng(3)
    ids = np.arange(n, dtype=np.int64) * 7 + 100
    late = np.array([None] * (n - 5) + ["Misleading", "", None, "Informative", "Misleading"], dtype=object)
    status = np.array([None] * (n // 2) + [schema.CRH] * (n - n // 2), dtype=object)
    cols = {
        "noteId": ids,
        "classification": late,
        "finalRatingStatus": status,
        "coreNoteIntercept": np.where(rng.random(n) < 0.3, np.nan, rng.normal(size=n)),
        "numRatings": rng.integers(0, 50, size=n),
        "topicNoteConfident": np.array([None, True, False, True] * (n // 4), dtype=object),
        "createdAtMillis": np.where(np.arange(n) == 3, np.nan, ids * 1000.0),
    }
    if shuffled:  # rows out of key order: the frame sorts them (stably), and so do the blocks
        order = rng.permutation(n)
        cols = {k: v[order] for k, v in cols.items()}
    return cols


@pytest.mark.parametrize("shuffled", [False, True])
@pytest.mark.parametrize("rows", [1, 6, 40, 64])
def test_frame_columns_blocks_are_the_frames_rows(shuffled: bool, rows: int) -> None:
    columns = O.FrameColumns(schema.SCORED_NOTES_FILE, _late_text_columns(shuffled=shuffled), 40)
    whole = columns.frame()
    blocks = list(columns.blocks(rows))
    assert [len(b) for b in blocks] == [min(rows, 40 - lo) for lo in range(0, 40, rows)]
    joined = pd.concat(blocks, ignore_index=True)
    pd.testing.assert_frame_equal(joined, whole)
    assert [v is None for v in joined["classification"]] == [v is None for v in whole["classification"]]
    assert list(whole["noteId"]) == sorted(whole["noteId"])


def test_frame_columns_schema_is_the_whole_frames_and_files_are_its_bytes(tmp_path: Path) -> None:
    """Written a block of rows at a time (the phased final run), the Parquet and text files are
    the bytes of the whole frame written in blocks of those rows, though the first block has
    no value in some text columns."""
    from bridgewatch.io.parquet import write_parquet_blocks
    from bridgewatch.io.tsv import write_rows

    columns = O.FrameColumns(schema.SCORED_NOTES_FILE, _late_text_columns(shuffled=True), 40)
    whole = columns.frame()
    want = pa.Schema.from_pandas(whole, preserve_index=False)
    assert columns.schema().equals(want, check_metadata=True)
    first = pa.Schema.from_pandas(next(columns.blocks(8)), preserve_index=False)
    assert first.field("classification").type == pa.null()  # what the schema must not take
    write_parquet_blocks(tmp_path / "whole.parquet", whole, block_rows=8)
    blocks = columns.blocks(8)
    write_parquet_blocks(tmp_path / "blocks.parquet", blocks, block_rows=8, schema=columns.schema())
    assert (tmp_path / "whole.parquet").read_bytes() == (tmp_path / "blocks.parquet").read_bytes()
    names = O.COLUMNS[schema.SCORED_NOTES_FILE]
    one, many = io.BytesIO(), io.BytesIO()
    write_rows(one, whole, names)
    for i, block in enumerate(columns.blocks(7)):
        write_rows(many, block, names, header=i == 0)
    assert one.getvalue() == many.getvalue()


def test_frame_columns_of_no_rows_give_one_empty_block() -> None:
    columns = O.FrameColumns(schema.AUX_NOTE_INFO_FILE, {"noteId": np.array([], dtype=np.int64)}, 0)
    (block,) = list(columns.blocks(4))
    assert len(block) == 0 and list(block.columns) == list(O.COLUMNS[schema.AUX_NOTE_INFO_FILE])
    assert columns.schema().names == list(O.COLUMNS[schema.AUX_NOTE_INFO_FILE])


def test_write_outputs_refuses_a_missing_frame_without_files_to_copy(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"scored_notes\.tsv: no frame"):
        O.write_outputs(tmp_path, {schema.SCORED_NOTES_FILE: None})
