"""Known-answer test: meta scoring + NSH update reproduce the reference scorer on a golden slice.

The slice (tests/data/golden_small_*) holds ~250 notes of a reference run (``--epoch-millis
1795305600000``) chosen to cover every decidedBy / active-rule combination it produced: the
reference's own per-scorer columns go in, its finalRatingStatus, decidedBy, metaScorerActiveRules
and next note status history must come out, string for string.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bridgewatch import schema
from bridgewatch.scoring import history, meta
from bridgewatch.scoring.config import ScoringConfig

DATA = Path(__file__).parent / "data"
EPOCH = 1_795_305_600_000
REF_COLUMNS = ["finalRatingStatus", "decidedBy", "metaScorerActiveRules"]


def load():
    sn = pd.read_csv(DATA / "golden_small_meta.tsv.gz", sep="\t")
    nsh_in = pd.read_csv(DATA / "golden_small_nsh_in.tsv.gz", sep="\t")
    notes = pd.read_csv(DATA / "golden_small_notes.tsv.gz", sep="\t")
    ref = pd.read_csv(DATA / "golden_small_nsh_ref.tsv.gz", sep="\t")
    return sn, nsh_in, notes, ref


def run_meta(sn, nsh_in):
    scored = sn.drop(columns=REF_COLUMNS)
    tags = sn[["noteId", *schema.RATING_TAGS]]
    return meta.meta_score(scored, nsh_in, epoch_millis=EPOCH, config=ScoringConfig(), explanation=tags)


def same(a: pd.Series, b: pd.Series) -> np.ndarray:
    a, b = a.astype(object), b.astype(object)
    return ((a == b) | (a.isna() & b.isna())).to_numpy()


def test_meta_reproduces_reference_final_status():
    sn, nsh_in, _, _ = load()
    out = run_meta(sn, nsh_in)
    for col in [*REF_COLUMNS, "unlockedRatingStatus", "preStabilizationRatingStatus"]:
        ok = same(out[col], sn[col])
        assert ok.all(), (
            f"{col}: {(~ok).sum()} mismatches, e.g. {out[col][~ok].iloc[0]!r} vs {sn[col][~ok].iloc[0]!r}"
        )


def test_history_update_reproduces_reference_nsh():
    sn, nsh_in, notes, ref = load()
    out = run_meta(sn, nsh_in)
    final = sn.drop(columns=REF_COLUMNS).merge(out, on="noteId")
    new = history.update_status_history(nsh_in, notes, final, epoch_millis=EPOCH, config=ScoringConfig())
    ref = ref.sort_values("noteId", kind="stable").reset_index(drop=True)
    assert new.noteId.tolist() == ref.noteId.tolist()
    for col in schema.NOTE_STATUS_HISTORY_COLUMNS:
        ok = same(new[col], ref[col])
        assert ok.all(), f"{col}: {(~ok).sum()} mismatches"
