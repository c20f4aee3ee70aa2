"""The fast profile (``--profile fast``, docs/fast.md): the shipped file loads onto typed fields,
each epoch cap reaches the fit it caps (and binds there), the CLI switch resolves to the file, and
scoring under the profile stays deterministic."""

from __future__ import annotations

import dataclasses
import hashlib
import tomllib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bridgewatch.cli import cli
from bridgewatch.errors import ConfigError
from bridgewatch.scoring import diligence as dl
from bridgewatch.scoring import harassment as hr
from bridgewatch.scoring.config import PROFILES, ScoringConfig, load_config, profile_path, with_overrides
from bridgewatch.scoring.scorer import prepare_inputs, prescore
from bridgewatch.scoring.scorer_run import diligence_config
from bridgewatch.scoring.scorer_specs import core
from bridgewatch.sim.config import config_for_scale
from bridgewatch.sim.simulate import simulate
from matrices import random_matrix
from test_scorer import harassed_community


def _fast_table() -> dict:
    with open(profile_path("fast"), "rb") as fh:
        return tomllib.load(fh)


def test_fast_profile_sets_its_fields_and_nothing_else() -> None:
    """Every key of the shipped file lands on its typed field; every other field keeps its default."""
    table = _fast_table()
    fast, default = load_config(profile="fast"), ScoringConfig()
    assert table, "the profile overrides nothing"
    for section in dataclasses.fields(default):
        got, ref = getattr(fast, section.name), getattr(default, section.name)
        for f in dataclasses.fields(ref):
            expected = table.get(section.name, {}).get(f.name, getattr(ref, f.name))
            assert getattr(got, f.name) == expected, f"{section.name}.{f.name}"
    assert "fast" in PROFILES


def test_a_config_file_adjusts_the_profile_and_unknown_profiles_fail(tmp_path) -> None:
    path = tmp_path / "bw.toml"
    path.write_text("[diligence]\nround1_max_epochs = 7\n")
    config = load_config(path, profile="fast")
    assert config.diligence.round1_max_epochs == 7
    assert config.harassment == load_config(profile="fast").harassment
    with pytest.raises(ConfigError, match="unknown profile"):
        load_config(profile="nosuch")


def test_default_caps_are_the_reference_fits_settings() -> None:
    """The new fields' defaults hand the reputation and harassment fits the reference's settings."""
    reference = dl.DiligenceConfig().adam
    mapped = diligence_config(ScoringConfig())
    for fit in range(4):
        assert mapped.settings(fit) == reference
    assert ScoringConfig().harassment.max_epochs == hr.HarassmentConfig().adam.max_epochs


class _Recorder:
    """Wraps a module's ``fit_adam_signed``: records (epoch cap, epochs run) of every fit."""

    def __init__(self, monkeypatch, module) -> None:
        self.calls: list[tuple[int, int]] = []
        inner = module.fit_adam_signed

        def fit(*args):
            out = inner(*args)
            self.calls.append((args[-1].max_epochs, out[2]))
            return out

        monkeypatch.setattr(module, "fit_adam_signed", fit)


def test_diligence_caps_reach_each_round_and_the_final_fits(monkeypatch) -> None:
    m = random_matrix(np.random.default_rng(0), 4000, 80, 300)
    keep = np.ones(m.n_ratings, dtype=bool)
    rf = np.random.default_rng(1).normal(size=m.n_raters)
    capped = with_overrides(
        ScoringConfig(),
        {"diligence": {"round1_max_epochs": 3, "round2_max_epochs": 4, "round3_max_epochs": 5,
                       "final_max_epochs": 6}},
    )  # fmt: skip
    rec = _Recorder(monkeypatch, dl)
    free = dl.fit_prescoring_kept(m, keep, rf, diligence_config(ScoringConfig()))
    free_epochs = [e for _, e in rec.calls]
    rec.calls.clear()
    pre = dl.fit_prescoring_kept(m, keep, rf, diligence_config(capped))
    dl.fit_final_kept(m, keep, pre, diligence_config(capped))
    assert [cap for cap, _ in rec.calls] == [3, 4, 5, 6, 6]
    assert all(epochs <= cap + 1 for cap, epochs in rec.calls)  # the periodic rule's last step
    assert free_epochs[0] > 4  # round 1 runs longer uncapped: the cap binds
    assert not np.array_equal(free.note_intercept, pre.note_intercept, equal_nan=True)


def test_harassment_cap_reaches_the_tag_consensus_fit(monkeypatch) -> None:
    m, notes, nsh, enroll = harassed_community()
    rec = _Recorder(monkeypatch, hr)
    cfg = ScoringConfig()
    free = prescore(prepare_inputs(m, notes, nsh, enroll, cfg), core(), cfg)
    (_, free_epochs), *_ = rec.calls
    rec.calls.clear()
    capped = with_overrides(cfg, {"harassment": {"max_epochs": 3}})
    fast = prescore(prepare_inputs(m, notes, nsh, enroll, capped), core(), capped)
    assert rec.calls == [(3, 3)] and free_epochs > 3
    assert not np.array_equal(free.harassment_intercept, fast.harassment_intercept, equal_nan=True)


def test_cli_profile_switch_resolves_to_the_shipped_file(monkeypatch, tmp_path) -> None:
    """``--profile fast`` scores with the file's configuration; ``--config`` adjusts it."""
    import bridgewatch.cli.score as score_cli

    seen = []

    def capture(*args, config, **kwargs):
        seen.append(config)
        raise SystemExit(0)

    monkeypatch.setattr(score_cli, "score_directory", capture)
    extra = tmp_path / "bw.toml"
    extra.write_text("[harassment]\nmax_epochs = 9\n")
    for flags in (["--profile", "fast"], ["--profile", "fast", "--config", str(extra)], []):
        out = tmp_path / f"out{len(seen)}"
        CliRunner().invoke(cli, ["score", str(tmp_path), "-o", str(out), "--quiet", *flags])
    assert seen[0] == load_config(profile="fast")
    assert seen[1] == with_overrides(seen[0], {"harassment": {"max_epochs": 9}})
    assert seen[2] == ScoringConfig()
    bad = CliRunner().invoke(cli, ["score", str(tmp_path), "-o", str(tmp_path / "x"), "--profile", "nosuch"])
    assert bad.exit_code == 2 and "nosuch" in bad.output


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.glob("*.tsv"))}


@pytest.mark.slow
def test_scoring_under_the_profile_is_deterministic(tmp_path) -> None:
    """Same input, seed and profile: the same bytes in every output file."""
    data = tmp_path / "community"
    simulate(config_for_scale("tiny", seed=3), data)
    digests = []
    for run in ("a", "b"):
        out = tmp_path / run
        args = ["score", str(data), "-o", str(out), "--epoch-millis", "1795305600000", "--profile", "fast"]
        result = CliRunner().invoke(cli, [*args, "--quiet", "--no-cache"])
        assert result.exit_code == 0, result.output
        digests.append(_digest(out))
    assert digests[0] and digests[0] == digests[1]
