"""Fixtures shared by several test modules."""

from __future__ import annotations

from pathlib import Path

import numba
import pytest

from bridgewatch.io import read_dataset
from bridgewatch.io.dataset import Dataset
from bridgewatch.scoring import rating_pass as RP
from bridgewatch.sim.config import config_for_scale
from bridgewatch.sim.simulate import simulate


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


@pytest.fixture(scope="session")
def tiny_community(tmp_path_factory) -> Dataset:
    """A tiny simulated community (seed 7), read once for the modules that score it whole."""
    data = tmp_path_factory.mktemp("tiny7")
    simulate(config_for_scale("tiny", seed=7), Path(data))
    return read_dataset(data)
