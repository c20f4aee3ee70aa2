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


_TRIM = _malloc_trim()


def release() -> None:
    """Return the free heap pages of every malloc arena to the operating system, if it can."""
    if _TRIM is not None:
        _TRIM(0)
