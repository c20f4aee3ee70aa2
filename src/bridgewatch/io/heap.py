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


def release(min_free: int = 0) -> None:
    """Return the free heap pages of every malloc arena to the operating system, if it can.

    ``min_free``: only when the arenas hold at least that many free bytes (always where that is
    unknown). A trim is not free: it costs its walk of the arenas, and every page it returns
    faults back in when the next step allocates again; with little free it buys nothing."""
    if _TRIM is None:
        return
    if min_free > 0:
        free = free_bytes()
        if free is not None and free < min_free:
            return
    _TRIM(0)
