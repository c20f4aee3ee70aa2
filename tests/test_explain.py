"""``bridgewatch explain``: a note's status explained from a run's output files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from bridgewatch import schema
from bridgewatch.cli import cli
from bridgewatch.errors import DataFormatError
from bridgewatch.explain import explain_note

NOTE = 1234567890123


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    scored = pd.DataFrame(
        {
            "noteId": [NOTE, 7],
            "finalRatingStatus": [schema.CRH, schema.NMR],
            "decidedBy": ["CoreModel (v1.1)", "MetaInitialNMR (v1.0)"],
            "decidedByRule": ["RuleFromNewStatus (v1.0)", None],
            "statusExplanation": ["CoreModel (v1.1) via ...: intercept 0.452", "MetaInitialNMR (v1.0)"],
            "metaScorerActiveRules": ["MetaInitialNMR (v1.0),CoreModel (v1.1)", "MetaInitialNMR (v1.0)"],
            "coreNoteIntercept": [0.4521, float("nan")],
            "coreNoteFactor1": [-0.12, float("nan")],
            "coreNoteInterceptMin": [0.31, float("nan")],
            "coreNoteInterceptMax": [0.55, float("nan")],
            "coreRatingStatus": [schema.CRH, None],
            "coreActiveRules": ["InitialNMR (v1.0),GeneralCRH (v1.0)", None],
            "expansionNoteIntercept": [0.41, float("nan")],
            "firstTag": ["helpfulGoodSources", None],
            "secondTag": ["helpfulClear", None],
            "activeFilterTags": [None, None],
        }
    )
    scored.to_csv(tmp_path / schema.SCORED_NOTES_FILE, sep="\t", index=False)
    nsh = pd.DataFrame(
        {
            "noteId": [NOTE],
            "currentStatus": [schema.CRH],
            "timestampMillisOfCurrentStatus": [1_795_305_600_000],
            "firstNonNMRStatus": [schema.CRH],
            "timestampMillisOfFirstNonNMRStatus": [1_795_000_000_000],
            "lockedStatus": [schema.CRH],
            "timestampMillisOfStatusLock": [1_795_300_000_000],
        }
    )
    nsh.to_parquet(tmp_path / schema.NOTE_STATUS_HISTORY_FILE.replace(".tsv", ".parquet"), index=False)
    return tmp_path


def test_explain_prints_scorers_rules_tags_and_history(run: Path) -> None:
    result = CliRunner().invoke(cli, ["explain", str(NOTE), "--run", str(run)])
    assert result.exit_code == 0, result.output
    out = "\n".join(" ".join(line.split()) for line in result.output.splitlines())  # labels are padded
    for text in (
        "decidedByRule RuleFromNewStatus (v1.0)",
        "== scorer core",
        "intercept 0.4521",
        "interval min 0.3100",
        "interval max 0.5500",
        "active rules InitialNMR (v1.0),GeneralCRH (v1.0)",
        "== scorer expansion",
        "firstTag helpfulGoodSources",
        "lockedStatus",
        "2026-11-22 00:00:00 UTC",
        "locked",
    ):
        assert text in out, text
    assert "scorer group" not in out  # families without a result are left out


def test_explain_reads_the_interval_when_the_intercept_lies_outside_it(run: Path) -> None:
    inside = dict(next(s for s in explain_note(run, NOTE) if s.title == "scorer core").rows)
    assert inside["interval reading"].startswith("the intercept lies inside")
    scored = pd.read_csv(run / schema.SCORED_NOTES_FILE, sep="\t")
    scored.loc[scored["noteId"] == NOTE, "coreNoteIntercept"] = 0.2
    scored.to_csv(run / schema.SCORED_NOTES_FILE, sep="\t", index=False)
    below = dict(next(s for s in explain_note(run, NOTE) if s.title == "scorer core").rows)
    assert below["interval reading"].startswith("the intercept lies below the pseudo-rater refit range")
    assert "upper bound (0.5500)" in below["interval reading"]


def test_explain_note_without_results_skips_empty_scorers(run: Path) -> None:
    sections = {s.title: dict(s.rows) for s in explain_note(run, 7)}
    assert sections["decision"]["finalRatingStatus"] == schema.NMR
    assert not any(title.startswith("scorer") for title in sections)
    assert "status history" not in sections  # no NSH row for this note


def test_explain_missing_note_or_run_is_a_clear_error(run: Path, tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="note 99 is not in this run"):
        explain_note(run, 99)
    with pytest.raises(DataFormatError, match="no such run directory"):
        explain_note(tmp_path / "missing", NOTE)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(cli, ["explain", str(NOTE), "--run", str(empty)])
    assert result.exit_code != 0
    assert "not a scoring run" in result.output
