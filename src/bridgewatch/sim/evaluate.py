"""The attack evaluation sweep behind ``bridgewatch evaluate`` (issue 5 item 6).

For each scenario of ``sim.attacks.SCENARIOS`` and each strength, one community is simulated with
the attack and one without it (strength 0: same seed, same targets, same honest ratings); both are
scored with the defences on (post-selection similarity, quasi-clique NoCorrelated refit,
Bridgewatch's coordinated groups, and concerted surprise, which ``bridgewatch evaluate`` turns on
(``--no-surprise`` off; ``score``'s default is on too), unless ``--config`` turns them off, the
helpfulness filter) and off. A row of the result says how many targets moved in the attacker's direction, what
that cost in attack ratings, how well the defences' flags found the attackers, and how well the
honest notes were scored (``sim.metrics``).

Two counterfactuals. ``flipped`` compares with the no-attack twin, where the attackers' accounts
rate as honest people (a bloc's members rate the targets they would have rated, sincerely). The
same community with every attack rating removed (``campaign=False``: the attackers abstain on the
targets) gives ``floor_flipped`` (what even a perfect discount loses: a bloc's withheld sincere
votes, which no defence can restore) and ``attack_flipped``: targets Helpful when the attackers
abstain that the attack ratings push out (an "up" attack: into Helpful), the damage the ratings
themselves do and the one a defence can undo. Issue 5's bloc target is judged on ``attack_flipped``
(``eval_table``); both numbers are in the table.

Statuses are the meta scorer's ``preStabilizationRatingStatus``: the status the ratings support,
before the 14-day lock and the stabilization delay, which would otherwise hide any change a single
scoring run could make. All runs score at the same "now" (the simulation's end plus an hour).
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bridgewatch.errors import ConfigError
from bridgewatch.io import read_dataset
from bridgewatch.io.matrix import RatingMatrix
from bridgewatch.runner import run_integrity, scoring_filters
from bridgewatch.scoring.config import ScoringConfig
from bridgewatch.scoring.pipeline import score_dataset
from bridgewatch.scoring.scorer_run import expand_prescore
from bridgewatch.scoring.scorer_specs import core, default_scorers
from bridgewatch.sim import metrics as M
from bridgewatch.sim.attacks import SCENARIOS
from bridgewatch.sim.config import config_for_scale
from bridgewatch.sim.simulate import META_FILE, TRUTH_FILE, simulate

Progress = Callable[[str], None]
FLAGS = ("pss", "quasiClique", "coordinated", "surprise", "helpfulness")  # who each defence singled out
DETECTORS = FLAGS[:4]  # the integrity detectors; the helpfulness filter is reported apart
HOUR = 3_600_000
MIN_RATINGS = 5  # notes with fewer ratings cannot get any status (minRatingsNeeded)

# scenario -> (knob of SimConfig.attack_params, table symbol, default strengths, direction)
SWEEP: dict[str, tuple[str, str, tuple[float, ...], str]] = {
    "sybil_brigade": ("accounts", "k", (5, 10, 20), "up"),
    "coordinated_bloc": ("bloc_frac", "p", (0.05, 0.10, 0.20), "down"),
    "stealth_bloc": ("bloc_frac", "p", (0.05, 0.10, 0.20), "down"),
    "slow_infiltration": ("accounts", "k", (5, 10, 20), "up"),
    "author_ring": ("accounts", "k", (4, 8, 16), "up"),
    "timing_attack": ("accounts", "k", (5, 10, 20), "up"),
}
TARGETS = {"tiny": 20, "small": 100}  # target notes per scenario (at most notes / 4)


@dataclass(frozen=True)
class Outcome:
    """One scored dataset: statuses by note id, the defences' flags by rater id."""

    status: pd.Series  # noteId -> status name
    flags: pd.DataFrame  # index raterParticipantId; bool columns of FLAGS


@dataclass(frozen=True)
class Row:
    """One line of the evaluation table (NaN: undefined, e.g. no flips to divide by)."""

    scenario: str
    direction: str
    strength: str
    defences: str
    attackers: int
    targets: int
    eligible: int
    moved: int
    success_rate: float
    flip_eligible: int
    flipped: int
    flip_rate: float
    floor_flipped: int  # flipped once every attack rating is removed (perfect discount; NaN rate: not run)
    floor_flip_rate: float
    attack_flip_eligible: int  # against the attackers abstaining (every attack rating removed)
    attack_flipped: int
    attack_flip_rate: float
    attack_ratings: int
    ratings_per_flip: float
    flagged: int
    detect_precision: float
    detect_recall: float
    recall_pss: float
    recall_quasi_clique: float
    recall_coordinated: float
    recall_surprise: float
    help_precision: float
    help_recall: float
    helpful_scored: int
    helpful_precision: float
    helpful_recall: float
    not_helpful_precision: float
    not_helpful_recall: float


def strength_label(scenario: str, value: float) -> str:
    knob, symbol, _, _ = SWEEP[scenario]
    return f"{symbol}={value:.0%}" if knob.endswith("frac") else f"{symbol}={value:g}"


def _digest(data_dir: Path) -> str:
    """Hash of the public files (not the truth): equal communities are scored once."""
    h = hashlib.sha256()
    for path in sorted(data_dir.iterdir()):
        if path.name not in (TRUTH_FILE, META_FILE):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def score_outcome(
    data_dir: Path,
    *,
    defences: bool,
    scorers: str,
    epoch_millis: int,
    seed: int,
    campaign: bool = True,
    config: ScoringConfig | None = None,
    withhold: np.ndarray | None = None,
) -> Outcome:
    """Score ``data_dir`` with the defences on or off (off: no PSS, no quasi-cliques, no
    coordinated groups, and every scorer without its helpfulness filter); ``scorers``: ``core``
    or ``all``. ``campaign=False`` first removes every attacker rating of a target (the truth says
    which): what a perfect defence would leave, the attackers' withheld sincere votes still missing.
    ``config``: the scoring configuration (default: the defaults), e.g. which defences "on" means.
    ``withhold``: bool[R] over the ratings as ``read_dataset`` orders them, more ratings to remove
    (``bench/stealth_oracle.py``: what a detector that caught only some attackers would leave).
    """
    dataset = read_dataset(data_dir)
    hit = np.zeros(dataset.ratings.n_ratings, dtype=bool) if withhold is None else withhold.copy()
    if not campaign:
        notes, raters = read_truth(data_dir)
        hit |= _campaign(dataset.ratings, notes.index[notes["isAttackTarget"] == "1"],
                         raters.index[raters["isBadActor"] == "1"])  # fmt: skip
    if hit.any():
        dataset = replace(dataset, ratings=dataset.ratings.subset(~hit))
    config = (config or ScoringConfig()).validate()
    specs = [core()] if scorers == "core" else default_scorers()
    m = dataset.ratings
    flags = pd.DataFrame(False, index=pd.Index(m.rater_ids, name="raterParticipantId"),
                         columns=list(FLAGS))  # fmt: skip
    filters: dict[str, np.ndarray] = {}
    if defences:
        found = run_integrity(dataset, config)
        filters = scoring_filters(dataset, found, config)
        # participant arrays hold the matrix's raters first
        flags["pss"] = found.post_selection_value[: m.n_raters] > 0
        flags["quasiClique"] = found.quasi_clique_value[: m.n_raters] > 0
        if found.coordinated_value is not None:
            flags["coordinated"] = found.coordinated_value[: m.n_raters] > 0
        if found.surprise_value is not None:
            flags["surprise"] = found.surprise_value[: m.n_raters] > 0
    else:
        specs = [replace(s, use_reputation=False) for s in specs]
    result = score_dataset(
        dataset, epoch_millis=epoch_millis, config=config, seed=seed, scorers=specs, **filters
    )  # fmt: skip
    core_run = result.runs.get("MFCoreScorer")
    if defences and core_run is not None:
        pre = expand_prescore(core_run.pre)  # (kept packed by the pipeline)
        # raters fitted in round 1 but left out of round 2: the helpfulness filter dropped them
        # (a subset matrix keeps the whole id map, so indices are the dataset's)
        dropped = ~np.isnan(pre.first_round.rater_intercept) & ~pre.helpful_raters
        flags.loc[m.rater_ids[dropped], "helpfulness"] = True
    aux = result.aux_note_info
    status = pd.Series(aux["preStabilizationRatingStatus"].to_numpy(dtype=object), index=aux["noteId"])
    return Outcome(status, flags)


def read_truth(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(notes, raters) of ``truth.tsv``: notes indexed by int64 noteId, raters by participant id."""
    t = pd.read_csv(data_dir / TRUTH_FILE, sep="\t", dtype=str, keep_default_na=False)
    notes = t[t["kind"] == "note"].set_index(t.loc[t["kind"] == "note", "id"].astype(np.int64))
    raters = t[t["kind"] == "rater"].set_index("id")
    return notes, raters


def _campaign(m: RatingMatrix, targets: pd.Index, bad: pd.Index) -> np.ndarray:
    """bool[R]: ratings by attackers (``bad`` participant ids) on targets (``targets`` note ids)."""
    on_target = np.isin(m.note_ids, targets.to_numpy(np.int64))[m.note]
    by_bad = np.isin(m.rater_ids, bad.to_numpy(dtype=object))[m.rater]
    return on_target & by_bad


def _attack_ratings(data_dir: Path, targets: pd.Index, bad: pd.Index) -> tuple[int, pd.Index]:
    """(ratings by attackers on targets, attackers who cast at least one) from the ratings files."""
    m = read_dataset(data_dir).ratings
    hit = _campaign(m, targets, bad)
    return int(hit.sum()), pd.Index(np.unique(m.rater_ids[m.rater[hit]]))


def _fmt_label(defences: bool) -> str:
    return "on" if defences else "off"


def evaluate_level(
    base_dir: Path,
    attack_dir: Path,
    scenario: str,
    strength: str,
    outcomes: Callable[[Path, bool, bool], Outcome],
) -> list[Row]:
    """Rows (defences on, off) comparing ``attack_dir`` against its no-attack twin ``base_dir``.

    ``outcomes(path, defences, campaign)``: the scored outcome (``score_outcome``).
    """
    notes, raters = read_truth(attack_dir)
    is_target = notes["isAttackTarget"] == "1"
    targets = notes.index[is_target]
    sign = np.where(notes.loc[is_target, "attackDirection"] == "down", -1, 1)
    bad = raters.index[raters["isBadActor"] == "1"]
    attack_ratings, active = _attack_ratings(attack_dir, targets, bad)
    honest = notes[~is_target]
    camps = honest[["campHelpfulLeft", "campHelpfulRight"]].astype(float).to_numpy()
    helpful, not_helpful = M.truth_labels(camps[:, 0], camps[:, 1])
    scorable = honest["numRatings"].astype(int).to_numpy() >= MIN_RATINGS
    direction = str(notes.loc[is_target, "attackDirection"].iloc[0]) if len(targets) else ""
    rows = []
    for defences in (True, False):
        base, att = outcomes(base_dir, defences, True), outcomes(attack_dir, defences, True)
        before, after = base.status.reindex(targets), att.status.reindex(targets)
        shift = M.attack_shift(before.to_numpy(), after.to_numpy(), sign)
        floor = by_ratings = M.Shift(0, 0, 0, 0)
        if attack_ratings:
            without = outcomes(attack_dir, defences, False).status.reindex(targets).to_numpy()
            floor = M.attack_shift(before.to_numpy(), without, sign)
            by_ratings = M.attack_shift(without, after.to_numpy(), sign)
        flags = att.flags.reindex(raters.index, fill_value=False)
        truth_bad = raters.index.isin(active)
        # Detection: the integrity flags. The helpfulness filter drops many honest raters with few
        # or unusual ratings too, so it is reported on its own, not folded into detection.
        det = M.detection(flags[list(DETECTORS)].any(axis=1).to_numpy(), truth_bad)
        helpfulness = M.detection(flags["helpfulness"].to_numpy(), truth_bad)
        acc = M.honest_accuracy(att.status.reindex(honest.index).to_numpy(), helpful, not_helpful, scorable)
        on = defences and len(active) > 0
        # fmt: off
        rows.append(
            Row(
                scenario, direction, strength, _fmt_label(defences), len(active), len(targets),
                shift.eligible, shift.moved, shift.rate, shift.flip_eligible, shift.flipped, shift.flip_rate,
                floor.flipped, floor.flip_rate,
                by_ratings.flip_eligible, by_ratings.flipped, by_ratings.flip_rate,
                attack_ratings, M.ratio(attack_ratings, shift.flipped) if shift.flipped else math.nan,
                det.flagged if defences else 0,
                det.precision if on else math.nan, det.recall if on else math.nan,
                *(M.detection(flags[c].to_numpy(), truth_bad).recall if on else math.nan
                  for c in DETECTORS),
                helpfulness.precision if on else math.nan, helpfulness.recall if on else math.nan,
                acc.helpful, acc.helpful_precision, acc.helpful_recall,
                acc.not_helpful_precision, acc.not_helpful_recall,
            )
        )
        # fmt: on
    return rows


class _Scores:
    """Scored outcomes keyed by the content of the public files and the defence setting."""

    def __init__(self, scorers: str, progress: Progress | None, config: ScoringConfig | None = None) -> None:
        self.scorers, self.progress, self.config = scorers, progress, config
        self.cache: dict[tuple[str, bool, bool], Outcome] = {}

    def get(self, path: Path, defences: bool, campaign: bool, now: int) -> Outcome:
        key = (_digest(path), defences, campaign)
        if key not in self.cache:
            if self.progress is not None:
                what = "" if campaign else " without attack ratings"
                self.progress(f"score {path.parent.name} {path.name}{what} defences {_fmt_label(defences)}")
            self.cache[key] = score_outcome(
                path,
                defences=defences,
                scorers=self.scorers,
                epoch_millis=now,
                seed=42,
                campaign=campaign,
                config=self.config,
            )
        return self.cache[key]


def _simulate(
    root: Path,
    scale: str,
    seed: int,
    name: str,
    value: float,
    attacked: bool,
    targets: int,
    overrides: Mapping[str, Any],
) -> tuple[Path, int]:
    """Simulate ``name`` at ``value`` (or its no-attack twin); return the directory and "now"."""
    knob, _, _, direction = SWEEP[name]
    cfg = config_for_scale(
        scale,
        seed=seed,
        attack=name,
        attack_strength=1.0 if attacked else 0.0,
        attack_targets=targets,
        attack_direction=direction,
        attack_params={knob: value},
        **overrides,
    )
    out = root / name / (f"{value:g}" if attacked else "base")
    simulate(cfg, out)
    return out, cfg.end_millis + HOUR


def run_evaluation(
    *,
    scale: str = "tiny",
    seed: int = 0,
    scenarios: Sequence[str] | None = None,
    strengths: Sequence[float] | None = None,
    targets: int | None = None,
    scorers: str = "core",
    workdir: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    config: ScoringConfig | None = None,
) -> pd.DataFrame:
    """The evaluation table (one row per scenario, strength and defence setting).

    ``strengths`` overrides every scenario's default sweep (``SWEEP``) with the same values;
    ``workdir`` keeps the simulated communities (else a temporary directory is used);
    ``overrides``: other ``SimConfig`` fields for every community (e.g. a smaller ``notes``);
    ``config``: the scoring configuration (default: the defaults).
    """
    names = list(scenarios) if scenarios else list(SWEEP)
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        raise ConfigError(f"unknown scenarios {unknown}; known: {', '.join(sorted(SCENARIOS))}")
    if scorers not in ("core", "all"):
        raise ConfigError(f"scorers must be 'core' or 'all' (got {scorers!r})")
    n_targets = targets if targets is not None else TARGETS.get(scale, 100)
    scores = _Scores(scorers, progress, config)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bw-evaluate-") as tmp:
        root = Path(workdir) if workdir is not None else Path(tmp)
        for name in names:
            levels = list(strengths) if strengths else list(SWEEP[name][2])
            if progress is not None:
                progress(f"simulate {name}")
            base, now = _simulate(root, scale, seed, name, levels[0], False, n_targets, overrides or {})
            for value in levels:
                path, _ = _simulate(root, scale, seed, name, value, True, n_targets, overrides or {})
                label = strength_label(name, value)
                rows += evaluate_level(
                    base, path, name, label, lambda p, d, c, now=now: scores.get(p, d, c, now)
                )
    return pd.DataFrame([asdict(r) for r in rows])
