"""The configuration table: reference defaults, TOML overrides, and clear errors."""

from __future__ import annotations

import pytest

from bridgewatch.errors import ConfigError
from bridgewatch.scoring.config import ScoringConfig, describe, load_config, with_overrides


def test_defaults_are_the_reference_constants() -> None:
    config = load_config()
    assert config.mf.note_intercept_lambda == 0.15
    assert config.mf.user_factor_lambda == 0.03
    assert config.rules.crh_threshold == 0.40
    assert config.rules.firm_reject_threshold == 0.3
    assert config.helpfulness.min_rater_agree_ratio == 0.66
    assert config.filters.min_ratings_per_rater == 10


def test_toml_override_changes_only_named_fields(tmp_path) -> None:
    path = tmp_path / "bw.toml"
    path.write_text("[rules]\ncrh_threshold = 0.45\n[mf]\nmax_iterations = 50\n")
    config = load_config(path)
    assert config.rules.crh_threshold == 0.45
    assert config.mf.max_iterations == 50
    assert config.rules.factor_threshold == ScoringConfig().rules.factor_threshold


def test_int_given_for_float_is_accepted() -> None:
    config = with_overrides(ScoringConfig(), {"rules": {"crh_threshold": 1}})
    assert config.rules.crh_threshold == 1.0
    assert isinstance(config.rules.crh_threshold, float)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"nosuch": {}}, "unknown config section [nosuch]"),
        ({"rules": {"nosuch": 1}}, "unknown config key rules.nosuch"),
        ({"rules": {"crh_threshold": "high"}}, "rules.crh_threshold must be a number"),
        ({"mf": {"max_iterations": 2.5}}, "mf.max_iterations must be an integer"),
        ({"mf": {"num_factors": 0}}, "mf.num_factors must be ≥ 1"),
        ({"mf": {"use_stable_init": 1}}, "mf.use_stable_init must be true or false"),
        ({"helpfulness": {"min_rater_agree_ratio": 1.5}}, "must be ≤ 1"),
        ({"rules": 3}, "config section [rules] must be a table"),
        ({"mf": {"solver": "sgd"}}, "mf.solver must be one of adam, als"),
    ],
)
def test_bad_overrides_name_the_field(overrides, message) -> None:
    with pytest.raises(ConfigError) as info:
        with_overrides(ScoringConfig(), overrides)
    assert message in str(info.value)


def test_bad_toml_file_names_the_file(tmp_path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[rules\n")
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.toml")


def test_every_field_is_documented_with_a_spec_section() -> None:
    rows = describe()
    assert len(rows) > 40
    for name, _value, help_text, spec in rows:
        assert help_text, name
        assert spec.startswith("§") or spec == "ours", name
