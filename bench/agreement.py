"""Agreement between our scored notes and the reference scorer's.

    python bench/agreement.py OURS/scored_notes.tsv REF/scored_notes.tsv[.gz] [--columns a,b]
        [--markdown OUT.md]
    python bench/agreement.py --case mini [--out DIR] [--markdown OUT.md]

Status columns: share of notes (present in both files) with the same value, and a confusion
matrix (rows = reference, columns = ours; an empty cell counts as "(none)"). Numeric columns:
Pearson correlation, max and 99th-percentile absolute difference over notes where both have a
value, and how many notes have a value in only one file. ``--case`` runs our pipeline on
``/work/shared/golden/<case>/input`` with the reference's seed and epoch, then compares.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

STATUS_COLUMNS = (
    "finalRatingStatus",
    "coreRatingStatus",
    "expansionRatingStatus",
    "expansionPlusRatingStatus",
    "coreWithTopicsRatingStatus",
    "groupRatingStatus",
    "multiGroupRatingStatus",
    "topicRatingStatus",
    "gaussianRatingStatus",
    "decidedBy",
    "firstTag",
    "secondTag",
    "activeFilterTags",
    "coreActiveRules",
)
NUMERIC_COLUMNS = (
    "coreNoteIntercept",
    "coreNoteFactor1",
    "coreNoteInterceptMin",
    "coreNoteInterceptMax",
    "expansionNoteIntercept",
    "expansionNoteFactor1",
    "expansionPlusNoteIntercept",
    "coreWithTopicsNoteIntercept",
    "groupNoteIntercept",
    "gaussianNoteIntercept",
    "coreNoteInterceptNoHighVol",
    "coreNoteInterceptNoCorrelated",
    "numRatings",
)
GOLDEN = Path("/work/shared/golden")
NONE = "(none)"


def is_numeric_column(col: str) -> bool:
    """Model outputs and counts are numeric; statuses, rules and tags are categorical."""
    return col in NUMERIC_COLUMNS or any(
        k in col for k in ("Intercept", "Factor1", "NumFinalRoundRatings", "timestamp", "numRatings")
    )


def load(path: str | Path) -> pd.DataFrame:
    """A scored-notes TSV (optionally gzipped) as strings, indexed by noteId; "" = missing."""
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    if "noteId" not in frame.columns:
        raise SystemExit(f"{path}: no noteId column")
    return frame.set_index("noteId", drop=False)


def compare_status(ours: pd.Series, ref: pd.Series) -> dict:
    """Agreement over the notes both frames hold (aligned on index) and the confusion matrix."""
    common = ours.index.intersection(ref.index)
    o = ours.loc[common].replace("", NONE)
    r = ref.loc[common].replace("", NONE)
    agree = float((o == r).mean() * 100) if len(common) else float("nan")
    confusion = pd.crosstab(r.rename("reference"), o.rename("ours"))
    return {"n": len(common), "agreement": agree, "confusion": confusion}


def compare_numeric(ours: pd.Series, ref: pd.Series) -> dict:
    """Pearson r, max and p99 |diff| where both have values; counts present in only one."""
    common = ours.index.intersection(ref.index)
    o = pd.to_numeric(ours.loc[common].replace("", None), errors="coerce").astype(float)
    r = pd.to_numeric(ref.loc[common].replace("", None), errors="coerce").astype(float)
    both = o.notna() & r.notna()
    diff = (o[both] - r[both]).abs().to_numpy()
    if both.sum() >= 2 and o[both].std() > 0 and r[both].std() > 0:
        pearson = float(np.corrcoef(o[both], r[both])[0, 1])
    else:
        pearson = float("nan")
    return {
        "n": int(both.sum()),
        "pearson": pearson,
        "max_abs": float(diff.max()) if diff.size else float("nan"),
        "p99_abs": float(np.quantile(diff, 0.99)) if diff.size else float("nan"),
        "only_ours": int((o.notna() & r.isna()).sum()),
        "only_ref": int((o.isna() & r.notna()).sum()),
    }


def compare(
    ours: pd.DataFrame,
    ref: pd.DataFrame,
    status_columns=STATUS_COLUMNS,
    numeric_columns=NUMERIC_COLUMNS,
) -> dict:
    """All comparisons for the columns both frames have; notes present in only one file counted."""
    result = {
        "notes_ours": len(ours),
        "notes_ref": len(ref),
        "notes_only_ours": int((~ours.index.isin(ref.index)).sum()),
        "notes_only_ref": int((~ref.index.isin(ours.index)).sum()),
        "status": {},
        "numeric": {},
    }
    for col in status_columns:
        if col in ours.columns and col in ref.columns:
            result["status"][col] = compare_status(ours[col], ref[col])
    for col in numeric_columns:
        if col in ours.columns and col in ref.columns:
            result["numeric"][col] = compare_numeric(ours[col], ref[col])
    return result


def _fmt(x: float, digits: int = 4) -> str:
    return "nan" if x != x else f"{x:.{digits}f}"


def render(result: dict, *, confusion_for=("finalRatingStatus", "coreRatingStatus")) -> str:
    """Markdown tables (also readable as plain text)."""
    lines = [
        f"Notes: ours {result['notes_ours']}, reference {result['notes_ref']}, "
        f"only ours {result['notes_only_ours']}, only reference {result['notes_only_ref']}",
        "",
        "| status column | notes | agreement % |",
        "|---|---:|---:|",
    ]
    for col, s in result["status"].items():
        lines.append(f"| {col} | {s['n']} | {_fmt(s['agreement'], 2)} |")
    lines += [
        "",
        "| numeric column | both | pearson | max abs diff | p99 abs diff | only ours | only ref |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for col, s in result["numeric"].items():
        lines.append(
            f"| {col} | {s['n']} | {_fmt(s['pearson'])} | {_fmt(s['max_abs'])} | "
            f"{_fmt(s['p99_abs'])} | {s['only_ours']} | {s['only_ref']} |"
        )
    for col in confusion_for:
        if col not in result["status"]:
            continue
        conf = result["status"][col]["confusion"]
        lines += ["", f"Confusion for {col} (rows reference, columns ours):", ""]
        lines.append("| reference \\ ours | " + " | ".join(map(str, conf.columns)) + " |")
        lines.append("|---|" + "---:|" * len(conf.columns))
        for label, row in conf.iterrows():
            lines.append(f"| {label} | " + " | ".join(str(int(v)) for v in row) + " |")
    return "\n".join(lines) + "\n"


def reference_args(case_dir: Path) -> tuple[int, int]:
    """(seed, epoch_millis) from the case's ``reference/args.txt``."""
    text = (case_dir / "reference" / "args.txt").read_text()
    seed = re.search(r"--seed\s+(\d+)", text)
    epoch = re.search(r"--epoch-millis\s+(\d+)", text)
    if not (seed and epoch):
        raise SystemExit(f"{case_dir}/reference/args.txt: no --seed / --epoch-millis")
    return int(seed.group(1)), int(epoch.group(1))


def run_case(case: str, out_dir: Path, config: str | None = None) -> tuple[Path, Path, float]:
    """Score a golden case with our pipeline (``config``: a TOML file, None: the defaults);
    returns (ours, reference, seconds)."""
    from bridgewatch.runner import score_directory  # lazy: heavy
    from bridgewatch.scoring.config import load_config

    case_dir = GOLDEN / case
    seed, epoch = reference_args(case_dir)
    start = time.perf_counter()
    score_directory(case_dir / "input", out_dir, seed=seed, epoch_millis=epoch, config=load_config(config))
    seconds = time.perf_counter() - start
    return out_dir / "scored_notes.tsv", case_dir / "reference" / "scored_notes.tsv.gz", seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ours", nargs="?", help="our scored_notes.tsv")
    p.add_argument("reference", nargs="?", help="reference scored_notes.tsv[.gz]")
    p.add_argument("--case", choices=("mini", "small"), help="run our scorer on a golden case first")
    p.add_argument("--out", default=None, help="output dir for --case (default: a temp dir)")
    p.add_argument("--config", default=None, help="scoring config TOML for --case (default: the defaults)")
    p.add_argument("--columns", default=None, help="comma-separated columns to compare (default: all known)")
    p.add_argument("--markdown", default=None, help="also write the report to this Markdown file")
    args = p.parse_args(argv)

    header = ""
    if args.case:
        import tempfile

        out = Path(args.out or tempfile.mkdtemp(prefix=f"bw_{args.case}_"))
        ours_path, ref_path, seconds = run_case(args.case, out, args.config)
        header = f"Case {args.case}: our pipeline took {seconds:.1f} s (outputs in {out})\n\n"
    elif args.ours and args.reference:
        ours_path, ref_path = Path(args.ours), Path(args.reference)
    else:
        p.error("give OURS and REFERENCE files, or --case")

    status_cols, numeric_cols = STATUS_COLUMNS, NUMERIC_COLUMNS
    if args.columns:
        wanted = [c.strip() for c in args.columns.split(",") if c.strip()]
        numeric_cols = tuple(c for c in wanted if is_numeric_column(c))
        status_cols = tuple(c for c in wanted if not is_numeric_column(c))
    report = header + render(compare(load(ours_path), load(ref_path), status_cols, numeric_cols))
    sys.stdout.write(report)
    if args.markdown:
        Path(args.markdown).write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
