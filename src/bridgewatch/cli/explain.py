"""``bridgewatch explain NOTE_ID --run DIR``: why a note has its status in a run's outputs."""

from __future__ import annotations

import click

from bridgewatch.explain import explain_note


@click.command("explain")
@click.argument("note_id", type=int)
@click.option("--run", "run_dir", required=True, type=click.Path(), help="a run's output directory")
def command(note_id: int, run_dir: str) -> None:
    """Print every scorer's numbers, the rules that fired, the deciding scorer, tags and history."""
    for section in explain_note(run_dir, note_id):
        click.echo(f"== {section.title}")
        width = max((len(label) for label, _ in section.rows), default=0)
        for label, value in section.rows:
            click.echo(f"  {label.ljust(width)}  {value}")
