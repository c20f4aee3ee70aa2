"""``bridgewatch evaluate``: every attack scenario at several strengths, defences on and off."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from bridgewatch.scoring.config import load_config, with_overrides
from bridgewatch.sim.attacks import SCENARIOS
from bridgewatch.sim.eval_table import check_targets, checks_markdown, markdown_table, write_tables
from bridgewatch.sim.evaluate import SWEEP, run_evaluation

_SCALES = ("tiny", "small", "medium")
COUNTERFACTUALS = (
    "Each attacked community is compared with two counterfactuals. *flipped* compares with its "
    "no-attack twin, where the attackers' accounts rate as honest people: a bloc's members rate the "
    "targets they would have rated, sincerely. *flipped w/o attack ratings* is the same twin against "
    "the attacked community with every attack rating removed (the attackers abstain on the targets): "
    "what even a perfect defence loses, since a bloc's withheld sincere votes cannot be restored by "
    "discarding its insincere ones. *flipped by attack ratings* compares the attacked community with "
    "that abstaining one: the damage the attack ratings do, the part a defence can undo. The bloc "
    "target (issue 5: 5–20% coordinated raters suppress < 1% of targeted helpful notes) is judged "
    "on *flipped by attack ratings*; against sincere members it is bounded below by the floor "
    "(the second bloc check), which this table also reports."
)


@click.command("evaluate")
@click.option("--scale", type=click.Choice(_SCALES), default="tiny", show_default=True, help="community size")
@click.option("--seed", type=int, default=0, show_default=True, help="simulation seed")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="directory for evaluation.md and evaluation.csv")  # fmt: skip
@click.option("--attack", "attacks", multiple=True, type=click.Choice(sorted(SCENARIOS)),
              help="scenario to run (repeatable; default: all)")  # fmt: skip
@click.option("--strength", "strengths", multiple=True, type=float,
              help="override the sweep: accounts k, or bloc fraction p (repeatable)")  # fmt: skip
@click.option("--targets", type=click.IntRange(1), help="target notes per scenario (default by scale)")
@click.option("--scorers", type=click.Choice(["core", "all"]), default="core", show_default=True,
              help="score with the core scorer only, or the whole inventory")  # fmt: skip
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="TOML config overrides for every scoring (e.g. which defences run)")  # fmt: skip
@click.option("--surprise/--no-surprise", default=True, show_default=True,
              help="the concerted-surprise defence among the defences (as in score)")  # fmt: skip
@click.option("--keep-data", is_flag=True, help="keep the simulated communities under OUT/data")
@click.option("--quiet", is_flag=True, help="no progress on stderr")
def command(
    scale: str,
    seed: int,
    out_dir: Path,
    attacks: tuple[str, ...],
    strengths: tuple[float, ...],
    targets: int | None,
    scorers: str,
    config_path: str | None,
    surprise: bool,
    keep_data: bool,
    quiet: bool,
) -> None:
    """Attack the simulated community and measure how the scorer and its defences hold.

    Default sweep: sybil_brigade, slow_infiltration, timing_attack k = 5/10/20 accounts;
    author_ring k = 4/8/16; coordinated_bloc p = 5/10/20% of all raters, from one camp, each
    rating every target (pushing helpful notes down); stealth_bloc: the same bloc rating only the
    notes it rates anyway, its target ratings turned NOT_HELPFUL.
    """
    console = Console(stderr=True, quiet=quiet)
    config = with_overrides(load_config(config_path), {"integrity": {"surprise": surprise}})
    with console.status("evaluating…") as spinner:
        table = run_evaluation(
            scale=scale, seed=seed, scenarios=attacks or None, strengths=strengths or None, targets=targets,
            scorers=scorers, workdir=out_dir / "data" if keep_data else None,
            progress=lambda step: spinner.update(step), config=config,
        )  # fmt: skip
    sweep = ", ".join(f"{n} ({SWEEP[n][3]})" for n in (attacks or SWEEP))
    header = (
        f"# bridgewatch evaluate: scale {scale}, seed {seed}, scorers {scorers}\n\n"
        f"Scenarios (direction): {sweep}. Statuses before lock and stabilization; "
        "honest accuracy on non-target notes against the truth.\n\n"
        f"{COUNTERFACTUALS}"
    )
    md, csv = write_tables(table, out_dir, header)
    click.echo(markdown_table(table))
    click.echo(checks_markdown(check_targets(table)))
    click.echo(f"wrote {md} and {csv}")
