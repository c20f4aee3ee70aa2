"""Fixtures shared by several test modules."""

from __future__ import annotations

import numba
import pytest

from bridgewatch.scoring import rating_pass as RP


@pytest.fixture(params=[1, 2], ids=["serial", "parallel-2threads"])
def pass_threads(request, monkeypatch):
    """The rating passes' serial forms on one thread; their parallel forms (forced at any size,
    ``rating_pass.PARALLEL_FROM`` = 0) on two, so both forms are pinned to the same bytes."""
    before = numba.get_num_threads()
    numba.set_num_threads(min(request.param, numba.config.NUMBA_NUM_THREADS))
    if request.param > 1:
        monkeypatch.setattr(RP, "PARALLEL_FROM", 0)
    yield
    numba.set_num_threads(before)
