"""Boundary and ordering tests for the §3.1 status rule chain."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bridgewatch.schema import Status
from bridgewatch.scoring.config import RuleConfig
from bridgewatch.scoring.rules import (
    NO_STATUS,
    Rule,
    RuleInputs,
    active_rule_strings,
    compute_statuses,
    note_counts_by_rater_sign,
)

CORE = RuleConfig()
NMR, CRH, CRNH, FR, NYH = (
    Status.NMR,
    Status.CRH,
    Status.CRNH,
    Status.FIRM_REJECT,
    Status.NEEDS_YOUR_HELP,
)


def one(final: bool = True, rules: RuleConfig = CORE, **kw) -> tuple[int, str]:
    """Score a single note; defaults describe a plain misleading note with 10 ratings."""
    base = {"intercept": 0.0, "factor": 0.0, "num_ratings": 10, "is_not_misleading": False}
    base.update(kw)
    arrays = {}
    for k, v in base.items():
        if v is None:
            arrays[k] = None
        elif isinstance(v, str):
            arrays[k] = np.array([v], dtype=object)
        else:
            arrays[k] = np.array([v])
    res = compute_statuses(RuleInputs(**arrays), rules, final_round=final)
    return int(res.status[0]), res.active_rules[0]


@pytest.mark.parametrize(
    ("intercept", "ratings", "nm", "expected"),
    [
        (0.40, 5, False, CRH),  # exactly the threshold counts
        (0.3999999, 5, False, NMR),
        (0.40, 4, False, NMR),  # too few ratings
        (0.80, 5, True, NMR),  # NM notes never CRH
        (np.nan, 50, False, NMR),  # not in the fit
    ],
)
def test_general_crh_boundary(intercept, ratings, nm, expected):
    status, _ = one(final=False, intercept=intercept, num_ratings=ratings, is_not_misleading=nm)
    assert status == expected


@pytest.mark.parametrize(
    ("intercept", "factor", "expected"),
    [
        (-0.05, 0.0, CRNH),
        (-0.0499, 0.0, NMR),
        (-0.45, 0.5, CRNH),  # -0.05 - 0.8*0.5 = -0.45
        (-0.449, 0.5, NMR),
        (-0.45, -0.5, CRNH),  # |f| is used
    ],
)
def test_general_crnh_diamond(intercept, factor, expected):
    status, rules = one(final=False, intercept=intercept, factor=factor)
    assert status == expected
    assert ("GeneralCRNH (v1.0)" in rules) == (expected == CRNH)


def test_general_crnh_needs_five_ratings():
    assert one(final=False, intercept=-1.0, num_ratings=4)[0] == NMR


@pytest.mark.parametrize(("intercept", "expected"), [(-0.15, NMR), (-0.1500001, CRNH)])
def test_nm_crnh_strict(intercept, expected):
    # factor large so GeneralCRNH (≤ -0.05 - 0.8|f|) does not fire
    status, _ = one(final=False, intercept=intercept, factor=1.0, is_not_misleading=True)
    assert status == expected


def test_nm_crnh_ignores_rating_count():
    status, rules = one(final=False, intercept=-0.2, factor=1.0, is_not_misleading=True, num_ratings=0)
    assert status == CRNH and rules == "InitialNMR (v1.0),NmCRNH (v1.0)"


def test_nm_crnh_only_for_nm_notes():
    assert one(final=False, intercept=-0.2, factor=1.0, is_not_misleading=False)[0] == NMR


@pytest.mark.parametrize(("upper", "expected"), [(-0.04, NMR), (-0.0400001, CRNH), (np.nan, NMR)])
def test_ucb_crnh(upper, expected):
    assert one(final=False, intercept=0.1, intercept_max=upper)[0] == expected


def test_ucb_absent_means_off():
    _, rules = one(final=False, intercept=0.1, intercept_max=None)
    assert "UcbCRNH" not in rules


def ratio_kw(neg, pos, min_sign=3):
    return {
        "min_sign_count": min_sign,
        "neg_mean_helpful": np.float32(neg),
        "pos_mean_helpful": np.float32(pos),
        "net_min_helpful": 20,
        "net_min_helpful_ratio": np.float32(0.5),
    }


@pytest.mark.parametrize(
    ("neg", "pos", "min_sign", "expected"),
    [
        (0.2, 0.4, 3, CRNH),  # side exactly 0.4, average exactly 0.3
        (0.2, 0.41, 3, NMR),  # one side above 0.4
        (0.25, 0.4, 3, NMR),  # average 0.325 > 0.3
        (0.2, 0.4, 2, NMR),  # too few raters on a side
        (np.nan, 0.1, 3, NMR),  # a side with no ratings
    ],
)
def test_ratio_crnh(neg, pos, min_sign, expected):
    status, _ = one(final=True, intercept=0.35, **ratio_kw(neg, pos, min_sign))
    assert status == expected


def test_ratio_crnh_is_final_round_only():
    assert one(final=False, intercept=0.1, **ratio_kw(0.0, 0.0))[0] == NMR


@pytest.mark.parametrize(
    ("intercept", "previous", "expected"),
    [
        (0.39, CRH, CRH),  # 0.40 - 0.01
        (0.3899, CRH, NMR),
        (0.39, NMR, NMR),
        (0.39, NO_STATUS, NMR),
    ],
)
def test_inertia(intercept, previous, expected):
    status, _ = one(intercept=intercept, previous_status=previous)
    assert status == expected


def test_inertia_not_for_nm_notes():
    assert one(intercept=0.395, previous_status=CRH, is_not_misleading=True)[0] == NMR


def test_inertia_overrides_ratio_crnh():
    # Inertia applies to any note not CRH at that point, CRNH included (as the reference does).
    status, rules = one(intercept=0.395, previous_status=CRH, **ratio_kw(0.1, 0.1))
    assert status == CRH and "RatioCRNH (v1.0),GeneralCRHInertia (v1.0)" in rules


@pytest.mark.parametrize(("intercept", "expected"), [(0.3, NMR), (0.2999, FR), (-0.04, FR)])
def test_reject_low_intercept(intercept, expected):
    assert one(intercept=intercept, factor=0.0)[0] == expected


def test_reject_low_intercept_off_without_firm_reject():
    rules = dataclasses.replace(CORE, firm_reject_threshold=None)
    assert one(intercept=0.1, rules=rules)[0] == NMR


def test_crnh_not_overridden_by_filters():
    status, rules = one(
        intercept=-0.5,
        tag_filtered=True,
        filter_tags="notHelpfulIncorrect",
        incorrect_filtered=True,
        low_diligence_intercept=1.0,
    )
    assert status == CRNH
    assert rules == "InitialNMR (v1.0),GeneralCRNH (v1.0)"


def test_filters_firm_reject_or_nmr():
    for rule_kw, name in [
        ({"tag_filtered": True, "filter_tags": "notHelpfulOutdated"}, "TagFilter (v1.0)"),
        ({"incorrect_filtered": True}, "FilterIncorrect (v1.0)"),
        ({"low_diligence_intercept": 0.2631}, "FilterLowDiligence (v1.0)"),
    ]:
        status, rules = one(intercept=0.5, **rule_kw)
        assert status == FR and rules == f"InitialNMR (v1.0),GeneralCRH (v1.0),{name}"
        no_fr = dataclasses.replace(CORE, firm_reject_threshold=None)
        assert one(intercept=0.5, rules=no_fr, **rule_kw)[0] == NMR


@pytest.mark.parametrize(("value", "expected"), [(0.263, CRH), (0.2631, FR), (np.nan, CRH)])
def test_low_diligence_boundary(value, expected):
    assert one(intercept=0.5, low_diligence_intercept=value)[0] == expected


def test_tag_filter_records_tags_only_when_applied():
    inputs = RuleInputs(
        intercept=np.array([0.5, -0.5]),
        factor=np.zeros(2),
        num_ratings=np.array([10, 10]),
        is_not_misleading=np.zeros(2, dtype=bool),
        tag_filtered=np.array([True, True]),
        filter_tags=np.array(["notHelpfulIncorrect,notHelpfulOutdated", "notHelpfulOffTopic"], dtype=object),
    )
    res = compute_statuses(inputs, CORE, final_round=True)
    assert list(res.active_filter_tags) == ["notHelpfulIncorrect,notHelpfulOutdated", ""]


@pytest.mark.parametrize(("factor", "expected"), [(0.5, CRH), (0.5001, FR), (-0.5001, FR)])
def test_large_factor(factor, expected):
    assert one(intercept=0.8, factor=factor)[0] == expected


def test_large_factor_only_touches_crh():
    # An NMR note with a big factor and intercept in (0.3, 0.4) stays NMR.
    assert one(intercept=0.35, factor=0.9)[0] == NMR


def nh_kw(net, ratio):
    return {
        "min_sign_count": 5,
        "neg_mean_helpful": np.float32(0.9),
        "pos_mean_helpful": np.float32(0.9),
        "net_min_helpful": net,
        "net_min_helpful_ratio": np.float32(ratio),
    }


@pytest.mark.parametrize(
    ("net", "ratio", "expected", "rule"),
    [
        (3, 0.5, NYH, "MinMinorityRaters"),
        (4, 0.05, CRH, None),  # ratio exactly 0.05 passes
        (4, 0.049, NYH, "RaterBalance"),
        (9, 0.01, NYH, "RaterBalance"),
        (10, 0.01, CRH, None),  # ≥ 10 net helpful on both sides is enough
    ],
)
def test_net_helpful_rules(net, ratio, expected, rule):
    status, rules = one(intercept=0.5, **nh_kw(net, ratio))
    assert status == expected
    if rule:
        assert rules.endswith(f"{rule} (v1.0)")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("intercept_no_high_vol", 0.37, CRH),
        ("intercept_no_high_vol", 0.3699, NYH),
        ("intercept_no_correlated", 0.37, CRH),
        ("intercept_no_correlated", 0.3699, NYH),
        ("intercept_no_correlated", np.nan, CRH),
    ],
)
def test_no_high_vol_and_no_correlated(field, value, expected):
    assert one(intercept=0.5, **{field: value})[0] == expected


def test_nyh_rules_only_once():
    status, rules = one(
        intercept=0.5, intercept_no_high_vol=0.1, intercept_no_correlated=0.1, **nh_kw(0, 0.0)
    )
    assert status == NYH
    assert rules == "InitialNMR (v1.0),GeneralCRH (v1.0),MinMinorityRaters (v1.0)"


def test_later_rule_wins_and_deciding_rule():
    inputs = RuleInputs(
        intercept=np.array([0.5, 0.5, -1.0, np.nan]),
        factor=np.array([0.0, 0.7, 0.0, np.nan]),
        num_ratings=np.array([10, 10, 10, 0]),
        is_not_misleading=np.array([False, False, True, False]),
    )
    res = compute_statuses(inputs, CORE, final_round=True)
    assert list(res.status) == [CRH, FR, CRNH, NMR]
    assert list(res.deciding_rule) == [
        Rule.GENERAL_CRH,
        Rule.FILTER_LARGE_FACTOR,
        Rule.NM_CRNH,
        Rule.INITIAL_NMR,
    ]
    assert res.active_rules == [
        "InitialNMR (v1.0),GeneralCRH (v1.0)",
        "InitialNMR (v1.0),GeneralCRH (v1.0),FilterLargeFactor (v1.0)",
        "InitialNMR (v1.0),GeneralCRNH (v1.0),NmCRNH (v1.0)",
        "InitialNMR (v1.0)",
    ]
    assert list(res.deciding_rule_names())[1] == "FilterLargeFactor (v1.0)"


def test_float32_inputs_compare_in_float32():
    # float32(0.4) is slightly above 0.4 in float64; the reference compares float32 columns in float32.
    assert one(final=False, intercept=np.float32(0.4))[0] == CRH


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="factor"):
        compute_statuses(
            RuleInputs(np.zeros(2), np.zeros(3), np.zeros(2, int), np.zeros(2, bool)), CORE, final_round=False
        )


def test_active_rule_strings_unique_masks():
    masks = np.array([1, 3, 1, 0], dtype=np.uint32)
    assert list(active_rule_strings(masks)) == [
        "InitialNMR (v1.0)",
        "InitialNMR (v1.0),GeneralCRH (v1.0)",
        "InitialNMR (v1.0)",
        "",
    ]


def test_note_counts_by_rater_sign():
    note = np.array([0, 0, 0, 0, 0, 1, 1, 2])
    factor = np.array([-0.5, -0.1, 0.0, 0.3, np.nan, 0.2, 0.4, np.nan])
    helpful = np.array([1.0, 0.5, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    sc = note_counts_by_rater_sign(note, factor, helpful, n_notes=4)
    assert list(sc.neg_count) == [2, 0, 0, 0]
    assert list(sc.pos_count) == [2, 2, 0, 0]
    assert list(sc.min_sign_count) == [2, 0, 0, 0]
    np.testing.assert_allclose(sc.neg_mean_helpful, [0.75, np.nan, np.nan, np.nan])
    np.testing.assert_allclose(sc.pos_mean_helpful, [0.5, 1.0, np.nan, np.nan])
    # note 0: neg net = 1 - 0 = 1, pos net = 1 - 1 = 0 → 0; note 1: neg net 0 → 0
    assert list(sc.net_min_helpful) == [0, 0, 0, 0]
    assert sc.neg_mean_helpful.dtype == np.float32


def test_net_min_helpful_ratio():
    note = np.zeros(8, dtype=int)
    factor = np.array([-1, -1, -1, 1, 1, 1, 1, 1], dtype=float)
    helpful = np.array([1, 1, 0.5, 1, 1, 1, 0, 1], dtype=float)
    sc = note_counts_by_rater_sign(note, factor, helpful, n_notes=1)
    assert sc.net_min_helpful[0] == 2  # min(2 - 0, 4 - 1)
    assert sc.net_min_helpful_ratio[0] == np.float32(2 / 8)
