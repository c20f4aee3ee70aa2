"""Compare our Core scorer with the reference's outputs on a golden case.

Usage: python bench/core_vs_reference.py [/work/shared/golden/mini]

Prints correlation / max-abs difference of note and rater parameters, aboveHelpfulnessThreshold
agreement and core status agreement (final-round rules with the inputs our part computes). The
reference's own topic assignment (``noteTopic`` in its scored_notes) is used for Core's topic
exclusion, since the topic model is not ours.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bridgewatch.io.dataset import read_dataset
from bridgewatch.schema import STATUS_CODES
from bridgewatch.scoring.config import ScoringConfig
from bridgewatch.scoring.final_scoring import score_final
from bridgewatch.scoring.rules import RuleInputs, compute_statuses
from bridgewatch.scoring.scorer import prepare_inputs, prescore
from bridgewatch.scoring.scorer_specs import TOPICS, core


def compare(ours: np.ndarray, ref: np.ndarray, label: str) -> None:
    ok = np.isfinite(ours) & np.isfinite(ref)
    d = np.abs(ours[ok] - ref[ok])
    corr = np.corrcoef(ours[ok], ref[ok])[0, 1] if ok.sum() > 1 else float("nan")
    print(
        f"{label:32s} n={ok.sum():6d} (ours only {np.sum(np.isfinite(ours) & ~np.isfinite(ref))}, "
        f"ref only {np.sum(~np.isfinite(ours) & np.isfinite(ref))}) corr={corr:.5f} "
        f"maxabs={d.max() if d.size else 0:.4f} p99={np.quantile(d, 0.99) if d.size else 0:.4f} "
        f"share<0.01={np.mean(d < 0.01) if d.size else 0:.3f}"
    )


def main(case: str) -> None:
    case_dir = Path(case)
    t0 = time.time()
    ds = read_dataset(case_dir / "input")
    t_read = time.time() - t0
    ref_notes = pd.read_csv(case_dir / "reference/scored_notes.tsv.gz", sep="\t", low_memory=False)
    ref_help = pd.read_csv(case_dir / "reference/helpfulness_scores.tsv.gz", sep="\t", low_memory=False)
    ref_help = ref_help.groupby("raterParticipantId", sort=False).first().reset_index()
    m = ds.ratings
    topic_names = {name: i + 1 for i, name in enumerate(TOPICS)}
    topic_of = ref_notes.set_index("noteId")["noteTopic"].map(topic_names)
    note_topic = topic_of.reindex(m.note_ids).fillna(-1).to_numpy(np.int64)
    config = ScoringConfig()
    t0 = time.time()
    inputs = prepare_inputs(m, ds.notes, ds.status_history, ds.enrollment, config, note_topic=note_topic)
    t_prep = time.time() - t0
    spec = core()
    t0 = time.time()
    pre = prescore(inputs, spec, config, seed=42)
    t_pre = time.time() - t0
    t0 = time.time()
    fin = score_final(inputs, spec, pre, config)
    t_fin = time.time() - t0
    print(
        f"read {t_read:.2f}s prepare {t_prep:.2f}s prescore {t_pre:.2f}s final {t_fin:.2f}s "
        f"round1 mse {pre.round1_mse:.4f} mu {pre.params.mu:.4f} R2={pre.final_round_num_ratings}"
    )
    ref = ref_notes.set_index("noteId").reindex(m.note_ids)
    compare(
        fin["coreNoteIntercept"].to_numpy(), ref["coreNoteIntercept"].to_numpy(float), "coreNoteIntercept"
    )
    compare(fin["coreNoteFactor1"].to_numpy(), ref["coreNoteFactor1"].to_numpy(float), "coreNoteFactor1")
    compare(
        fin["coreNoteInterceptMin"].to_numpy(),
        ref["coreNoteInterceptMin"].to_numpy(float),
        "coreNoteInterceptMin",
    )
    compare(
        fin["coreNoteInterceptMax"].to_numpy(),
        ref["coreNoteInterceptMax"].to_numpy(float),
        "coreNoteInterceptMax",
    )
    compare(
        fin["coreNoteInterceptNoHighVol"].to_numpy(),
        ref["coreNoteInterceptNoHighVol"].to_numpy(float),
        "NoHighVol",
    )
    compare(
        fin["coreNoteInterceptPopulationSampled"].to_numpy(),
        ref["coreNoteInterceptPopulationSampled"].to_numpy(float),
        "PopulationSampled",
    )
    rh = ref_help.set_index("raterParticipantId").reindex(m.rater_ids)
    compare(pre.params.rater_intercept, rh["coreRaterIntercept"].to_numpy(float), "coreRaterIntercept")
    compare(pre.params.rater_factor[:, 0], rh["coreRaterFactor1"].to_numpy(float), "coreRaterFactor1")
    compare(
        pre.first_round.rater_intercept,
        rh["coreFirstRoundRaterIntercept"].to_numpy(float),
        "firstRoundRaterIntercept",
    )
    compare(
        pre.first_round.rater_factor[:, 0],
        rh["coreFirstRoundRaterFactor1"].to_numpy(float),
        "firstRoundRaterFactor1",
    )
    ours_h = pre.helpfulness.set_index("raterParticipantId")
    both = ours_h.index.intersection(ref_help["raterParticipantId"])
    rhh = ref_help.set_index("raterParticipantId").loc[both]
    a = ours_h.loc[both, "aboveHelpfulnessThreshold"].astype(bool).to_numpy()
    b = rhh["aboveHelpfulnessThreshold"].astype(str).eq("True").to_numpy()
    print(
        f"aboveHelpfulnessThreshold agreement {np.mean(a == b):.4f} over {len(both)} "
        f"(ours True {a.sum()}, ref True {b.sum()})"
    )
    compare(
        ours_h.loc[both, "raterAgreeRatio"].to_numpy(float),
        rhh["raterAgreeRatio"].to_numpy(float),
        "raterAgreeRatio",
    )
    compare(
        ours_h.loc[both, "meanNoteScore"].to_numpy(float),
        rhh["meanNoteScore"].to_numpy(float),
        "meanNoteScore",
    )
    ri = RuleInputs(
        intercept=fin["coreNoteIntercept"].to_numpy(np.float32),
        factor=fin["coreNoteFactor1"].to_numpy(np.float32),
        num_ratings=fin["numRatings"].to_numpy(),
        is_not_misleading=inputs.is_not_misleading,
        intercept_max=fin["coreNoteInterceptMax"].to_numpy(np.float32),
        min_sign_count=fin["minSignCount"].to_numpy(),
        neg_mean_helpful=fin["negMeanHelpful"].to_numpy(),
        pos_mean_helpful=fin["posMeanHelpful"].to_numpy(),
        net_min_helpful=fin["netMinHelpful"].to_numpy(),
        net_min_helpful_ratio=fin["netMinHelpfulRatio"].to_numpy(),
        intercept_no_high_vol=fin["coreNoteInterceptNoHighVol"].to_numpy(np.float32),
    )
    st = compute_statuses(ri, spec.rules, final_round=True).status
    ref_st = ref["coreRatingStatus"].map(STATUS_CODES).to_numpy()
    has = ~pd.isna(ref_st)
    ours_st = st[has]
    ref_codes = ref_st[has].astype(int)
    print(
        f"coreRatingStatus agreement (partial final rules) {np.mean(ours_st == ref_codes):.4f} "
        f"over {has.sum()}"
    )
    print(pd.crosstab(pd.Series(ref_codes, name="ref"), pd.Series(ours_st, name="ours")))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/golden/mini")
