"""``bridgewatch evaluate`` end to end on one small scenario at one strength."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from bridgewatch.cli import cli
from bridgewatch.io import read_dataset
from bridgewatch.sim.eval_table import write_tables
from bridgewatch.sim.evaluate import _campaign, _simulate, read_truth, run_evaluation, score_outcome

# The smallest community the defences still run on (PSS needs >= 200 notes).
SMALL = {"notes": 200, "raters": 600, "ratings": 5_000, "days": 40.0}


def test_timing_attack_end_to_end(tmp_path: Path) -> None:
    table = run_evaluation(
        scale="tiny", seed=3, scenarios=["timing_attack"], strengths=[10], targets=16, overrides=SMALL,
        workdir=tmp_path / "data",
    )  # fmt: skip
    assert list(table["defences"]) == ["on", "off"]
    on, off = table.iloc[0], table.iloc[1]
    assert (on["attackers"], on["targets"]) == (10, 16)
    assert on["attack_ratings"] == off["attack_ratings"] == 160  # every account rated every target
    assert 0 <= on["moved"] <= on["eligible"] <= 16 and 0 <= on["flipped"] <= on["flip_eligible"] <= 16
    # the same 16 notes rated HELPFUL by all ten: one coordinated group, whose ratings of the
    # targets are set aside, so post-selection similarity has no co-ratings left to find
    assert on["recall_coordinated"] == 1.0 and on["detect_recall"] == 1.0 and on["recall_pss"] == 0.0
    assert pd.isna(off["detect_recall"]) and off["flagged"] == 0
    # both settings are also scored without the attack ratings: the floor (sincere -> abstaining)
    # and what the attack ratings themselves flip (abstaining -> attacked)
    for row in (on, off):
        assert 0 <= row["floor_flipped"] <= row["flip_eligible"]
        assert 0 <= row["attack_flipped"] <= row["attack_flip_eligible"] <= 16
    # a perfect discount (the whole group caught, its target ratings set aside) undoes the attack
    assert on["attack_flipped"] == 0 and on["flipped"] == on["floor_flipped"]
    truth = pd.read_csv(tmp_path / "data" / "timing_attack" / "10" / "truth.tsv", sep="\t", dtype=str)
    assert (truth["isAttackTarget"] == "1").sum() == 16
    md, csv = write_tables(table, tmp_path / "out", "# test")
    again = pd.read_csv(csv)
    assert list(again["scenario"]) == ["timing_attack"] * 2
    assert "| timing_attack | up | k=10 | on |" in md.read_text()


def test_cli_rejects_an_unknown_scenario(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["evaluate", "--out", str(tmp_path), "--attack", "nope"])
    assert result.exit_code == 2 and "nope" in result.output


def test_withheld_ratings_are_scored_as_removed(tmp_path: Path) -> None:
    """``score_outcome(withhold=...)`` (``bench/stealth_oracle.py``'s oracles) removes exactly the
    ratings it names: withholding the campaign is the abstaining counterfactual, bit for bit."""
    path, now = _simulate(tmp_path, "tiny", 3, "timing_attack", 10, True, 16, SMALL)
    notes, raters = read_truth(path)
    hit = _campaign(read_dataset(path).ratings, notes.index[notes["isAttackTarget"] == "1"],
                    raters.index[raters["isBadActor"] == "1"])  # fmt: skip
    assert hit.sum() == 160

    def statuses(**how: object) -> pd.Series:
        return score_outcome(path, defences=False, scorers="core", epoch_millis=now, seed=42, **how).status

    abstaining = statuses(campaign=False)
    pd.testing.assert_series_equal(statuses(withhold=hit), abstaining)
    pd.testing.assert_series_equal(statuses(withhold=hit, campaign=False), abstaining)
    with pytest.raises(ValueError, match="keep has shape"):
        statuses(withhold=hit[:-1])
