"""Arrow's buffers come from malloc, so freed ones go back to the system with the heap's trim
(io.heap.use_malloc_for_arrow says why), unless the deployment chose another pool."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from bridgewatch.io import heap

_POOL = "import pyarrow as pa, bridgewatch.io; print(pa.default_memory_pool().backend_name)"


def _backend(env_pool: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if env_pool is not None:
        env["ARROW_DEFAULT_MEMORY_POOL"] = env_pool
    out = subprocess.run([sys.executable, "-c", _POOL], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_importing_io_makes_arrow_allocate_with_malloc() -> None:
    assert _backend(None) == "system"
    assert pa.default_memory_pool().backend_name == "system"  # this process imported it too


def test_a_pool_chosen_in_the_environment_is_kept() -> None:
    chosen = "jemalloc" if _has("jemalloc") else "mimalloc"
    if not _has(chosen):
        pytest.skip("this pyarrow has neither jemalloc nor mimalloc")
    assert _backend(chosen) == chosen


def _has(name: str) -> bool:
    try:
        getattr(pa, f"{name}_memory_pool")()
    except (NotImplementedError, AttributeError):
        return False
    return True


def _anonymous_mib() -> float:
    with open("/proc/self/smaps_rollup", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("Anonymous:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no Anonymous line")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and glibc's trim")
def test_freed_arrow_buffers_leave_the_process() -> None:
    """It passes under mimalloc too (there ``release_unused`` hands whole segments back), so it
    shows that freed buffers leave, not which pool served them; the first test pins the pool."""
    heap.release()
    before = _anonymous_mib()
    buffers = [pa.allocate_buffer(1 << 20) for _ in range(256)]  # the default pool, as readers use
    for buf in buffers:
        np.frombuffer(buf, dtype=np.uint8)[::4096] = 1  # touch every page
    assert _anonymous_mib() - before > 200
    del buffers
    heap.release()
    assert _anonymous_mib() - before < 64


@pytest.mark.skipif(heap.free_bytes() is None, reason="needs glibc's mallinfo2 and trim")
def test_a_release_under_its_gate_keeps_the_freed_arrow_pages() -> None:
    """With the system pool, Arrow's own ``release_unused`` is a ``malloc_trim``: were it called
    ahead of the ``min_free`` gate, every phase end would trim whatever the arenas held."""
    heap.release()
    buffers = [pa.allocate_buffer(64 << 10) for _ in range(1025)]  # under the mmap threshold: heap
    for buf in buffers:
        np.frombuffer(buf, dtype=np.uint8)[::4096] = 1
    pin = buffers.pop()  # the heap's top stays in use, so free() alone cannot shrink it
    del buffers
    free = heap.free_bytes()
    assert free is not None and free > 48 << 20
    before = _anonymous_mib()
    heap.release(min_free=free + (1 << 30))
    assert _anonymous_mib() > before - 8  # under the gate: nothing handed back
    heap.release()
    assert _anonymous_mib() < before - 48
    del pin
