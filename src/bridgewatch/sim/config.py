"""What a simulated community looks like: one frozen config, named scales, explicit overrides.

Every knob of the generator lives here so that a run is reproduced from ``(config, seed)`` alone
(the config is written to ``meta.json`` beside the data). Scales are presets of size only; the
shape of the community (polarization, noise, shares) is the same at every scale.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from bridgewatch.errors import ConfigError

DAY_MILLIS = 86_400_000
# 2026-05-24 00:00 UTC + 180 days, the golden cases' end (ms); a fixed default keeps runs stable.
DEFAULT_END_MILLIS = 1_795_132_800_000

# name -> (notes, raters, ratings, days)
SCALES: dict[str, tuple[int, int, int, float]] = {
    "tiny": (300, 1_500, 10_000, 90.0),
    "small": (5_000, 20_000, 300_000, 180.0),
    "medium": (20_000, 100_000, 2_000_000, 180.0),
    "large": (200_000, 500_000, 20_000_000, 365.0),
    "public": (2_500_000, 1_400_000, 206_000_000, 1_600.0),
}


@dataclass(frozen=True)
class SimConfig:
    """Parameters of one simulated community (sizes, latent model, shares, attack).

    The latent rating model: a rater ``u`` rates note ``n`` with
    ``z = quality_n + leniency_u + slant_weight * <viewpoint_u, slant_n> + noise`` (logistic noise of
    scale ``noise``) and answers NOT_HELPFUL below ``threshold_low``, HELPFUL above
    ``threshold_high``, SOMEWHAT_HELPFUL between.
    """

    scale: str = "tiny"
    seed: int = 0
    notes: int = 300
    raters: int = 1_500
    ratings: int = 10_000
    days: float = 90.0
    end_millis: int = DEFAULT_END_MILLIS
    dims: int = 1  # viewpoint / slant dimensions (1 or 2)
    polarization: float = 0.7  # 0: one centred crowd; 1: two separated camps on axis 1
    slant_weight: float = 2.0
    noise: float = 0.45
    quality_mean: float = -0.1
    threshold_low: float = -0.1
    threshold_high: float = 0.55
    leniency_sd: float = 0.3
    activity_sigma: float = 1.3  # lognormal sigma of rater activity (heavy tail)
    note_popularity_sigma: float = 0.9  # lognormal sigma of ratings per note
    notes_per_post: float = 1.9
    not_misleading_frac: float = 0.1
    low_diligence_frac: float = 0.04
    population_sampled_frac: float = 0.03
    regional_frac: float = 0.3  # notes whose raters come mostly from one modeling group
    regional_share: float = 0.6  # share of a regional note's ratings drawn from its home group
    topic_frac: float = 0.12  # posts about one of the reference's seed topics (§6.3)
    url_frac: float = 0.7
    nsh_lag_minutes: float = 60.0  # the prior scoring run ended this long before end_millis
    ratings_per_shard: int = 0  # 0: one ratings file; else roll to a new shard past this many
    block_ratings: int = 1_000_000  # ratings generated per block (fixed: part of the output's identity)
    attack: str | None = None
    attack_strength: float = 1.0
    attack_targets: int = 5
    attack_direction: str = "up"
    attack_params: tuple[tuple[str, float], ...] = field(default=())

    @property
    def start_millis(self) -> int:
        """First possible note time, ms since the epoch."""
        return int(self.end_millis - round(self.days * DAY_MILLIS))

    @property
    def prior_run_millis(self) -> int:
        """Time of the simulated prior scoring run that wrote the status history."""
        return int(self.end_millis - round(self.nsh_lag_minutes * 60_000))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able mapping, sorted keys (for ``meta.json``)."""
        out = dataclasses.asdict(self)
        out["attack_params"] = {k: v for k, v in self.attack_params}
        return dict(sorted(out.items()))


_FRACTIONS = (
    "polarization",
    "not_misleading_frac",
    "low_diligence_frac",
    "population_sampled_frac",
    "regional_frac",
    "regional_share",
    "topic_frac",
    "url_frac",
)


def validate(cfg: SimConfig) -> SimConfig:
    """Raise ``ConfigError`` for a config the generator cannot honour; return it unchanged."""
    if cfg.notes <= 0 or cfg.raters <= 1 or cfg.ratings < 0:
        raise ConfigError(
            f"need notes > 0, raters > 1, ratings >= 0 (got {cfg.notes}, {cfg.raters}, {cfg.ratings})"
        )
    if cfg.ratings > cfg.notes * cfg.raters // 2:
        raise ConfigError(f"{cfg.ratings} ratings cannot fit {cfg.notes} notes x {cfg.raters} raters")
    if cfg.days <= 1:
        raise ConfigError(f"days must be > 1 (got {cfg.days})")
    if cfg.dims not in (1, 2):
        raise ConfigError(f"dims must be 1 or 2 (got {cfg.dims})")
    for name in _FRACTIONS:
        value = getattr(cfg, name)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{name} must be within [0, 1] (got {value})")
    if cfg.threshold_low >= cfg.threshold_high:
        raise ConfigError("threshold_low must be below threshold_high")
    if cfg.noise <= 0 or cfg.activity_sigma < 0 or cfg.note_popularity_sigma < 0:
        raise ConfigError("noise must be > 0 and the sigmas >= 0")
    if cfg.block_ratings < 1_000 or cfg.ratings_per_shard < 0:
        raise ConfigError("block_ratings must be >= 1000 and ratings_per_shard >= 0")
    if not 0 <= cfg.seed < 2**63:
        raise ConfigError(f"seed must be a non-negative 63-bit integer (got {cfg.seed})")
    if cfg.attack is not None:
        from bridgewatch.sim.attacks import SCENARIOS

        if cfg.attack not in SCENARIOS:
            raise ConfigError(f"unknown attack {cfg.attack!r}; known: {', '.join(sorted(SCENARIOS))}")
        SCENARIOS[cfg.attack].check(cfg)
    return cfg


def config_for_scale(scale: str = "tiny", seed: int = 0, **overrides: Any) -> SimConfig:
    """The preset ``scale`` with ``overrides`` (None values ignored), validated.

    Scales above ``medium`` write ratings in shards of 20M rows, as X's public dump does.
    """
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; known: {', '.join(SCALES)}")
    notes, raters, ratings, days = SCALES[scale]
    base: dict[str, Any] = {
        "scale": scale,
        "seed": seed,
        "notes": notes,
        "raters": raters,
        "ratings": ratings,
        "days": days,
        "ratings_per_shard": 20_000_000 if scale in ("large", "public") else 0,
    }
    names = {f.name for f in dataclasses.fields(SimConfig)}
    for key, value in overrides.items():
        if key not in names:
            raise ConfigError(f"unknown simulation parameter {key!r}")
        if value is not None:
            base[key] = (
                tuple(sorted(value.items())) if key == "attack_params" and isinstance(value, dict) else value
            )
    return validate(SimConfig(**base))
