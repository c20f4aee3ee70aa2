"""The factorization's sweeps as Spark grouped aggregations (``pip install 'bridgewatch[spark]'``).

A half-sweep (every note given the raters, or every rater given the notes) is one Spark job: the
cached ratings join the other side's current parameters (a broadcast table), each rating
contributes ``t = value − μ − i_other`` and the other side's factor vector ``x``, and
``groupBy(row).agg(sum(...))`` yields each row's normal equations ``A = Σ [1,x][1,x]ᵀ``,
``b = Σ [1,x]·t``. Only those (1+k)(2+k)/2 + (1+k) numbers per row come back to the driver, where
one batched ridge solve (``note_solve.solve_normal``) gives the new parameters. No Python runs per
rating: the hot path is Catalyst expressions.

The driver holds the parameters (O(notes + raters)); executors hold the ratings (O(R)), cached
twice — hash-partitioned by note and sorted by (note, rater), and by rater sorted by
(rater, note). A row's ratings then sit in one partition in the local engine's order, the
broadcast join keeps that partitioning, and the aggregation needs no shuffle: every sum is taken
in a fixed order, so reruns give identical bits and the values match the local engine to
rounding. μ's residual sum is not another pass over the ratings: it follows from the statistics
of the half-sweep that just ran (``_residual_from_stats``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from bridgewatch.errors import ConfigError
from bridgewatch.scoring.mf import MFProblem
from bridgewatch.scoring.note_solve import solve_normal

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

# Conf for the sessions this module starts or joins. The sweeps' plans have no shuffle to adapt,
# so adaptive execution only adds planning time per sweep (and could re-plan the aggregation).
SESSION_DEFAULTS: dict[str, str] = {
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.adaptive.enabled": "false",
}


def start_session(
    master: str | None = None, *, app_name: str = "bridgewatch", conf: Mapping[str, str] | None = None
) -> SparkSession:
    """A ``SparkSession`` on ``master`` (None: whatever spark-submit or the environment says).

    Fails with a ``ConfigError`` naming what to install when pyspark or Java is missing.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError("the Spark engine needs pyspark: pip install 'bridgewatch[spark]'") from exc
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    settings = {**SESSION_DEFAULTS, **(conf or {})}
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        return builder.getOrCreate()
    except Exception as exc:  # py4j/pyspark raise several types when the JVM cannot start
        java = os.environ.get("JAVA_HOME", "not set")
        raise ConfigError(
            f"could not start Spark on master {master or '(default)'}: {exc}. "
            f"The Spark engine needs Java 17+ on PATH or in JAVA_HOME (JAVA_HOME={java})."
        ) from exc


class SparkEngine:
    """Runs ``BoundSweeps`` on a Spark session; one engine serves every fit of a scoring run.

    ``partitions``: how many partitions the cached ratings get (default: the session's default
    parallelism). Bigger clusters want 2–4 per executor core.
    """

    name = "spark"

    def __init__(self, session: SparkSession, partitions: int | None = None) -> None:
        self.session = session
        self.partitions = int(partitions or session.sparkContext.defaultParallelism)
        if self.partitions < 1:
            raise ConfigError(f"Spark engine: partitions must be ≥ 1, got {partitions}")

    @classmethod
    def start(
        cls,
        master: str | None = None,
        *,
        partitions: int | None = None,
        conf: Mapping[str, str] | None = None,
    ) -> SparkEngine:
        return cls(start_session(master, conf=conf), partitions)

    def bind(self, problem: MFProblem) -> SparkSweeps:
        return SparkSweeps(self.session, problem, self.partitions)

    def stop(self) -> None:
        self.session.stop()


def _param_table(n: int, intercept: np.ndarray, factor: np.ndarray, key: str, mu: float = 0.0) -> pa.Table:
    """The broadcast side of a half-sweep: ``key`` 0..n-1, ``mu``, ``i`` and ``f0..f{k-1}``.

    μ travels as a column, not a literal, so every sweep's query compiles to the same code.
    """
    cols: dict[str, Any] = {
        key: pa.array(np.arange(n, dtype=np.int32)),
        "mu": pa.array(np.full(n, float(mu))),
        "i": pa.array(np.asarray(intercept, dtype=np.float64)),
    }
    for f in range(factor.shape[1]):
        cols[f"f{f}"] = pa.array(np.ascontiguousarray(factor[:, f], dtype=np.float64))
    return pa.table(cols)


def _stat_columns(k: int) -> list[Column]:
    """Sum expressions of one row's normal equations, named as ``_unpack`` reads them."""
    from pyspark.sql import functions as F

    t = F.col("value") - F.col("mu") - F.col("i")
    x = [F.col(f"f{f}") for f in range(k)]
    out = [F.count(F.lit(1)).alias("n"), F.sum(t).alias("b0")]
    for f in range(k):
        out.append(F.sum(x[f]).alias(f"s{f}"))
        out.append(F.sum(x[f] * t).alias(f"b{f + 1}"))
        for g in range(f + 1):
            out.append(F.sum(x[f] * x[g]).alias(f"q{f}_{g}"))
    return out


def _unpack(table: pa.Table, key: str, m: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(A float64[m, d, d], b float64[m, d]) from the collected per-row sums; absent rows stay 0."""
    rows = table.column(key).to_numpy()
    d = k + 1
    a = np.zeros((m, d, d))
    b = np.zeros((m, d))

    def col(name: str) -> np.ndarray:
        return table.column(name).to_numpy().astype(np.float64)

    a[rows, 0, 0] = col("n")
    b[rows, 0] = col("b0")
    for f in range(k):
        a[rows, f + 1, 0] = a[rows, 0, f + 1] = col(f"s{f}")
        b[rows, f + 1] = col(f"b{f + 1}")
        for g in range(f + 1):
            a[rows, f + 1, g + 1] = a[rows, g + 1, f + 1] = col(f"q{f}_{g}")
    return a, b


def _residual_from_stats(a: np.ndarray, b: np.ndarray, mu: float, out_int, out_fac) -> float:
    """Σ over ratings of value − i_n − i_u − f_n·f_u after a half-sweep, without touching ratings.

    For a row r solved from ``A, b`` (built with μ): its ratings' residuals with the new
    ``(i_r, f_r)`` sum to ``b0 + n·μ − n·i_r − Σ_f f_rf·s_f`` (n = A00, s = A[1:, 0]).
    """
    n = a[:, 0, 0]
    s = a[:, 1:, 0]
    per_row = b[:, 0] + n * mu - n * out_int - np.einsum("rk,rk->r", out_fac, s)
    return float(np.sum(per_row))


class SparkSweeps:
    """One fit's ratings cached on the cluster (lazily, per side) and its half-sweeps."""

    def __init__(self, session: SparkSession, problem: MFProblem, partitions: int) -> None:
        self._spark = session
        self._p = problem
        self._partitions = partitions
        self._ratings = session.createDataFrame(
            pa.table(
                {
                    "note": pa.array(problem.note.astype(np.int32)),
                    "rater": pa.array(problem.rater.astype(np.int32)),
                    "value": pa.array(problem.value.astype(np.float64)),
                }
            )
        )
        self._cached: dict[str, DataFrame] = {}
        self._last: tuple | None = None

    def _by(self, key: str, other: str) -> DataFrame:
        if key not in self._cached:
            df = self._ratings.repartition(self._partitions, key).sortWithinPartitions(key, other)
            self._cached[key] = df.persist()
        return self._cached[key]

    def _half_sweep(self, key, other, m, mu, other_int, other_fac, pen_int, pen_fac):
        from pyspark.sql import functions as F

        k = other_fac.shape[1]
        params = self._spark.createDataFrame(
            _param_table(other_int.shape[0], other_int, other_fac, other, mu)
        )
        joined = self._by(key, other).join(F.broadcast(params), other)
        stats = joined.groupBy(key).agg(*_stat_columns(k)).toArrow()
        a, b = _unpack(stats, key, m, k)
        sol = solve_normal(a, b, pen_int, pen_fac)
        out_int, out_fac = np.ascontiguousarray(sol[:, 0]), np.ascontiguousarray(sol[:, 1:])
        self._last = (key, a, b, mu, other_int, other_fac, out_int, out_fac)
        return out_int, out_fac

    def solve_notes(self, mu, rater_int, rater_fac, pen_int, pen_fac):
        return self._half_sweep("note", "rater", self._p.n_notes, mu, rater_int, rater_fac, pen_int, pen_fac)

    def solve_raters(self, mu, note_int, note_fac, pen_int, pen_fac):
        return self._half_sweep("rater", "note", self._p.n_raters, mu, note_int, note_fac, pen_int, pen_fac)

    def residual_sum(self, note_int, note_fac, rater_int, rater_fac) -> float:
        if self._last is not None:
            key, a, b, mu, o_int, o_fac, out_int, out_fac = self._last
            rows = (note_int, note_fac) if key == "note" else (rater_int, rater_fac)
            others = (rater_int, rater_fac) if key == "note" else (note_int, note_fac)
            if rows[0] is out_int and rows[1] is out_fac and others[0] is o_int and others[1] is o_fac:
                return _residual_from_stats(a, b, mu, out_int, out_fac)
        return self._residual_pass(note_int, note_fac, rater_int, rater_fac)

    def _residual_pass(self, note_int, note_fac, rater_int, rater_fac) -> float:
        """One pass over the ratings; per-partition sums added on the driver in partition order."""
        from pyspark.sql import functions as F

        k = note_fac.shape[1]
        notes = self._spark.createDataFrame(_param_table(self._p.n_notes, note_int, note_fac, "note"))
        raters = self._spark.createDataFrame(_param_table(self._p.n_raters, rater_int, rater_fac, "rater"))
        names = ["i", *[f"f{f}" for f in range(k)]]
        raters = raters.select("rater", *[F.col(c).alias(f"r{c}") for c in names])
        joined = self._by("note", "rater").join(F.broadcast(notes), "note").join(F.broadcast(raters), "rater")
        pred = F.col("i") + F.col("ri")
        for f in range(k):
            pred = pred + F.col(f"f{f}") * F.col(f"rf{f}")
        parts = (
            joined.groupBy(F.spark_partition_id().alias("part"))
            .agg(F.sum(F.col("value") - pred).alias("s"))
            .toArrow()
        )
        order = np.argsort(parts.column("part").to_numpy())
        return float(np.sum(parts.column("s").to_numpy()[order]))

    def close(self) -> None:
        for df in self._cached.values():
            df.unpersist()
        self._cached.clear()
        self._last = None
