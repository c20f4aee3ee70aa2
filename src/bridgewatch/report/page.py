"""One self-contained HTML page about a scoring run: headline counts, plots and tables.

Plotly's JavaScript is embedded once in the page head, so the file opens offline and can be mailed
or archived as is. Div ids are fixed and rows sorted, so the same outputs give the same bytes.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from bridgewatch import schema
from bridgewatch.integrity.views import GROUP_COLUMNS
from bridgewatch.io.atomic import atomic_text
from bridgewatch.report import figures as F
from bridgewatch.report.load import RunOutputs, load_outputs
from bridgewatch.scoring.config import ScoringConfig

REPORT_FILE = "report.html"
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1180px;
       color: #222; padding: 0 16px; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.muted { color: #666; } .cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.card { border: 1px solid #ddd; border-radius: 8px; padding: 10px 16px; min-width: 120px; }
.card .n { font-size: 1.5em; font-weight: 600; } .card .l { color: #666; font-size: 0.85em; }
.wide { overflow-x: auto; } table { border-collapse: collapse; font-size: 0.85em; margin: 8px 0; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f6f6f6; } td.t, th.t { text-align: left; font-family: ui-monospace, monospace; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
@media (max-width: 900px) { .grid { grid-template-columns: 1fr; } }
"""


@dataclass(frozen=True)
class ReportOptions:
    """``max_points``: most markers per point plot; ``top_notes``: rows of the polarizing table;
    ``min_side_raters``: raters needed on each factor side before a note's side gap is ranked."""

    max_points: int = 20_000
    top_notes: int = 20
    min_side_raters: int = 3


def headline_counts(run: RunOutputs) -> dict[str, int]:
    """Notes by final status, core-scored notes, raters, ratings and flagged groups and raters."""
    final = run.scored_notes["finalRatingStatus"].value_counts()
    core = run.scored_notes["coreNoteIntercept"].notna()
    counts = {"notes": len(run.scored_notes), "core-scored notes": int(core.sum())}
    for status in schema.STATUSES:
        counts[status] = int(final.get(status, 0))
    if run.rater_integrity is not None:
        r = run.rater_integrity
        counts["raters"] = len(r)
        counts["ratings"] = int(r["ratings"].sum())
        for kind, col in group_columns(r).items():
            members = r[col] > 0
            counts[f"{kind} groups"] = int(r.loc[members, col].nunique())
            counts[f"{kind} raters"] = int(members.sum())
    else:
        counts["participants"] = len(run.helpfulness)
    return counts


def polarizing_notes(run: RunOutputs, options: ReportOptions) -> pd.DataFrame:
    """Notes whose two factor sides rated them most differently (largest |sideGap|)."""
    if run.note_integrity is None:
        return pd.DataFrame()
    ni = run.note_integrity
    k = options.min_side_raters
    both = (ni["positiveRaters"] >= k) & (ni["negativeRaters"] >= k)
    ranked = ni[both & ni["sideGap"].notna()].assign(absGap=lambda d: d["sideGap"].abs())
    ranked = ranked.sort_values(["absGap", "noteId"], ascending=[False, True], kind="stable")
    top = ranked.head(options.top_notes).merge(run.scored_notes, on="noteId", how="left")
    cols = [
        "noteId", "finalRatingStatus", "coreNoteIntercept", "coreNoteFactor1", "positiveRaters",
        "negativeRaters", "positiveMeanRating", "negativeMeanRating", "sideGap", "helpfulPositive",
        "helpfulNegative", "raterPolarizationMean",
    ]  # fmt: skip
    return top[cols]


def group_columns(raters: pd.DataFrame) -> dict[str, str]:
    """Group kind -> its ``rater_integrity.tsv`` column, for the kinds this run wrote (runs scored
    before coordinated groups were shown have no ``coordinatedGroup`` column)."""
    return {kind: col for kind, col in GROUP_COLUMNS.items() if col in raters.columns}


def flagged_groups(run: RunOutputs) -> pd.DataFrame:
    """One row per PSS group, quasi-clique and coordinated group: members, ratings, active days,
    first and last day."""
    if run.rater_integrity is None or run.group_activity is None:
        return pd.DataFrame()
    rows = []
    r = run.rater_integrity
    for kind, col in group_columns(r).items():
        sizes = r.loc[r[col] > 0, col].value_counts()
        act = run.group_activity[run.group_activity["kind"] == kind]
        for g in sorted(sizes.index):
            days = act[act["group"] == g]
            first = last = ""
            if len(days):
                span = pd.to_datetime(days["dayMillis"].agg(["min", "max"]), unit="ms", utc=True)
                first, last = (d.strftime("%Y-%m-%d") for d in span)
            rows.append((kind, int(g), int(sizes[g]), int(days["ratings"].sum()), len(days), first, last))
    return pd.DataFrame(rows, columns=["kind", "group", "members", "ratings", "activeDays", "first", "last"])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.3f}"
    return html.escape(str(value))


def html_table(frame: pd.DataFrame, text_columns: tuple[str, ...] = ()) -> str:
    """A plain HTML table; ``text_columns`` are left-aligned (ids, statuses)."""
    cls = {c: ' class="t"' if c in text_columns else "" for c in frame.columns}
    head = "".join(f"<th{cls[c]}>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = (
        "".join(f"<td{cls[c]}>{_cell(v)}</td>" for c, v in zip(frame.columns, row, strict=True))
        for row in frame.itertuples(index=False)
    )
    body = "".join(f"<tr>{r}</tr>" for r in rows)
    return f"<div class='wide'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def _plot(fig: go.Figure, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=_PLOT_CONFIG)


def render(run: RunOutputs, options: ReportOptions = ReportOptions(), title: str = "") -> str:
    """The whole page as a string."""
    rules = ScoringConfig().rules
    counts = headline_counts(run)
    card = '<div class="card"><div class="n">{:,}</div><div class="l">{}</div></div>'
    cards = "".join(card.format(v, html.escape(k)) for k, v in counts.items())
    scatter = F.status_scatter(
        run.scored_notes, rules.crh_threshold, rules.crnh_threshold_intercept,
        rules.crnh_threshold_factor_multiplier, options.max_points,
    )  # fmt: skip
    parts = [
        f"<h1>Bridgewatch report</h1><p class='muted'>{html.escape(title or str(run.directory))}</p>",
        f"<div class='cards'>{cards}</div>",
        "<h2>Notes</h2><p class='muted'>Each point is a note the core scorer fit. Dotted lines: the "
        "default CRH intercept threshold (green) and the CRNH boundary, intercept below "
        f"{rules.crnh_threshold_intercept} + {rules.crnh_threshold_factor_multiplier}·|factor| (red).</p>",
        _plot(scatter, "fig-notes"),
    ]
    if run.rater_integrity is None or run.note_integrity is None:
        parts.append(
            "<h2>Raters and integrity</h2><p>No integrity views in this run (scored with "
            "<code>--no-integrity</code>?): rater groups, flags and polarization are not shown.</p>"
        )
        return _page(parts)
    parts += [
        "<h2>Raters</h2><p class='muted'>Left: the core rater factor within each opinion group (k-means "
        "on a 2-D SVD of the ratings, independent of the scorer). Right: the map itself.</p>",
        "<div class='grid'>",
        _plot(F.factor_histograms(run.rater_integrity), "fig-factors"),
        _plot(F.opinion_map(run.rater_integrity, options.max_points), "fig-map"),
        "</div>",
        "<h2>Flagged groups</h2><p class='muted'>postSelection: raters who rate the same notes within "
        "minutes (X's PSS); quasiClique: dense same-value co-rating groups (X's quasi-cliques); "
        "coordinated: raters who rate the same notes the same way at any pace (Bridgewatch; on the "
        "notes where such a group acts in concert its ratings are set aside); surprise: raters who "
        "share NOT_HELPFUL ratings against their own viewpoint on notes that collect many of them "
        "(Bridgewatch, <code>[integrity] surprise</code>; those ratings are set aside).</p>",
    ]
    groups = flagged_groups(run)
    if groups.empty:
        parts.append(
            "<p>No post-selection-similarity group, quasi-clique, coordinated or surprise group was found "
            "in this run.</p>"
        )
    else:
        parts += [html_table(groups, ("kind",)), _plot(F.activity_figure(run.group_activity), "fig-activity")]
    top = polarizing_notes(run, options)
    parts += [
        "<h2>Most polarizing notes</h2><p class='muted'>sideGap = mean rating from raters with a positive "
        "core factor minus the mean from those with a negative one (1 = helpful, 0 = not); notes with "
        f"at least {options.min_side_raters} raters on each side.</p>",
        html_table(top, ("noteId", "finalRatingStatus")) if len(top) else "<p>No note qualifies.</p>",
    ]
    return _page(parts)


def _page(parts: list[str]) -> str:
    head = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Bridgewatch report</title><style>{_CSS}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>\n"
    )
    return head + "\n".join(parts) + "\n</body></html>\n"


def write_report(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    options: ReportOptions = ReportOptions(),
) -> Path:
    """Read the run in ``run_dir``, write the page (default ``<outputs>/report.html``), return its path."""
    run = load_outputs(run_dir)
    path = Path(out) if out is not None else run.directory / REPORT_FILE
    page = render(run, options, title=str(run_dir))
    with atomic_text(path) as fh:
        fh.write(page)
    return path
