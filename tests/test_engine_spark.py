"""The Spark engine on ``local[2]`` gives the local engine's parameters and statuses.

One SparkSession serves the module. pyspark and Java are part of what ``make test`` installs and
expects: when either is missing these tests fail with the engine's own message, they do not skip.
Fits are capped at a few sweeps (the same cap for both engines): the engine's job is to run the
same sweeps, and each Spark sweep costs two small jobs.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from bridgewatch.cli import cli
from bridgewatch.engines import close_engine, make_engine
from bridgewatch.engines.spark import SparkEngine, _residual_from_stats
from bridgewatch.errors import ConfigError
from bridgewatch.scoring.config import MFConfig, ScoringConfig
from bridgewatch.scoring.mf import build_problem, fit_mf
from bridgewatch.scoring.scorer import prepare_inputs
from bridgewatch.scoring.scorer_run import run_scorer
from bridgewatch.scoring.scorer_specs import core
from bridgewatch.scoring.sweeps import LocalEngine
from test_mf import planted
from test_scorer import community

# The engine converts through Arrow only; pyspark warns about pandas 3 on any conversion.
pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")

PARAMS = ("note_intercept", "note_factor", "rater_intercept", "rater_factor")


@pytest.fixture(scope="module")
def spark(tmp_path_factory) -> SparkEngine:
    local_dir = tmp_path_factory.mktemp("spark-local")
    conf = {
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.local.dir": str(local_dir),
        "spark.driver.memory": "1g",
        # A short-lived test JVM: the C1 compiler and one GC thread cost far less CPU to warm up.
        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    }
    engine = SparkEngine.start("local[2]", conf=conf)
    engine.session.sparkContext.setLogLevel("ERROR")
    yield engine
    engine.stop()


def _assert_params_close(a, b, tol=1e-6):
    assert a.mu == pytest.approx(b.mu, abs=tol)
    for name in PARAMS:
        x, y = getattr(a, name), getattr(b, name)
        assert np.array_equal(np.isnan(x), np.isnan(y)), name
        assert np.nanmax(np.abs(x - y)) <= tol, name


def test_fit_matches_local_engine_and_reruns_bit_identically(spark):
    m, _ = planted(n_notes=60, n_raters=150, n_ratings=2500)
    problem = build_problem(m)
    cfg = dataclasses.replace(MFConfig(), max_iterations=2, solver="als")  # the engine serves ALS sweeps
    local = fit_mf(problem, cfg, seed=1)
    remote = fit_mf(problem, cfg, seed=1, engine=spark)
    assert remote.iterations == local.iterations == 2
    _assert_params_close(remote.params, local.params)
    assert remote.loss == pytest.approx(local.loss, rel=1e-9)
    # A fresh bind reshuffles and re-sorts the ratings; the sums must come out bit for bit the same.
    p = remote.params
    ri, rf = p.rater_intercept[problem.rater_full], p.rater_factor[problem.rater_full]
    runs = []
    for _ in range(2):
        sweeps = spark.bind(problem)
        try:
            runs.append(sweeps.solve_notes(p.mu, ri, rf, 2.0, 3.0))
        finally:
            sweeps.close()
    for a, b in zip(runs[0], runs[1], strict=True):
        assert np.array_equal(a, b)


def test_core_scorer_statuses_and_parameters_match_local_engine(spark):
    m, notes, nsh, enroll = community()
    base = ScoringConfig()
    config = dataclasses.replace(base, mf=dataclasses.replace(base.mf, max_iterations=4))
    inputs = prepare_inputs(m, notes, nsh, enroll, config)
    prev = np.full(m.n_notes, -1, dtype=np.int8)
    local = run_scorer(inputs, core(), config, prev, seed=7)
    remote = run_scorer(inputs, core(), config, prev, seed=7, engine=spark)
    np.testing.assert_array_equal(remote.result.status, local.result.status)
    assert len(np.unique(local.result.status)) >= 3  # the comparison covers several outcomes
    _assert_params_close(remote.pre.params, local.pre.params)
    _assert_params_close(remote.pre.first_round, local.pre.first_round)
    for column in local.final.columns:
        x = local.final[column].to_numpy(np.float64)
        y = remote.final[column].to_numpy(np.float64)
        assert np.array_equal(np.isnan(x), np.isnan(y)), column
        assert np.nanmax(np.abs(x - y), initial=0.0) <= 1e-6, column


def test_residual_sum_from_statistics_and_by_pass_agree_with_local(spark):
    m, _ = planted(n_notes=40, n_raters=90, n_ratings=1200, seed=5)
    problem = build_problem(m)
    rng = np.random.default_rng(2)
    ri, rf = rng.normal(size=problem.n_raters), rng.normal(size=(problem.n_raters, 1))
    local, sweeps = LocalEngine().bind(problem), spark.bind(problem)
    try:
        ni, nf = sweeps.solve_notes(0.2, ri, rf, 3.0, 4.0)
        lni, lnf = local.solve_notes(0.2, ri, rf, 3.0, 4.0)
        np.testing.assert_allclose(ni, lni, atol=1e-12)
        np.testing.assert_allclose(nf, lnf, atol=1e-12)
        want = local.residual_sum(ni, nf, ri, rf)
        assert sweeps.residual_sum(ni, nf, ri, rf) == pytest.approx(want, abs=1e-9)  # from the stats
        shifted = ni + 0.5  # not the last solve's output: a pass over the ratings
        assert sweeps.residual_sum(shifted, nf, ri, rf) == pytest.approx(
            local.residual_sum(shifted, nf, ri, rf), abs=1e-9
        )
    finally:
        sweeps.close()


def test_residual_identity_matches_direct_sum():
    rng = np.random.default_rng(0)
    n_rows, per_row, k, mu = 7, 5, 2, 0.3
    x = rng.normal(size=(n_rows, per_row, k))
    t = rng.normal(size=(n_rows, per_row))
    a = np.zeros((n_rows, k + 1, k + 1))
    a[:, 0, 0] = per_row
    a[:, 1:, 0] = x.sum(axis=1)
    b = np.zeros((n_rows, k + 1))
    b[:, 0] = t.sum(axis=1)
    out_int, out_fac = rng.normal(size=n_rows), rng.normal(size=(n_rows, k))
    direct = np.sum(t + mu - out_int[:, None] - np.einsum("rpk,rk->rp", x, out_fac))
    assert _residual_from_stats(a, b, mu, out_int, out_fac) == pytest.approx(direct, rel=1e-12)


def test_make_engine_names():
    assert make_engine("local").name == "local"
    close_engine(make_engine("local"))  # nothing to stop
    with pytest.raises(ConfigError, match="unknown engine"):
        make_engine("dask")


def test_missing_java_is_a_clear_error(tmp_path):
    """Without a usable Java the engine says what to install instead of a py4j traceback."""
    code = (
        "from bridgewatch.engines.spark import start_session\n"
        "from bridgewatch.errors import ConfigError\n"
        "try:\n    start_session('local[1]')\nexcept ConfigError as exc:\n    print('CONFIG-ERROR', exc)\n"
    )
    env = {**os.environ, "JAVA_HOME": str(tmp_path / "no-java"), "SPARK_LOCAL_DIRS": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "CONFIG-ERROR" in out.stdout, out.stderr[-2000:]
    assert "Java 17+" in out.stdout


def test_cli_spark_master_needs_spark_engine(tmp_path):
    result = CliRunner().invoke(
        cli, ["score", str(tmp_path), "--outdir", str(tmp_path / "out"), "--spark-master", "local[2]"]
    )
    assert result.exit_code == 2
    assert "--spark-master needs --engine spark" in result.output
