"""``bridgewatch simulate``: write a synthetic community (public format + truth) to a directory."""

from __future__ import annotations

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bridgewatch.sim.attacks import SCENARIOS
from bridgewatch.sim.config import SCALES, config_for_scale
from bridgewatch.sim.simulate import simulate


def _params(values: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in values:
        key, sep, value = item.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise click.BadParameter(
                f"expected NAME=NUMBER, got {item!r}", param_hint="--attack-param"
            ) from None
        if not sep:
            raise click.BadParameter(f"expected NAME=NUMBER, got {item!r}", param_hint="--attack-param")
    return out


@click.command("simulate")
@click.option(
    "--scale", type=click.Choice(list(SCALES)), default="tiny", show_default=True, help="size preset"
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="output directory")
@click.option("--seed", type=int, default=0, show_default=True, help="random seed (same seed, same bytes)")
@click.option("--notes", type=int, help="override the number of notes")
@click.option("--raters", type=int, help="override the number of raters")
@click.option("--ratings", type=int, help="override the number of honest ratings")
@click.option("--days", type=float, help="override the time span in days")
@click.option("--dims", type=click.IntRange(1, 2), help="viewpoint dimensions")
@click.option("--polarization", type=float, help="0: one crowd .. 1: two separated camps")
@click.option("--attack", type=click.Choice(sorted(SCENARIOS)), help="attack scenario to apply")
@click.option("--attack-strength", type=float, help="attack size multiplier (0: targets only)")
@click.option("--attack-targets", type=int, help="number of target notes")
@click.option("--attack-direction", type=click.Choice(["up", "down"]), help="push targets up or down")
@click.option("--attack-param", "attack_params", multiple=True, help="scenario knob NAME=NUMBER (repeatable)")
@click.option("--quiet", is_flag=True, help="no progress bar")
def command(
    scale: str, out_dir: str, seed: int, quiet: bool, attack_params: tuple[str, ...], **overrides: object
) -> None:
    """Simulate a community with ground truth and write it in X's public TSV format."""
    cfg = config_for_scale(scale, seed=seed, attack_params=_params(attack_params) or None, **overrides)
    console = Console(stderr=True, quiet=quiet)
    with Progress(
        TextColumn("{task.description:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=quiet,
    ) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        summary = simulate(cfg, out_dir, progress=progress)
    levels = ", ".join(f"{k} {v:,}" for k, v in summary.level_counts.items())
    click.echo(
        f"{summary.scale} community (seed {summary.seed}) -> {summary.out_dir}\n"
        f"  notes {summary.notes:,}  posts {summary.posts:,}  raters {summary.raters:,}"
        f"  ratings {summary.ratings:,}"
        f" in {len(summary.ratings_files)} file(s)\n"
        f"  levels: {levels}\n"
        f"  prior status: "
        + ", ".join(f"{k} {v:,}" for k, v in summary.prior_status.items())
        + f"; locked {summary.locked_notes:,}"
    )
    if summary.attack:
        click.echo(
            f"  attack {summary.attack}: {summary.attackers} attackers, {summary.attack_targets} targets,"
            f" {summary.attack_ratings:,} attack ratings"
        )
    click.echo(f"  {summary.seconds:.1f} s, {summary.ratings_per_second:,.0f} ratings/s")
