"""The evaluation table as Markdown and CSV, and the issue's targets checked against it.

Kept apart from the sweep (``sim.evaluate``) so the formatting and the target checks can be tested
on hand-made tables. Both outputs are deterministic: fixed column order, fixed float formats.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bridgewatch.io.atomic import atomic_text

# (column, Markdown header, formatter)
_PCT = "pct"
_RATE = "rate"
_INT = "int"
_NUM = "num"
_TEXT = "text"
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("scenario", "scenario", _TEXT),
    ("direction", "dir", _TEXT),
    ("strength", "strength", _TEXT),
    ("defences", "defences", _TEXT),
    ("attackers", "attackers", _INT),
    ("targets", "targets", _INT),
    ("success_rate", "moved (of eligible)", _PCT),
    ("flip_rate", "flipped (of eligible)", _PCT),
    ("floor_flip_rate", "flipped w/o attack ratings", _PCT),
    ("attack_flip_rate", "flipped by attack ratings", _PCT),
    ("attack_ratings", "attack ratings", _INT),
    ("ratings_per_flip", "ratings / flip", _NUM),
    ("detect_precision", "detect P", _RATE),
    ("detect_recall", "detect R", _RATE),
    ("recall_pss", "R pss", _RATE),
    ("recall_quasi_clique", "R qc", _RATE),
    ("recall_coordinated", "R coord", _RATE),
    ("recall_surprise", "R surprise", _RATE),
    ("help_precision", "help-filter P", _RATE),
    ("help_recall", "help-filter R", _RATE),
    ("helpful_precision", "H prec", _RATE),
    ("helpful_recall", "H rec", _RATE),
    ("not_helpful_precision", "NH prec", _RATE),
    ("not_helpful_recall", "NH rec", _RATE),
)
_COUNTS = {
    "success_rate": ("moved", "eligible"),
    "flip_rate": ("flipped", "flip_eligible"),
    "floor_flip_rate": ("floor_flipped", "flip_eligible"),
    "attack_flip_rate": ("attack_flipped", "attack_flip_eligible"),
}


def _cell(row: pd.Series, col: str, kind: str) -> str:
    value = row[col]
    if kind == _TEXT:
        return str(value)
    if kind == _INT:
        return f"{int(value):,}"
    if isinstance(value, float) and math.isnan(value):
        return "—"
    if kind == _PCT:
        num, den = _COUNTS[col]
        return f"{value:.0%} ({int(row[num])}/{int(row[den])})"
    if kind == _RATE:
        return f"{value:.2f}"
    return f"{value:,.1f}"


def markdown_table(table: pd.DataFrame) -> str:
    """The table in GitHub Markdown (— marks an undefined value: nothing to divide by)."""
    lines = [
        "| " + " | ".join(h for _, h, _ in COLUMNS) + " |",
        "|" + "|".join("---" if k == _TEXT else "---:" for _, _, k in COLUMNS) + "|",
    ]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_cell(row, c, k) for c, _, k in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Check:
    """One target of issue 5 item 6: what it asks, the worst measured value, met or not."""

    target: str
    measured: str
    met: bool | None  # None: the table has no row to judge it by


def _worst(rows: pd.DataFrame, col: str, pick: Callable[[pd.Series], float]) -> float:
    values = rows[col].dropna()
    return float(pick(values)) if len(values) else math.nan


def check_targets(table: pd.DataFrame) -> list[Check]:
    """Judge the issue's targets on the rows with the defences on (worst case over the rows)."""
    on = table[table["defences"] == "on"]
    checks: list[Check] = []

    def add(target: str, rows: pd.DataFrame, col: str, worst: str, ok: Callable[[float], bool]) -> None:
        value = _worst(rows, col, pd.Series.max if worst == "max" else pd.Series.min)
        met = None if math.isnan(value) else bool(ok(value))
        checks.append(Check(target, "—" if math.isnan(value) else f"{value:.3f}", met))

    sybil10 = on[(on["scenario"] == "sybil_brigade") & (on["strength"] == "k=10")]
    add("10 sybil accounts flip < 1% of targets", sybil10, "flip_rate", "max", lambda v: v < 0.01)
    bloc = on[on["scenario"] == "coordinated_bloc"]
    add("5–20% bloc's ratings suppress < 1% of helpful targets (vs members abstaining)", bloc,
        "attack_flip_rate", "max", lambda v: v < 0.01)  # fmt: skip
    add("5–20% bloc suppresses < 1% of helpful targets (vs members rating sincerely)", bloc,
        "flip_rate", "max", lambda v: v < 0.01)  # fmt: skip
    # the same bloc acting only on the notes it rates anyway (arXiv 2511.02615's bad raters)
    stealth = on[on["scenario"] == "stealth_bloc"]
    add("5–20% stealth bloc's ratings suppress < 1% of helpful targets (vs members abstaining)", stealth,
        "attack_flip_rate", "max", lambda v: v < 0.01)  # fmt: skip
    add("Helpful precision >= 0.95", on, "helpful_precision", "min", lambda v: v >= 0.95)
    both = on.merge(table[table["defences"] == "off"], on=["scenario", "strength"], suffixes=("", "_off"))
    cost = both.assign(cost=both["helpful_recall_off"] - both["helpful_recall"])
    add("defences cost Helpful recall <= 2 points", cost, "cost", "max", lambda v: v <= 0.02)
    ring_timing = on[on["scenario"].isin(("timing_attack", "author_ring"))]
    add("detection precision >= 0.9 (timing, ring)", ring_timing, "detect_precision", "min",
        lambda v: v >= 0.9)  # fmt: skip
    add("detection recall >= 0.8 (timing, ring)", ring_timing, "detect_recall", "min", lambda v: v >= 0.8)
    return checks


def checks_markdown(checks: list[Check]) -> str:
    lines = ["| target | worst measured | met |", "|---|---:|---|"]
    for c in checks:
        lines.append(f"| {c.target} | {c.measured} | {'—' if c.met is None else 'yes' if c.met else 'no'} |")
    return "\n".join(lines) + "\n"


def write_tables(table: pd.DataFrame, out_dir: Path, header: str) -> tuple[Path, Path]:
    """Write ``evaluation.md`` (header, table, target checks) and ``evaluation.csv`` to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, csv = out_dir / "evaluation.md", out_dir / "evaluation.csv"
    with atomic_text(md) as fh:
        fh.write(header + "\n\n" + markdown_table(table) + "\n" + checks_markdown(check_targets(table)))
    with atomic_text(csv) as fh:
        table.to_csv(fh, index=False, float_format="%.4f", lineterminator="\n")
    return md, csv
