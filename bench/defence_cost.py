"""Which defence costs honest Helpful recall? One community scored under each defence combination.

    python bench/defence_cost.py DATA_DIR [DATA_DIR ...] [--config bw.toml]

``DATA_DIR``: a simulated community with its ``truth.tsv`` (e.g. ``bridgewatch evaluate --keep-data``
leaves them under ``OUT/data/SCENARIO/STRENGTH``). Each is scored with the core scorer, as
``bridgewatch evaluate`` does, under five settings: everything (the reference's PSS and
quasi-cliques, Bridgewatch's coordinated groups and concerted surprise, the helpfulness filter), the
reference's integrity only (neither of Bridgewatch's), the helpfulness filter alone, integrity without
the filter, and nothing. The table gives honest Helpful precision and recall on the non-target notes and each
setting's recall cost against "nothing", in points, so the evaluation's "defences cost" splits into
the reference's filter and the integrity defences. Statuses only: no timing.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from bridgewatch.io import read_dataset
from bridgewatch.runner import run_integrity, scoring_filters
from bridgewatch.scoring.config import ScoringConfig, load_config, with_overrides
from bridgewatch.scoring.pipeline import score_dataset
from bridgewatch.scoring.scorer_specs import core
from bridgewatch.sim import metrics as M
from bridgewatch.sim.evaluate import HOUR, MIN_RATINGS, read_truth
from bridgewatch.sim.simulate import META_FILE

# name -> (integrity: "all" | "reference" | "none", helpfulness filter)
SETTINGS = {
    "all defences": ("all", True),
    "reference integrity + filter": ("reference", True),
    "helpfulness filter only": ("none", True),
    "integrity, no filter": ("all", False),
    "nothing": ("none", False),
}


def recall_by_setting(data_dir: Path, base: ScoringConfig | None = None) -> dict[str, M.Accuracy]:
    """Honest accuracy of ``data_dir``'s non-target notes under each of ``SETTINGS`` (``base``: the
    configuration "all defences" means, default the defaults)."""
    dataset = read_dataset(data_dir)
    notes, _ = read_truth(data_dir)
    honest = notes[notes["isAttackTarget"] != "1"]
    camps = honest[["campHelpfulLeft", "campHelpfulRight"]].astype(float).to_numpy()
    helpful, not_helpful = M.truth_labels(camps[:, 0], camps[:, 1])
    scorable = honest["numRatings"].astype(int).to_numpy() >= MIN_RATINGS
    now = json.loads((data_dir / META_FILE).read_text())["config"]["end_millis"] + HOUR
    out = {}
    for name, (integrity, use_filter) in SETTINGS.items():
        config = (base or ScoringConfig()).validate()
        if integrity == "reference":
            config = with_overrides(config, {"integrity": {"coordination": False, "surprise": False}})
        filters = {}
        if integrity != "none":
            filters = scoring_filters(dataset, run_integrity(dataset, config), config)
        spec = replace(core(), use_reputation=use_filter)
        result = score_dataset(dataset, epoch_millis=now, config=config, seed=42, scorers=[spec], **filters)
        status = result.aux_note_info.set_index("noteId")["preStabilizationRatingStatus"]
        out[name] = M.honest_accuracy(
            status.reindex(honest.index).to_numpy(dtype=object), helpful, not_helpful, scorable
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dirs", nargs="+", type=Path)
    ap.add_argument("--config", help="TOML config overrides (e.g. [integrity] surprise = true)")
    args = ap.parse_args()
    print("| community | setting | Helpful | H prec | H rec | recall cost vs nothing (points) |")
    print("|---|---|---:|---:|---:|---:|")
    for d in args.data_dirs:
        acc = recall_by_setting(d, load_config(args.config))
        base = acc["nothing"].helpful_recall
        for name, a in acc.items():
            cost = 100 * (base - a.helpful_recall)
            print(
                f"| {d.parent.name}/{d.name} | {name} | {a.helpful} | {a.helpful_precision:.3f} "
                f"| {a.helpful_recall:.4f} | {cost:+.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
