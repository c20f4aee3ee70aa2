"""The byte-matrix ratings writer equals pandas' writer; the CLI writes a community and reports it."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner

from bridgewatch import schema
from bridgewatch.cli import cli
from bridgewatch.io.tsv import write_frame
from bridgewatch.sim.fastwrite import (
    drop_padding,
    drop_padding_numpy,
    int_field,
    join_fields,
    write_ratings_indexed,
    write_ratings_rows,
)
from bridgewatch.sim.ratings import LEVEL_NAMES


def test_int_field_renders_plain_decimals() -> None:
    values = np.array([0, 7, 10, 1_795_132_800_000, 2_058_708_212_968_907_496], dtype=np.int64)
    rows = join_fields([int_field(values)]).decode().splitlines()
    assert rows == [str(v) for v in values.tolist()]


def test_drop_padding_kernel_matches_numpy_twin() -> None:
    rng = np.random.default_rng(1)
    flat = np.where(rng.random(10_000) < 0.2, 0, rng.integers(1, 256, size=10_000)).astype(np.uint8)
    assert np.array_equal(drop_padding(flat), drop_padding_numpy(flat))
    assert drop_padding(np.zeros(5, np.uint8)).size == 0


def test_fast_writer_matches_pandas_write_frame() -> None:
    rng = np.random.default_rng(0)
    n = 2_000
    note_id = rng.integers(10**17, 2**62, size=n)
    rater = rng.integers(0, 16, size=(n, 64)).astype(np.uint8)
    rater_bytes = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)[rater]
    millis = rng.integers(schema.MIN_PLAUSIBLE_MILLIS, schema.MAX_PLAUSIBLE_MILLIS, size=n)
    level = rng.integers(0, 3, size=n).astype(np.int8)
    tags = rng.integers(0, 1 << 22, size=n).astype(np.uint32)
    tweet = rng.integers(1, 2**62, size=n)
    sampled = rng.random(n) < 0.3

    fast = io.BytesIO()
    write_ratings_rows(fast, note_id, rater_bytes, millis, level, tags, tweet, sampled, chunk=300)

    frame = pd.DataFrame(
        {
            "noteId": note_id,
            "raterParticipantId": [bytes(r).decode() for r in rater_bytes],
            "createdAtMillis": millis,
            "version": 2,
            "agree": 0,
            "disagree": 0,
            "helpful": 0,
            "notHelpful": 0,
            "helpfulnessLevel": np.array(LEVEL_NAMES)[level],
            **{t: ((tags >> schema.TAG_BIT[t]) & 1).astype(np.int64) for t in schema.RATING_TAGS},
            "ratedOnTweetId": tweet,
            "ratingSourceBucketed": np.where(sampled, "POPULATION_SAMPLED", "DEFAULT"),
        }
    )
    slow = io.StringIO()
    write_frame(slow, frame, schema.RATING_COLUMNS, header=False)
    assert fast.getvalue().decode() == slow.getvalue()


def test_indexed_kernel_matches_numpy_writer() -> None:
    rng = np.random.default_rng(2)
    n_notes, n_raters, n = 50, 40, 3_000
    note_digits = int_field(rng.integers(1, 2**62, size=n_notes))
    tweet_digits = int_field(rng.integers(1, 10**6, size=n_notes))
    raters = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)[rng.integers(0, 16, size=(n_raters, 64))]
    note = rng.integers(0, n_notes, size=n).astype(np.int32)
    rater = rng.integers(0, n_raters, size=n).astype(np.int32)
    millis = rng.integers(0, schema.MAX_PLAUSIBLE_MILLIS, size=n)
    level = rng.integers(0, 3, size=n).astype(np.int8)
    tags = rng.integers(0, 1 << 22, size=n).astype(np.uint32)
    sampled = rng.random(n) < 0.5
    numpy_out, kernel_out = io.BytesIO(), io.BytesIO()
    gathered = (note_digits[note], raters[rater], millis, level, tags, tweet_digits[note], sampled)
    write_ratings_rows(numpy_out, *gathered, chunk=700)
    args = (note_digits, note, raters, rater, millis, level, tags, tweet_digits, sampled)
    write_ratings_indexed(kernel_out, *args)
    assert kernel_out.getvalue() == numpy_out.getvalue()


def test_cli_simulate_writes_files_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "community"
    args = ["simulate", "--scale", "tiny", "--out", str(out), "--seed", "2", "--quiet", "--notes", "250"]
    args += ["--attack", "timing_attack", "--attack-strength", "0.5", "--attack-param", "camouflage=4"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "timing_attack: 10 attackers" in result.output and "ratings/s" in result.output
    notes = pd.read_csv(out / schema.NOTES_FILE, sep="\t")
    assert len(notes) == 250
    for name in (schema.RATINGS_FILE, schema.STATUS_FILE, schema.ENROLLMENT_FILE, "truth.tsv", "meta.json"):
        assert (out / name).is_file()


def test_cli_rejects_bad_parameters(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(
        cli, ["simulate", "--out", str(tmp_path), "--attack", "sybil_brigade", "--attack-param", "x"]
    )
    assert bad.exit_code != 0 and "NAME=NUMBER" in bad.output
    unknown = runner.invoke(
        cli, ["simulate", "--out", str(tmp_path), "--attack", "sybil_brigade", "--attack-param", "nope=1"]
    )
    assert unknown.exit_code != 0 and "unknown parameters" in unknown.output
