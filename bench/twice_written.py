"""Agreement of helpfulness_scores columns on the raters the reference writes twice.

    python bench/twice_written.py OURS_DIR --case mini [--column crhTotal90d ...]

The reference's contributor join never meets its rating rows and its author rows, so it writes a
participant who both rated and authored twice: a rating row (state, rating counts; zeros for the
author-derived 14d/90d counts and False for isEmergingWriter) and an author row (note counts,
model outputs, the real 14d/90d counts). ``bench/columns.py`` folds them keeping the first
non-empty value, i.e. the rating row's zeros. This prints, per column, our agreement with the
fold and with either of the two rows, so the two readings of the reference can be told apart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from columns import GOLDEN, _numeric

KEY = "raterParticipantId"
DEFAULT = (
    "enrollmentState", "isEmergingWriter", "crhTotal14d", "crnhTotal14d", "nmrTotal14d",
    "crhTotal90d", "crnhTotal90d", "nmrTotal90d",
)  # fmt: skip


def _same(ours: pd.Series, ref: pd.Series) -> np.ndarray:
    """Row-wise agreement with bench/columns.py's tolerance (text where not numeric)."""
    on, rn = _numeric(ours), _numeric(ref)
    if on is None or rn is None:
        return ours.to_numpy() == ref.to_numpy()
    close = (on - rn).abs().to_numpy() <= 1e-6 + 1e-5 * rn.abs().to_numpy()
    return close | (on.isna() & rn.isna()).to_numpy()


def agreement(ours_dir: Path, ref_dir: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    ref = pd.read_csv(ref_dir / "helpfulness_scores.tsv.gz", sep="\t", dtype=str, keep_default_na=False)
    ours = pd.read_csv(ours_dir / "helpfulness_scores.tsv", sep="\t", dtype=str, keep_default_na=False)
    ours = ours.drop_duplicates(KEY).set_index(KEY)
    ref = ref[ref[KEY].isin(ours.index)]
    twice = ref[KEY].duplicated(keep=False).to_numpy()
    first = ref.replace("", None).groupby(KEY, sort=False).first().fillna("")
    rows = []
    for col in columns:
        mine = ours[col].reindex(ref[KEY]).reset_index(drop=True)
        either = pd.Series(_same(mine, ref[col].reset_index(drop=True))).groupby(ref[KEY].to_numpy()).any()
        fold = _same(ours[col].reindex(first.index), first[col])
        rows.append(
            {"column": col, "fold %": 100 * fold.mean(), "either row %": 100 * either.mean(),
             "written twice": int(twice.sum() // 2), "participants": len(first)}
        )  # fmt: skip
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ours", help="directory with our outputs (bench/agreement.py --out)")
    p.add_argument("--case", choices=("mini", "small"), required=True)
    p.add_argument("--column", action="append", help="columns to report (default: the author-derived ones)")
    args = p.parse_args(argv)
    table = agreement(Path(args.ours), GOLDEN / args.case / "reference", tuple(args.column or DEFAULT))
    sys.stdout.write(table.to_string(index=False, float_format="%.2f") + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
