"""``bridgewatch run``: the main job on the embedded default — simulate, validate, score, report."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console

from bridgewatch.cli.score import print_summary
from bridgewatch.io import read_dataset
from bridgewatch.io.summary import summarize
from bridgewatch.report import write_report
from bridgewatch.runner import score_directory
from bridgewatch.sim.config import SCALES, config_for_scale
from bridgewatch.sim.simulate import simulate


@click.command("run")
@click.option("--scale", type=click.Choice(list(SCALES)), default="tiny", show_default=True)
@click.option("--dir", "run_dir", type=click.Path(file_okay=False), default="runs/demo", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def command(scale: str, run_dir: str, seed: int) -> None:
    """Simulate a community, validate it, score it, print the summary and write the HTML report."""
    console = Console(stderr=True)
    data, out = Path(run_dir) / "data", Path(run_dir) / "scored"
    with console.status(f"simulating a {scale} community…"):
        sim = simulate(config_for_scale(scale, seed=seed), data)
    console.print(f"simulated {sim.notes} notes, {sim.raters} raters, {sim.ratings} ratings → {data}")
    dataset = read_dataset(data)
    facts = summarize(dataset)
    console.print(
        "validated: " + ", ".join(f"{k}={v}" for k, v in facts.items() if not isinstance(v, dict | list))
    )
    # Score "one hour after the newest rating", so a run is reproducible byte for byte.
    now = int(dataset.ratings.created_at.max()) + 3_600_000 if dataset.ratings.n_ratings else 0
    start = time.perf_counter()
    with console.status("scoring…") as spinner:
        result = score_directory(
            data, out, seed=42, epoch_millis=now, progress=lambda p: spinner.update(f"scoring: {p}")
        )
    print_summary(result, console, time.perf_counter() - start)
    click.echo(f"outputs in {out}")
    click.echo(f"report in {write_report(out)}")
