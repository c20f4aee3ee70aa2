"""``bridgewatch score``: the reference's flags, X's public files in, the four outputs out."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import click
import pandas as pd
from rich.console import Console
from rich.table import Table

from bridgewatch import schema
from bridgewatch.engines import ENGINES, close_engine, make_engine
from bridgewatch.errors import DataFormatError
from bridgewatch.phased import PHASES
from bridgewatch.runner import score_directory
from bridgewatch.scoring.config import PROFILES, load_config, with_overrides
from bridgewatch.scoring.pipeline import PipelineResult

CACHE_FOLDER = ".bridgewatch-cache"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _stage_inputs(data_dir: str | None, files: dict[str, str | None], staging: Path) -> Path:
    """A data directory: the given one, or a folder of links to the four explicit file flags."""
    if data_dir is not None:
        return Path(data_dir)
    if files["notes"] is None or files["ratings"] is None:
        raise click.UsageError("give a data directory, or at least --notes and --ratings")
    staging.mkdir(parents=True, exist_ok=True)
    names = {
        "notes": schema.NOTES_FILE,
        "ratings": "ratings",
        "status": schema.STATUS_FILE,
        "enrollment": schema.ENROLLMENT_FILE,
    }
    for key, target in names.items():
        src = files[key]
        if src is None:
            continue
        path = Path(src).resolve()
        if not path.exists():
            raise DataFormatError("no such file or directory", path=str(path), field=f"--{key}")
        link = staging / (target if path.is_dir() or key != "ratings" else schema.RATINGS_FILE)
        if path.suffix == ".gz" and not link.name.endswith(".gz"):
            link = link.with_name(link.name + ".gz")
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to(path)
    return staging


def print_summary(result: PipelineResult, console: Console, wall: float) -> pd.Series | None:
    """Counts per status, then time per phase and the peak memory of the process; returns the
    status column it read (None without one), one column read once for the caller's note count."""
    status = result.column(schema.SCORED_NOTES_FILE, "finalRatingStatus")
    if status is not None:
        counts = status.value_counts()
        table = Table(title="finalRatingStatus")
        table.add_column("status")
        table.add_column("notes", justify="right")
        for status in (schema.CRH, schema.CRNH, schema.NMR):
            table.add_row(status, str(int(counts.get(status, 0))))
        console.print(table)
    phases = Table(title="time per phase")
    phases.add_column("phase")
    phases.add_column("seconds", justify="right")
    for name, seconds in result.timings.items():
        phases.add_row(name, f"{seconds:.2f}")
    phases.add_row("total (wall)", f"{wall:.2f}")
    console.print(phases)
    console.print(f"peak RSS {_peak_rss_mib():.0f} MiB")
    for w in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")
    return status


@click.command("score")
@click.argument("data_dir", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("-n", "--notes", type=click.Path(), help="notes-00000.tsv")
@click.option("-r", "--ratings", type=click.Path(), help="ratings file or directory")
@click.option("-s", "--status", type=click.Path(), help="noteStatusHistory-00000.tsv")
@click.option("-e", "--enrollment", type=click.Path(), help="userEnrollment-00000.tsv")
@click.option("-o", "--outdir", type=click.Path(file_okay=False), required=True, help="output directory")
@click.option("--seed", type=int, default=42, show_default=True, help="random seed")
@click.option("--epoch-millis", type=int, help="scoring time 'now' in ms (default: the wall clock)")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML config overrides")
@click.option(
    "--profile",
    type=click.Choice(PROFILES),
    help="a shipped config (fast: fewer Adam epochs, see docs/fast.md); --config overrides it",
)
@click.option("--no-parquet", is_flag=True, help="write TSV only")
@click.option("--no-integrity", is_flag=True, help="skip post-selection similarity and quasi-cliques")
@click.option("--no-coordination", is_flag=True,
              help="no coordinated-group defence (ours): X's integrity with --no-surprise")  # fmt: skip
@click.option("--surprise/--no-surprise", default=None,
              help="concerted-surprise defence (ours; default: the config's, on)")  # fmt: skip
@click.option(
    "--cache",
    "cache_dir",
    type=click.Path(file_okay=False),
    help=f"ratings cache folder (default: OUTDIR/{CACHE_FOLDER})",
)
@click.option("--no-cache", is_flag=True, help="always parse the ratings files; write no cache")
@click.option(
    "--phase",
    type=click.Choice(PHASES),
    default="all",
    show_default=True,
    help="run one phase; phases exchange results through the state directory",
)
@click.option(
    "--state", "state_dir", type=click.Path(file_okay=False), help="phase state (default OUTDIR/state)"
)
@click.option("--incremental", is_flag=True, help="final phase: rescore only notes whose inputs changed")
@click.option("--warm-start", is_flag=True, help="prescore phase: start from the saved prescoring")
@click.option("--quiet", is_flag=True, help="no progress or summary")
@click.option(
    "--engine", type=click.Choice(ENGINES), default="local", show_default=True, help="where the MF sweeps run"
)
@click.option("--spark-master", help="master URL for --engine spark: local[4], spark://host:7077, yarn")
def command(
    data_dir: str | None,
    notes: str | None,
    ratings: str | None,
    status: str | None,
    enrollment: str | None,
    outdir: str,
    seed: int,
    epoch_millis: int | None,
    config_path: str | None,
    profile: str | None,
    no_parquet: bool,
    no_integrity: bool,
    no_coordination: bool,
    surprise: bool | None,
    cache_dir: str | None,
    no_cache: bool,
    phase: str,
    state_dir: str | None,
    incremental: bool,
    warm_start: bool,
    quiet: bool,
    engine: str,
    spark_master: str | None,
) -> None:
    """Score notes and contributors the way X's open-source scorer does, deterministically."""
    console = Console(stderr=True, quiet=quiet)
    config = load_config(config_path, profile)
    if no_coordination:
        config = with_overrides(config, {"integrity": {"coordination": False}})
    if surprise is not None:
        config = with_overrides(config, {"integrity": {"surprise": surprise}})
    files = {"notes": notes, "ratings": ratings, "status": status, "enrollment": enrollment}
    source = _stage_inputs(data_dir, files, Path(outdir) / "_inputs")
    if spark_master is not None and engine != "spark":
        raise click.UsageError("--spark-master needs --engine spark")
    if no_cache and cache_dir is not None:
        raise click.UsageError("--cache and --no-cache exclude each other")
    cache = None if no_cache else Path(cache_dir) if cache_dir is not None else Path(outdir) / CACHE_FOLDER
    start = time.perf_counter()
    sweeps = make_engine(engine, spark_master=spark_master)
    try:
        with console.status("scoring…") as spinner:
            result = score_directory(
                source, outdir, seed=seed, epoch_millis=epoch_millis, config=config,
                integrity=not no_integrity, parquet=not no_parquet, cache_dir=cache,
                progress=lambda step: spinner.update(f"scoring: {step}"), engine=sweeps,
                phase=phase, state_dir=state_dir, incremental=incremental, warm_start=warm_start,
            )  # fmt: skip
    finally:
        close_engine(sweeps)
    status = print_summary(result, console, time.perf_counter() - start)
    if not quiet and status is not None and len(status):
        click.echo(f"wrote {len(status)} notes to {Path(outdir) / schema.SCORED_NOTES_FILE}")
