"""Evaluation metrics against the truth, on hand-made status and truth tables (boundaries)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bridgewatch.schema import CRH, CRNH, NMR
from bridgewatch.sim import metrics as M
from bridgewatch.sim.eval_table import check_targets, markdown_table

NYH = "NEEDS_YOUR_HELP"


def test_status_rank_orders_not_helpful_below_pending_below_helpful() -> None:
    ranks = M.status_rank(np.array([CRNH, NMR, NYH, CRH, None], dtype=object))
    assert ranks.tolist() == [-1, 0, 0, 1, 0]


def test_up_attack_moves_and_flips() -> None:
    base = np.array([CRNH, CRNH, NMR, NMR, CRH], dtype=object)
    att = np.array([NMR, CRH, CRH, CRNH, NMR], dtype=object)
    shift = M.attack_shift(base, att, np.ones(5, dtype=int))
    # the Helpful note cannot be pushed up: 4 eligible; CRNH->NMR, CRNH->CRH, NMR->CRH moved
    assert (shift.eligible, shift.moved) == (4, 3)
    # only reaching Helpful is a flip
    assert (shift.flip_eligible, shift.flipped) == (4, 2)
    assert shift.rate == 0.75 and shift.flip_rate == 0.5


def test_down_attack_counts_lost_helpful_as_flip() -> None:
    base = np.array([CRH, CRH, NMR, CRNH, CRH], dtype=object)
    att = np.array([NMR, CRH, CRNH, CRNH, CRNH], dtype=object)
    shift = M.attack_shift(base, att, -np.ones(5, dtype=int))
    assert (shift.eligible, shift.moved) == (4, 3)
    assert (shift.flip_eligible, shift.flipped) == (3, 2)


def test_mixed_signs_and_nothing_eligible() -> None:
    ends = np.array([CRH, CRNH], dtype=object)
    shift = M.attack_shift(ends, ends, np.array([1, -1]))  # each already where its attack pushes
    assert (shift.eligible, shift.flip_eligible) == (0, 0)
    assert math.isnan(shift.rate) and math.isnan(shift.flip_rate)
    held = np.array([CRH, CRH], dtype=object)
    shift = M.attack_shift(held, held, np.array([1, -1]))
    assert (shift.eligible, shift.moved, shift.flip_eligible, shift.flipped) == (1, 0, 1, 0)


def test_detection_precision_recall_and_undefined_cases() -> None:
    bad = np.array([1, 1, 1, 0, 0, 0], dtype=bool)
    det = M.detection(np.array([1, 1, 0, 1, 0, 0], dtype=bool), bad)
    assert (det.flagged, det.true_positive, det.actual) == (3, 2, 3)
    assert det.precision == 2 / 3 and det.recall == 2 / 3
    none = M.detection(np.zeros(6, dtype=bool), bad)
    assert math.isnan(none.precision) and none.recall == 0.0
    assert math.isnan(M.detection(bad, np.zeros(6, dtype=bool)).recall)


def test_truth_labels_threshold_is_inclusive_for_helpful_only() -> None:
    left = np.array([0.5, 0.9, 0.49, 0.5, 0.1])
    right = np.array([0.6, 0.4, 0.2, 0.49, 0.49999])
    helpful, not_helpful = M.truth_labels(left, right)
    assert helpful.tolist() == [True, False, False, False, False]
    assert not_helpful.tolist() == [False, False, True, False, True]


def test_honest_accuracy_counts_recall_only_on_scorable_notes() -> None:
    status = np.array([CRH, CRH, NMR, CRNH, CRNH, NMR, CRH], dtype=object)
    helpful = np.array([1, 0, 1, 0, 0, 1, 1], dtype=bool)
    not_helpful = np.array([0, 0, 0, 1, 0, 0, 0], dtype=bool)
    scorable = np.array([1, 1, 1, 1, 1, 0, 0], dtype=bool)
    acc = M.honest_accuracy(status, helpful, not_helpful, scorable)
    assert acc.helpful == 3
    assert acc.helpful_precision == 2 / 3  # notes 0 and 6 are truly helpful, 1 is not
    assert acc.helpful_recall == 1 / 2  # scorable helpful: 0 (CRH) and 2 (NMR); 5, 6 unscorable
    assert acc.not_helpful_precision == 1 / 2 and acc.not_helpful_recall == 1.0


def _row(scenario: str, strength: str, defences: str, **values: float) -> dict[str, object]:
    base: dict[str, object] = {
        "scenario": scenario, "direction": "up", "strength": strength, "defences": defences,
        "attackers": 10, "targets": 20, "eligible": 20, "moved": 0, "success_rate": 0.0,
        "flip_eligible": 20, "flipped": 0, "flip_rate": 0.0, "floor_flipped": 0, "floor_flip_rate": 0.0,
        "attack_flip_eligible": 20, "attack_flipped": 0, "attack_flip_rate": 0.0, "attack_ratings": 200,
        "ratings_per_flip": math.nan, "flagged": 10, "detect_precision": 1.0, "detect_recall": 1.0,
        "recall_pss": 1.0, "recall_quasi_clique": 0.0, "recall_coordinated": 0.0, "recall_surprise": 0.0,
        "help_precision": 0.1,
        "help_recall": 0.2,
        "helpful_scored": 40,
        "helpful_precision": 0.96, "helpful_recall": 0.5, "not_helpful_precision": 0.9,
        "not_helpful_recall": 0.6,
    }  # fmt: skip
    base.update(values)
    return base


def test_target_checks_take_the_worst_row_with_defences_on() -> None:
    table = pd.DataFrame(
        [
            _row("sybil_brigade", "k=10", "on", flipped=1, flip_rate=0.05),
            _row("sybil_brigade", "k=10", "off", flip_rate=0.5, helpful_recall=0.53),
            _row("timing_attack", "k=5", "on", detect_precision=0.9, detect_recall=0.79),
            _row("timing_attack", "k=5", "off", detect_precision=math.nan, helpful_recall=0.52),
        ]
    )
    checks = {c.target: c for c in check_targets(table)}
    assert checks["10 sybil accounts flip < 1% of targets"].met is False
    assert checks["5–20% bloc suppresses < 1% of helpful targets (vs members rating sincerely)"].met is None
    assert checks["Helpful precision >= 0.95"].met is True
    cost = checks["defences cost Helpful recall <= 2 points"]
    assert cost.met is False and cost.measured == "0.030"
    assert checks["detection precision >= 0.9 (timing, ring)"].met is True  # 0.9 is enough
    assert checks["detection recall >= 0.8 (timing, ring)"].met is False
    md = markdown_table(table)
    assert md.count("\n") == 6 and "5% (1/20)" in md and "—" in md


def test_bloc_target_is_judged_against_its_members_abstaining() -> None:
    # the bloc's withheld sincere votes cost 2 of 20 targets (the floor no defence can undo); its
    # ratings, once discounted, cost none of the 18 Helpful without them
    bloc = {"flipped": 2, "flip_rate": 0.1, "floor_flipped": 2, "floor_flip_rate": 0.1,
            "attack_flip_eligible": 18}  # fmt: skip
    table = pd.DataFrame(
        [
            _row("coordinated_bloc", "p=10%", "on", **bloc),
            _row(
                "coordinated_bloc",
                "p=10%",
                "off",
                flipped=20,
                flip_rate=1.0,
                attack_flipped=18,
                attack_flip_rate=1.0,
            ),
        ]
    )
    checks = {c.target: c for c in check_targets(table)}
    assert checks["5–20% bloc's ratings suppress < 1% of helpful targets (vs members abstaining)"].met is True
    sincere = checks["5–20% bloc suppresses < 1% of helpful targets (vs members rating sincerely)"]
    assert sincere.met is False and sincere.measured == "0.100"
    md = markdown_table(table)
    assert "| 0% (0/18) |" in md and "| 10% (2/20) | 10% (2/20) |" in md
