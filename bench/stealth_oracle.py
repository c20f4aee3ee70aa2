"""How far could any detector of a ``stealth_bloc`` go? Oracles that know the bloc, scored.

    python bench/stealth_oracle.py ROOT [--levels 0.05 0.1 0.2] [--min-turned 2 3]

``ROOT``: ``OUT/data/stealth_bloc`` of ``bridgewatch evaluate --attack stealth_bloc --scale small
--keep-data`` (its ``base`` twin and one directory per level). A stealth member rates the notes
it would rate anyway and turns only its ratings of targets (``sim.attacks``), so the one trace
that ties a member's turned ratings together is the member itself: a member who turned one
rating left nothing a rater-level detector can see (its single NOT_HELPFUL is distributed as an
honest rater's dissent on that note), and only members who turned two or more left any
cross-note evidence at all.

This scores, with the defences on and the core scorer as ``bridgewatch evaluate`` does, each
attacked community as it is, with every attack rating removed (the evaluation's abstaining
counterfactual), and under oracles that remove the turned ratings of every member who turned at
least ``k`` of them (a detector that found, with no false positive, every member with ``k`` or more
turned ratings). Against the abstaining community it counts the targets that the remaining
ratings still push out of Helpful: what even a perfect rater-level detector cannot prevent,
compared with issue 5's bar (< 1% of targeted helpful notes). A second table says, per flipped
target, how many turned ratings it carries and how many of them come from single-turn members.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bridgewatch.io import read_dataset
from bridgewatch.scoring.config import ScoringConfig, load_config
from bridgewatch.sim import metrics as M
from bridgewatch.sim.evaluate import HOUR, read_truth, score_outcome
from bridgewatch.sim.simulate import META_FILE


def turned_ratings(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(turned bool[R], turned ratings of each rating's rater int[R], noteId int64[R]) over the
    ratings of ``data_dir`` in ``read_dataset``'s order."""
    m = read_dataset(data_dir).ratings
    notes, raters = read_truth(data_dir)
    target = np.isin(m.note_ids, notes.index[notes["isAttackTarget"] == "1"].to_numpy(np.int64))
    bad = np.isin(m.rater_ids, raters.index[raters["isBadActor"] == "1"].to_numpy(dtype=object))
    turned = bad[m.rater] & target[m.note]
    per_member = np.bincount(m.rater[turned], minlength=m.n_raters)
    return turned, per_member[m.rater], m.note_ids[m.note]


def level_rows(
    root: Path, level: str, min_turned: list[int], now: int, config: ScoringConfig | None
) -> tuple[list[str], list[str]]:
    """Markdown rows of both tables for one level."""
    data_dir = root / level
    notes, _ = read_truth(data_dir)
    is_target = notes["isAttackTarget"] == "1"
    targets = notes.index[is_target]
    sign = np.where(notes.loc[is_target, "attackDirection"] == "down", -1, 1)

    def status(path: Path, campaign: bool = True, withhold: np.ndarray | None = None) -> np.ndarray:
        out = score_outcome(path, defences=True, scorers="core", epoch_millis=now, seed=42,
                            campaign=campaign, withhold=withhold, config=config)  # fmt: skip
        return out.status.reindex(targets).to_numpy()

    abstain = status(data_dir, campaign=False)
    attacked = status(data_dir)
    turned, member_turns, note = turned_ratings(data_dir)
    eligible = int(M.flip_eligible(abstain, sign).sum())
    rows = []
    for k in [None, *min_turned]:
        gone = turned & (member_turns >= k) if k is not None else np.zeros_like(turned)
        after = status(data_dir, withhold=gone) if k is not None else attacked
        n_flipped = int(M.flipped(abstain, after, sign).sum())
        name = f"members with ≥ {k} turned" if k is not None else "none (as attacked)"
        rows.append(
            f"| {level} | {name} | {int(gone.sum()):,} of {int(turned.sum()):,} "
            f"| {n_flipped}/{eligible} | {n_flipped / eligible:.1%} |"
        )
    at = targets.get_indexer(note[turned])  # each turned rating's target
    per_target = np.bincount(at, minlength=len(targets))
    single = np.bincount(at[member_turns[turned] == 1], minlength=len(targets))
    flipped = np.flatnonzero(M.flipped(abstain, attacked, sign))
    detail = [
        f"| {level} | {targets[i]} | {abstain[i]} → {attacked[i]} | {per_target[i]} | {single[i]} |"
        for i in flipped
    ]
    return rows, detail


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path, help="OUT/data/stealth_bloc of bridgewatch evaluate --keep-data")
    ap.add_argument("--levels", nargs="+", default=["0.05", "0.1", "0.2"])
    ap.add_argument("--min-turned", nargs="+", type=int, default=[2, 3])
    ap.add_argument("--now", type=int, help="scoring time (default: the evaluation's, from the base twin)")
    ap.add_argument("--config", help="TOML scoring overrides (e.g. the surprise test's fdr)")
    args = ap.parse_args()
    config = load_config(args.config) if args.config else None
    now = args.now if args.now is not None else evaluation_now(args.root / "base")
    rows, details = [], []
    for level in args.levels:
        r, d = level_rows(args.root, level, args.min_turned, now, config)
        rows += r
        details += d
        print(*r, sep="\n", flush=True)
    print("\n| level | oracle: turned ratings removed of | removed | flipped by the rest | rate |")
    print("|---|---|---:|---:|---:|")
    print(*rows, sep="\n")
    print(
        "\n| level | flipped target | status (abstaining → attacked) | turned ratings "
        "| from single-turn members |"
    )
    print("|---|---:|---|---:|---:|")
    print(*details, sep="\n")


def evaluation_now(base: Path) -> int:
    """The scoring time ``bridgewatch evaluate`` used: the simulation's end plus an hour."""
    return int(json.loads((base / META_FILE).read_text())["endMillis"]) + HOUR


if __name__ == "__main__":
    main()
