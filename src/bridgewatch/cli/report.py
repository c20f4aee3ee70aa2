"""``bridgewatch report DIR``: a self-contained HTML page about a scoring run."""

from __future__ import annotations

import click

from bridgewatch.report import write_report


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="page path (default DIR/report.html)")
def command(run_dir: str, out: str | None) -> None:
    """Write an offline HTML report of the outputs in RUN_DIR (a score --outdir or a run --dir)."""
    click.echo(f"report in {write_report(run_dir, out)}")
