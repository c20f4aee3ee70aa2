"""Where the heavy sweeps run: local (numpy + numba) or distributed (Spark).

An engine satisfies ``bridgewatch.scoring.sweeps.SweepEngine``; the scoring pipeline takes one as
its ``engine`` argument and never imports this package. ``make_engine`` is what the CLI calls.
"""

from __future__ import annotations

from bridgewatch.errors import ConfigError
from bridgewatch.scoring.sweeps import SweepEngine

ENGINES: tuple[str, ...] = ("local", "spark")


def make_engine(name: str, *, spark_master: str | None = None, partitions: int | None = None) -> SweepEngine:
    """The engine called ``name``; ``spark_master`` (e.g. ``local[4]``, ``spark://host:7077``) and
    ``partitions`` only apply to Spark. Spark is imported only when asked for."""
    if name == "local":
        from bridgewatch.engines.local import LocalEngine

        return LocalEngine()
    if name == "spark":
        from bridgewatch.engines.spark import SparkEngine

        return SparkEngine.start(spark_master, partitions=partitions)
    raise ConfigError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")


def close_engine(engine: SweepEngine) -> None:
    """Stop what an engine started (a Spark session); nothing for the local one."""
    stop = getattr(engine, "stop", None)
    if callable(stop):
        stop()


__all__ = ["ENGINES", "close_engine", "make_engine"]
