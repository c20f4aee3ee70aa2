"""Can a ``stealth_bloc`` be seen? Its members' "surprising" ratings, as groups and as notes.

    python bench/stealth_bloc.py DATA_DIR [DATA_DIR ...]

``DATA_DIR``: a ``stealth_bloc`` community (``bridgewatch evaluate --attack stealth_bloc
--keep-data`` leaves them under ``OUT/data/stealth_bloc/{base,0.05,...}``); the truth names the bloc
and the targets (the ``base`` twin has targets but no bloc: the honest background). The bloc's
members rate the notes they rate anyway and only turn their target ratings, so
``integrity.coordination`` (raters sharing many identical actions) has nothing to find. This
measures the signal a defence would need instead: ratings the project's own matrix factorization
(``scoring.mf``, fitted on all ratings) finds *surprising* (rating − prediction < −``--residual``:
the model says helpful, the rater said NOT_HELPFUL), and

- how many of the bloc's turned ratings are surprising (the fit absorbs part of a campaign: a note
  its own camp rates down looks slanted the other way);
- rater pairs sharing ≥ 2 surprising notes (bloc–bloc, honest–honest, mixed);
- the coordinated groups ``coordination.coordinated_groups`` finds on the surprise action sets
  (members and honest raters in a group);
- targets whose share of surprising ratings exceeds the honest notes' 99th percentile (a note-level
  test at 1% false positives);
- with ``--defence``, a second table: what ``integrity.surprise`` (default parameters, on a first
  fit of all ratings) flags, honest notes and targets, and why the other targets escape: fewer than
  5 turned ratings, *adopted* (≥ 5 turned but under 30% of them surprising under the note's robust
  refit: the bloc is its camp's majority there), or surprising but below the significance bar.

Statuses and timings are ``bridgewatch evaluate``'s; this prints counts only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from bridgewatch.integrity.coordination import coordinated_groups
from bridgewatch.integrity.surprise import SurpriseParams, robust_predictions, surprise_filter, surprising
from bridgewatch.io import read_dataset
from bridgewatch.runner import first_rater_model
from bridgewatch.scoring.config import ScoringConfig
from bridgewatch.scoring.mf import build_problem, fit_mf
from bridgewatch.sim.evaluate import MIN_RATINGS, read_truth


def surprise_row(data_dir: Path, residual: float) -> str:
    """One markdown row of surprise counts for ``data_dir``."""
    m = read_dataset(data_dir).ratings
    p = fit_mf(build_problem(m), ScoringConfig().validate().mf, seed=42).params
    pred = p.mu + p.rater_intercept[m.rater] + p.note_intercept[m.note]
    pred += np.einsum("ij,ij->i", p.rater_factor[m.rater], p.note_factor[m.note])
    surprising = np.nan_to_num(m.value - pred) < -residual
    notes, raters = read_truth(data_dir)
    target = np.isin(m.note_ids, notes.index[notes["isAttackTarget"] == "1"].to_numpy(np.int64))
    bad = np.isin(m.rater_ids, raters.index[raters["isBadActor"] == "1"].to_numpy(dtype=object))
    turned = bad[m.rater] & target[m.note]
    s = np.flatnonzero(surprising)
    x = sp.csr_matrix((np.ones(s.size), (m.rater[s], m.note[s])), shape=(m.n_raters, m.n_notes))
    co = sp.triu(x @ x.T, k=1).tocoo()
    pair = co.data >= 2
    both_bad, both_honest = bad[co.row] & bad[co.col] & pair, ~bad[co.row] & ~bad[co.col] & pair
    groups = coordinated_groups(m.note[s], m.rater[s], m.value[s], m.n_raters)
    per_note = np.bincount(m.note, minlength=m.n_notes)
    share = np.bincount(m.note[s], minlength=m.n_notes) / np.maximum(per_note, 1)
    scorable = per_note >= MIN_RATINGS
    q99 = float(np.quantile(share[scorable & ~target], 0.99))
    return (
        f"| {data_dir.name} | {int(bad.sum()):,} | {int(turned.sum()):,} "
        f"| {int((surprising & turned).sum()):,} "
        f"| {int((surprising & ~turned).sum()):,} | {int(both_bad.sum())} | {int(both_honest.sum())} "
        f"| {int(pair.sum() - both_bad.sum() - both_honest.sum())} | {int(((groups > 0) & bad).sum())} "
        f"| {int(((groups > 0) & ~bad).sum())} | {int((share[target] > q99).sum())}/{int(target.sum())} |"
    )


def defence_row(data_dir: Path) -> str:
    """One markdown row: what the concerted-surprise defence flags in ``data_dir``, and why targets escape."""
    m = read_dataset(data_dir).ratings
    params = SurpriseParams()
    mu, r_int, r_fac = first_rater_model(m, ScoringConfig().validate())
    _, _, flagged = surprise_filter(m.note_indptr, m.rater, m.value, mu, r_int, r_fac, params)
    pred = robust_predictions(m.note_indptr, m.rater, m.value, mu, r_int, r_fac, params)
    notes, raters = read_truth(data_dir)
    target = np.isin(m.note_ids, notes.index[notes["isAttackTarget"] == "1"].to_numpy(np.int64))
    bad = np.isin(m.rater_ids, raters.index[raters["isBadActor"] == "1"].to_numpy(dtype=object))
    turned_rating = bad[m.rater] & target[m.note]
    turned = np.bincount(m.note[turned_rating], minlength=m.n_notes)
    caught = np.bincount(m.note[turned_rating & surprising(pred, m.value, params)], minlength=m.n_notes)
    scorable = np.diff(m.note_indptr) >= MIN_RATINGS
    missed = target & scorable & ~flagged
    few = missed & (turned < 5)
    adopted = missed & ~few & (caught < 0.3 * turned)
    return (
        f"| {data_dir.name} | {int((flagged & ~target).sum())} | {int((flagged & target).sum())}"
        f"/{int((target & scorable).sum())} | {int(few.sum())} | {int(adopted.sum())} "
        f"| {int((missed & ~few & ~adopted).sum())} | {int(np.median(turned[target]))} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dirs", nargs="+", type=Path)
    ap.add_argument("--residual", type=float, default=0.5, help="surprising: rating - prediction < -this")
    ap.add_argument("--defence", action="store_true", help="also the concerted-surprise defence's table")
    args = ap.parse_args()
    print(
        "| level | bloc members | turned ratings | turned & surprising | other surprising "
        "| pairs ≥2 shared: bloc | honest | mixed | grouped: bloc | honest | targets > honest q99 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for data_dir in args.data_dirs:
        print(surprise_row(data_dir, args.residual), flush=True)
    if args.defence:
        print(
            "\n| level | honest notes flagged | targets flagged | missed: < 5 turned | adopted "
            "| below the bar | median turned per target |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for data_dir in args.data_dirs:
            print(defence_row(data_dir), flush=True)


if __name__ == "__main__":
    main()
