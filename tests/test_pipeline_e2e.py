"""End to end: simulate a tiny community, score it through the CLI, check outputs and truth."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from bridgewatch import schema
from bridgewatch.cli import cli
from bridgewatch.integrity.views import NOTE_INTEGRITY_FILE, RATER_INTEGRITY_FILE, VIEW_FILES
from bridgewatch.report import REPORT_FILE
from bridgewatch.sim.config import config_for_scale
from bridgewatch.sim.simulate import simulate

EPOCH = "1795305600000"


@pytest.fixture(scope="module")
def community(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("community")
    simulate(config_for_scale("tiny", seed=3), data)
    return data


@pytest.fixture(scope="module")
def scored(community, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scored")
    result = CliRunner().invoke(
        cli, ["score", str(community), "--outdir", str(out), "--epoch-millis", EPOCH, "--quiet"]
    )
    assert result.exit_code == 0, result.output
    return out


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.glob("*.tsv"))}


def test_outputs_have_the_reference_schemas(scored: Path) -> None:
    expected = {
        schema.SCORED_NOTES_FILE: schema.SCORED_NOTES_COLUMNS,
        schema.HELPFULNESS_SCORES_FILE: schema.HELPFULNESS_SCORES_COLUMNS,
        schema.NOTE_STATUS_HISTORY_FILE: schema.NOTE_STATUS_HISTORY_COLUMNS,
        schema.AUX_NOTE_INFO_FILE: schema.AUX_NOTE_INFO_COLUMNS,
    }
    for name, columns in expected.items():
        header = (scored / name).read_text().split("\n", 1)[0].split("\t")
        assert tuple(header[: len(columns)]) == columns, name
        assert (scored / name).with_suffix(".parquet").exists()


def test_every_note_gets_a_public_status_and_an_explanation(community: Path, scored: Path) -> None:
    notes = pd.read_csv(community / schema.NOTES_FILE, sep="\t")
    out = pd.read_csv(scored / schema.SCORED_NOTES_FILE, sep="\t")
    assert set(notes["noteId"]) <= set(out["noteId"])
    assert set(out["finalRatingStatus"]) <= set(schema.STATUSES)
    assert out["decidedBy"].notna().all()
    assert out["statusExplanation"].notna().all()
    rated = out[out["finalRatingStatus"] != schema.NMR]
    assert rated["firstTag"].notna().all() and rated["secondTag"].notna().all()


def test_helpful_status_agrees_with_the_simulated_truth(community: Path, scored: Path) -> None:
    truth = pd.read_csv(community / "truth.tsv", sep="\t")
    truth = truth[truth["kind"] == "note"].astype({"id": "int64"}).set_index("id")
    out = pd.read_csv(scored / schema.SCORED_NOTES_FILE, sep="\t").set_index("noteId")
    core = out[out["coreRatingStatus"] == schema.CRH]
    assert len(core) >= 5
    quality = truth.loc[core.index, "quality"]
    # Notes the core model calls helpful are of above-median latent quality, nearly all of them.
    precision = float((quality > truth["quality"].median()).mean())
    assert precision >= 0.9, precision
    crnh = out[out["coreRatingStatus"] == schema.CRNH]
    assert truth.loc[crnh.index, "quality"].mean() < truth.loc[core.index, "quality"].mean()


def test_integrity_views_and_report_cover_every_note_and_rater(community: Path, scored: Path) -> None:
    notes = pd.read_csv(scored / NOTE_INTEGRITY_FILE, sep="\t")
    raters = pd.read_csv(scored / RATER_INTEGRITY_FILE, sep="\t")
    ratings = pd.read_csv(community / schema.RATINGS_FILE, sep="\t", usecols=["raterParticipantId"])
    assert raters["ratings"].sum() == len(ratings) == notes["numRatings"].sum()
    assert raters["raterParticipantId"].nunique() == ratings["raterParticipantId"].nunique()
    helpful = notes["helpfulPositive"] + notes["helpfulNegative"]
    assert (helpful <= notes["helpfulRaters"]).all() and notes["helpfulRaters"].sum() > 0
    result = CliRunner().invoke(cli, ["report", str(scored)])
    assert result.exit_code == 0, result.output
    page = (scored / REPORT_FILE).read_text()
    core = pd.read_csv(scored / schema.SCORED_NOTES_FILE, sep="\t")["coreNoteIntercept"].notna().sum()
    start = re.search(r'Plotly\.newPlot\(\s*"fig-notes",\s*', page).end()
    traces, _ = json.JSONDecoder().raw_decode(page, start)
    assert sum(len(t["x"]) for t in traces) == core > 0


def test_scoring_is_byte_identical_across_runs(community: Path, scored: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["score", str(community), "--outdir", str(tmp_path), "--epoch-millis", EPOCH, "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert _digest(tmp_path) == _digest(scored)


def test_no_integrity_rerun_removes_stale_views(community: Path, scored: Path, tmp_path: Path) -> None:
    # Bug: `score --no-integrity` into a directory of an earlier run left its integrity views
    # beside scored notes they no longer describe, and the report showed them.
    out = tmp_path / "out"
    shutil.copytree(scored, out)
    views = [out / n for n in VIEW_FILES] + [(out / n).with_suffix(".parquet") for n in VIEW_FILES]
    assert all(p.exists() for p in views)
    args = ["score", str(community), "--outdir", str(out), "--epoch-millis", EPOCH, "--no-integrity"]
    result = CliRunner().invoke(cli, [*args, "--quiet"])
    assert result.exit_code == 0, result.output
    assert not any(p.exists() for p in views)
    assert (out / schema.SCORED_NOTES_FILE).exists()
    assert CliRunner().invoke(cli, ["report", str(out)]).exit_code == 0
    assert "No integrity views" in (out / REPORT_FILE).read_text()


def test_missing_input_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["score", "--notes", str(tmp_path / "nope.tsv"), "--ratings", str(tmp_path / "r.tsv"),
              "--outdir", str(tmp_path / "out")],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "nope.tsv" in result.output and "no such file" in result.output


def test_coordination_defence_is_a_no_op_without_a_coordinated_group(community, scored, tmp_path) -> None:
    # An honest community holds no coordinated group: the defence beyond the reference is a no-op,
    # so the outputs equal those of integrity as X runs it, byte for byte.
    out = tmp_path / "reference-integrity"
    args = ["--outdir", str(out), "--epoch-millis", EPOCH, "--quiet", "--no-coordination"]
    result = CliRunner().invoke(cli, ["score", str(community), *args])
    assert result.exit_code == 0, result.output
    assert _digest(out) == _digest(scored)


def test_surprise_defence_is_on_by_default_and_off_with_its_flag(community, scored, tmp_path) -> None:
    # On by default: on this honest community it flags nothing, so the default outputs equal those
    # with `--no-surprise`, byte for byte. A false discovery rate of 1 makes it flag on any data, so
    # with that config the default ("on") shows in the outputs and `--no-surprise` turns it off.
    args = ["--epoch-millis", EPOCH, "--quiet"]
    off = tmp_path / "off"
    result = CliRunner().invoke(cli, ["score", str(community), "--outdir", str(off), *args, "--no-surprise"])
    assert result.exit_code == 0, result.output
    assert _digest(off) == _digest(scored)
    toml = tmp_path / "loose.toml"
    toml.write_text("[integrity]\nsurprise_fdr = 1.0\n")
    digests = {}
    for name, flag in (("default", []), ("off", ["--no-surprise"])):
        out = tmp_path / f"loose-{name}"
        result = CliRunner().invoke(
            cli, ["score", str(community), "--outdir", str(out), *args, "--config", str(toml), *flag]
        )
        assert result.exit_code == 0, result.output
        digests[name] = _digest(out)
    assert digests["off"] == _digest(scored)
    assert digests["default"][schema.SCORED_NOTES_FILE] != digests["off"][schema.SCORED_NOTES_FILE]
