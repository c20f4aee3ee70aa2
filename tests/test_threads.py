"""BLAS stays single-threaded while scoring runs (numba owns the cores), and is restored after."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from bridgewatch.scoring import pipeline
from bridgewatch.scoring.threads import serial_blas


def _blas_threads() -> list[int]:
    np.dot(np.ones(3), np.ones(3))  # make sure numpy's BLAS is loaded
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_serial_blas_limits_inside_and_restores_after() -> None:
    if not _blas_threads():
        pytest.skip("no BLAS library visible to threadpoolctl")
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        inside = serial_blas(_blas_threads)()
        assert inside == [1] * len(before)
        assert _blas_threads() == before


def test_serial_blas_passes_arguments_results_and_errors() -> None:
    assert serial_blas(lambda a, *, b: a + b)(2, b=3) == 5

    @serial_blas
    def boom() -> None:
        raise ValueError("kept")

    with pytest.raises(ValueError, match="kept"):
        boom()


@pytest.mark.parametrize("name", ["score_dataset", "prescore_dataset", "final_dataset", "contributor_frame"])
def test_pipeline_entry_points_run_with_serial_blas(name: str) -> None:
    assert getattr(pipeline, name).__wrapped__ is not None


def test_scorer_pool_runs_small_phases_two_at_a_time_each_on_one_numba_thread() -> None:
    numba = pytest.importorskip("numba")
    from bridgewatch.scoring import threads

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one numba thread on this machine")
    before = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        gate = threading.Barrier(2, timeout=10)

        def meet() -> tuple[int, int]:
            gate.wait()  # both tasks must be running at once, or this times out
            return threading.get_ident(), numba.get_num_threads()

        with threads.scorer_pool(1000) as pool:
            a, b = pool.submit(meet), pool.submit(meet)
            (ta, na), (tb, nb) = a.result(), b.result()
        assert ta != tb and na == nb == 1
        assert numba.get_num_threads() == 2  # the caller's count is its own
        with threads.scorer_pool(threads.CONCURRENT_BELOW) as pool:  # big: inline, caller's threads
            ident, n = pool.submit(lambda: (threading.get_ident(), numba.get_num_threads())).result()
        assert ident == threading.get_ident() and n == 2
        numba.set_num_threads(1)
        with threads.scorer_pool(1000) as pool:  # one thread asked for: inline
            assert pool.submit(threading.get_ident).result() == threading.get_ident()
    finally:
        numba.set_num_threads(before)


def test_inline_pool_hands_errors_to_the_result_as_a_thread_pool_does() -> None:
    from bridgewatch.scoring import threads

    with threads.scorer_pool(threads.CONCURRENT_BELOW) as pool:
        failed = pool.submit(lambda: 1 / 0)
        after = pool.submit(lambda: "still runs")
    with pytest.raises(ZeroDivisionError):
        failed.result()
    assert after.result() == "still runs"


def test_final_scoring_two_scorers_at_a_time_writes_the_same_bytes(tmp_path, monkeypatch) -> None:
    """Every scorer's final run, Gaussian scorers waiting on their base scorer included, gives the
    same frames whether scorers run one at a time or two at a time."""
    numba = pytest.importorskip("numba")
    from bridgewatch.io import read_dataset
    from bridgewatch.scoring import threads
    from bridgewatch.sim.config import config_for_scale
    from bridgewatch.sim.simulate import simulate

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one numba thread on this machine")
    simulate(config_for_scale("tiny", seed=7), tmp_path)
    dataset = read_dataset(tmp_path)
    epoch = 1_795_305_600_000
    pre = pipeline.prescore_dataset(dataset)
    started: list[str] = []
    clock = pipeline.Clock(started.append)
    numba.set_num_threads(2)
    together = pipeline.final_dataset(dataset, pre, epoch_millis=epoch, clock=clock)
    monkeypatch.setattr(pipeline, "scorer_pool", lambda n: threads.scorer_pool(threads.CONCURRENT_BELOW))
    alone = pipeline.final_dataset(dataset, pre, epoch_millis=epoch)
    assert any(name.startswith("final Gaussian") for name in started)
    assert set(together.runs) == set(alone.runs) and together.warnings == alone.warnings
    for name in ("scored_notes", "note_status_history", "aux_note_info"):
        pd.testing.assert_frame_equal(getattr(together, name), getattr(alone, name), check_exact=True)
