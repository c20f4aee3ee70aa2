"""Handing memory the reader freed back to the operating system before its next big step.

glibc serves allocations below its mmap threshold from the heap, and raises that threshold (up
to 32 MiB) each time a larger mmapped block is freed; freed heap memory then stays with the
process (up to twice the threshold at the heap's top, any amount below it). The reader frees
tens of MiB of parse tables and sort scratch right before it allocates the next arrays, so
without a trim the peak RSS carries that dead memory too (~10% of the final matrix at 2M
ratings, measured). ``malloc_trim(0)`` releases free pages of every arena in well under a
millisecond here; elsewhere (macOS, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim  # the C library this interpreter runs on
    except (OSError, AttributeError):
        return None


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
            "keepcost",
        )
    ]  # fmt: skip


def _mallinfo2() -> Callable[[], _MallInfo2] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None).mallinfo2  # glibc 2.33 and later
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    fn.argtypes = []
    return fn


_TRIM = _malloc_trim()
_INFO = _mallinfo2()


def free_bytes() -> int | None:
    """Bytes the malloc arenas hold free (glibc's ``mallinfo2().fordblks``), None where unknown."""
    return None if _INFO is None else int(_INFO().fordblks)


def use_malloc_for_arrow() -> None:
    """Make Arrow allocate its buffers with malloc instead of its bundled mimalloc.

    Why: mimalloc keeps the pages of freed buffers for reuse, in 1 GiB arenas of its own that
    ``malloc_trim`` cannot reach, and the readers' conversions (TSV and Parquet to frames, the
    cache's columns) free about as much as they keep. Measured at ``large``: the TSV read's peak
    1.32 → 1.14 GiB at the same speed, and 0.44 GiB less anonymous memory held when prescoring
    starts (1.67 → 1.24 GiB resident), most of it freed Arrow buffers mimalloc still held.
    A deployment that chose a pool through ``ARROW_DEFAULT_MEMORY_POOL`` keeps its choice."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    import pyarrow as pa

    if pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pa.system_memory_pool())


def _release_arrow() -> None:
    """Hand back what Arrow's own allocator (mimalloc or jemalloc, not malloc) keeps of the
    buffers it freed: it holds freed pages for reuse, and the frames' conversions free as much as
    they keep (measured at ``large``: 0.19 GiB of a 0.65 GiB read returned). Only where pyarrow
    is loaded already: importing it here would cost more than any trim. With the system pool
    (``use_malloc_for_arrow``) this is skipped: there ``release_unused`` is an unconditional
    ``malloc_trim``, which would defeat ``release``'s ``min_free`` gate at every phase end."""
    pa = sys.modules.get("pyarrow")
    if pa is None:
        return
    pool = pa.default_memory_pool()
    if pool.backend_name != "system":
        pool.release_unused()


def release(min_free: int = 0) -> None:
    """Return the free heap pages of every malloc arena to the operating system, if it can.

    ``min_free``: only when the arenas hold at least that many free bytes (always where that is
    unknown). A trim is not free: it costs its walk of the arenas, and every page it returns
    faults back in when the next step allocates again; with little free it buys nothing."""
    _release_arrow()
    if _TRIM is None:
        return
    if min_free > 0:
        free = free_bytes()
        if free is not None and free < min_free:
            return
    _TRIM(0)
