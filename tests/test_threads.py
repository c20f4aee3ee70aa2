"""BLAS stays single-threaded while scoring runs (numba owns the cores), and is restored after."""

from __future__ import annotations

import numpy as np
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
