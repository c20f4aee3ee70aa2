"""``bridgewatch validate`` driven in process."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bridgewatch import schema
from bridgewatch.cli import cli
from test_io_helpers import note_row, tsv, write_basic


def test_validate_prints_summary(tmp_path: Path) -> None:
    write_basic(tmp_path)
    result = CliRunner().invoke(cli, ["validate", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "ratings HELPFUL" in result.output and "1 (33.3%)" in result.output
    assert "notes NOT_MISLEADING" in result.output
    assert "warning" in result.output and "absent from" in result.output


def test_validate_bad_file_exits_2(tmp_path: Path) -> None:
    write_basic(tmp_path)
    tsv(tmp_path / schema.NOTES_FILE, schema.NOTE_COLUMNS, [note_row(10, createdAtMillis=1_700_000_000)])
    result = CliRunner().invoke(cli, ["validate", str(tmp_path)])
    assert result.exit_code == 2
    assert "notes-00000.tsv, line 2, field 'createdAtMillis'" in result.output
