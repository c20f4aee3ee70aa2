"""``bridgewatch validate DIR``: read a data directory, check it, print a summary.

Exit code 0 when the files are readable (warnings are printed), 2 with the error message (file,
line, field) when one is not.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table

from bridgewatch.errors import DataFormatError
from bridgewatch.io.dataset import find_input_files, read_dataset
from bridgewatch.io.summary import summarize

# Inputs at least this big (bytes) get a progress bar.
PROGRESS_MIN_BYTES = 50 << 20


@click.command(name="validate")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
def command(directory: Path) -> None:
    """Check the public data files in DIRECTORY and print what they hold."""
    console = Console()
    try:
        files = find_input_files(directory)
        total = sum(os.path.getsize(p) for p in files["ratings"])  # type: ignore[union-attr]
        if total >= PROGRESS_MIN_BYTES and console.is_terminal:
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task("reading ratings", total=total)
                ds = read_dataset(directory, progress=lambda _s, done, _t: bar.update(task, completed=done))
        else:
            ds = read_dataset(directory)
    except DataFormatError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from exc
    s = summarize(ds)
    table = Table(title=f"bridgewatch validate {directory}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for key in ("notes", "ratings", "raters", "rated_notes", "status_history_rows", "enrollment_rows"):
        table.add_row(key.replace("_", " "), f"{s[key]:,}")
    table.add_row("dates", f"{s['first']} .. {s['last']}")
    mix = s["rating_mix"]
    n = max(int(s["ratings"]), 1)  # type: ignore[call-overload]
    for level, count in mix.items():  # type: ignore[union-attr]
        table.add_row(f"ratings {level}", f"{count:,} ({100 * count / n:.1f}%)")
    table.add_row("ratings POPULATION_SAMPLED", f"{s['population_sampled']:,}")
    for cls, count in s["classification"].items():  # type: ignore[union-attr]
        table.add_row(f"notes {cls}", f"{count:,}")
    console.print(table)
    warnings = s["warnings"]
    if warnings:
        console.print(f"[yellow]{len(warnings)} warning(s):[/yellow]")  # type: ignore[arg-type]
        for w in warnings:  # type: ignore[union-attr]
            console.print(f"  - {w}", markup=False, highlight=False)
    else:
        console.print("no warnings")
