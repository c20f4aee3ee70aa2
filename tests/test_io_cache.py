"""The ratings cache: used while the files are unchanged, rebuilt when stale or damaged."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bridgewatch import schema
from bridgewatch.cli import cli
from bridgewatch.io import cache, read_dataset
from test_io_helpers import MATRIX_FIELDS, note_row, rating_row, tsv, write_basic


def _same(a, b) -> None:
    for f in MATRIX_FIELDS:
        x, y = getattr(a.ratings, f), getattr(b.ratings, f)
        assert x.dtype == y.dtype and np.array_equal(x, y), f
    assert a.warnings == b.warnings


def _entry(cache_dir: Path) -> Path:
    (entry,) = cache_dir.glob("ratings-*")
    return entry


def _rewrite_keeping_stat(path: Path, data: bytes) -> None:
    """Change a file's bytes but not its size or mtime: the cache cannot tell (by design)."""
    st = path.stat()
    assert len(data) == st.st_size
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_second_read_comes_from_the_cache(tmp_path: Path) -> None:
    data = write_basic(tmp_path / "data")
    cdir = tmp_path / "cache"
    first = read_dataset(data, cache_dir=cdir)
    _same(first, read_dataset(data))
    meta = json.loads((_entry(cdir) / "meta.json").read_text())
    assert meta["key"]["version"] == cache.CACHE_VERSION and any("absent from" in w for w in meta["warnings"])
    # Same size and mtime, different helpfulness: a cache hit still gives the first values.
    path = data / schema.RATINGS_FILE
    _rewrite_keeping_stat(path, path.read_bytes().replace(b"\tNOT_HELPFUL\t", b"\tNOT_HELPFUX\t"))
    second = read_dataset(data, cache_dir=cdir)
    _same(second, first)
    with pytest.raises(ValueError, match="read-only"):  # nobody can write through to the cache
        second.ratings.value[0] = 0.25
    _same(read_dataset(data, cache_dir=cdir), first)


@pytest.mark.parametrize("changed", ["ratings", "notes", "status"])
def test_a_changed_input_file_rebuilds(tmp_path: Path, changed: str) -> None:
    data = write_basic(tmp_path / "data")
    cdir = tmp_path / "cache"
    read_dataset(data, cache_dir=cdir)
    if changed == "ratings":
        rows = [rating_row(10, "A"), rating_row(20, "C"), rating_row(40, "A")]
        tsv(data / schema.RATINGS_FILE, schema.RATING_COLUMNS, rows)
    elif changed == "notes":
        tsv(data / schema.NOTES_FILE, schema.NOTE_COLUMNS, [note_row(10), note_row(20), note_row(50)])
    else:
        nsh = {"noteId": 60, "noteAuthorParticipantId": "X", "createdAtMillis": 1_700_000_000_000}
        tsv(data / schema.STATUS_FILE, schema.NOTE_STATUS_HISTORY_COLUMNS, [nsh])
    got = read_dataset(data, cache_dir=cdir)
    _same(got, read_dataset(data))
    assert not any("cache" in w for w in got.warnings)
    assert len(list(cdir.glob("ratings-*"))) == 1  # replaced, not added
    _same(read_dataset(data, cache_dir=cdir), got)


@pytest.mark.parametrize(
    "damage",
    [
        lambda e: (e / "created_at.npy").write_bytes((e / "created_at.npy").read_bytes()[:-9]),
        lambda e: _rewrite_keeping_stat(
            e / "rater.npy", (e / "rater.npy").read_bytes()[:-4] + b"\x07\x00\x00\x00"
        ),
        lambda e: (e / "by_rater.npy").unlink(),
        lambda e: (e / "meta.json").write_text("{not json"),
        lambda e: (e / "rater_ids.bytes.npy").write_bytes(b"\x93NUMPY garbage"),
    ],
    ids=["truncated", "altered", "missing", "bad-meta", "bad-header"],
)
def test_a_damaged_entry_is_detected_and_rebuilt(tmp_path: Path, damage) -> None:
    data = write_basic(tmp_path / "data")
    cdir = tmp_path / "cache"
    read_dataset(data, cache_dir=cdir)
    fresh = read_dataset(data)  # (not the first read: it scores from the entry, damaged below)
    damage(_entry(cdir))
    got = read_dataset(data, cache_dir=cdir)
    (w,) = [w for w in got.warnings if "ratings cache" in w]
    assert "rebuilt" in w and str(_entry(cdir)) in w
    for f in MATRIX_FIELDS:
        assert np.array_equal(getattr(got.ratings, f), getattr(fresh.ratings, f)), f
    _same(read_dataset(data, cache_dir=cdir), fresh)  # and the rebuilt entry is sound


def test_score_cli_cache_flags(tmp_path: Path) -> None:
    data = write_basic(tmp_path / "data")
    args = [
        "score",
        str(data),
        "--epoch-millis",
        "1795305600000",
        "--quiet",
        "--no-parquet",
        "--no-integrity",
    ]
    out1, out2, out3 = tmp_path / "o1", tmp_path / "o2", tmp_path / "o3"
    result = CliRunner().invoke(cli, [*args, "--outdir", str(out1)])
    assert result.exit_code == 0, result.output
    assert list((out1 / ".bridgewatch-cache").glob("ratings-*/meta.json"))
    result = CliRunner().invoke(cli, [*args, "--outdir", str(out2), "--no-cache"])
    assert result.exit_code == 0, result.output
    assert not (out2 / ".bridgewatch-cache").exists()
    # Started from the first run's cache: the same bytes out.
    result = CliRunner().invoke(
        cli, [*args, "--outdir", str(out3), "--cache", str(out1 / ".bridgewatch-cache")]
    )
    assert result.exit_code == 0, result.output
    assert not (out3 / ".bridgewatch-cache").exists()
    for name in (schema.SCORED_NOTES_FILE, schema.HELPFULNESS_SCORES_FILE):
        assert (out3 / name).read_bytes() == (out2 / name).read_bytes() == (out1 / name).read_bytes()
    result = CliRunner().invoke(cli, [*args, "--outdir", str(out3), "--cache", "x", "--no-cache"])
    assert result.exit_code != 0 and "exclude" in result.output


def _rss_file() -> int:
    """Resident file-backed bytes of this process (``RssFile`` of /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssFile line")


@pytest.mark.parametrize("run", ["first (writes the entry)", "second (reads it)"])
def test_rating_columns_from_the_cache_are_read_only_and_can_be_handed_back(tmp_path: Path, run: str) -> None:
    """The run that writes the entry scores from it too, as later runs do: mapped columns whose
    pages go back, not the parsed arrays on the heap."""
    data = write_basic(tmp_path / "data")
    cdir = tmp_path / "cache"
    parsed = read_dataset(data).ratings  # no cache: in memory
    cached = read_dataset(data, cache_dir=cdir).ratings
    if run.startswith("second"):
        cached = read_dataset(data, cache_dir=cdir).ratings
    for name in cache.READ_ONLY:  # a write raises: no copy-on-write page to lose
        assert not getattr(cached, name).flags.writeable, name
    assert cached.release("created_at") == cached.created_at.nbytes > 0
    assert cached.release() == sum(getattr(cached, name).nbytes for name in cache.READ_ONLY)
    assert parsed.release() == 0  # in memory: nothing to hand back
    for name in cache.READ_ONLY:  # read back after the release
        assert np.array_equal(getattr(cached, name), getattr(parsed, name)), name
    with pytest.raises(ValueError):
        cached.created_at[0] = 0


def test_release_drops_the_resident_pages_of_a_big_column(tmp_path: Path) -> None:
    from bridgewatch.io.matrix import RatingMatrix

    path = tmp_path / "created_at.npy"
    np.save(path, np.arange(4_000_000, dtype=np.int64))  # 32 MB
    arr = np.asarray(np.load(path, mmap_mode="r"))
    small = np.zeros(1, np.int32)
    m = RatingMatrix(
        note=small, rater=small, value=small, created_at=arr, tags=small, population_sampled=small,
        note_ids=small, rater_ids=small, note_indptr=small, by_rater=small, rater_indptr=small,
    )  # fmt: skip
    total = int(arr.sum())  # every page resident
    before = _rss_file()
    assert m.release("created_at") == arr.nbytes
    assert before - _rss_file() > 0.9 * arr.nbytes
    assert int(arr.sum()) == total
