"""Scoring runs on one thread pool, numba's; BLAS stays single-threaded while it runs.

Numba's OpenMP workers spin for a while after each parallel kernel, and OpenBLAS starts its own
workers for any call above a few thousand elements (the topic model's logistic regression, small
matrix products). On a two-core machine the two pools then take turns on the same cores: limiting
BLAS to one thread made the topic model 1.5x faster and a group scorer's prescoring twice as fast.
A single-threaded BLAS also sums in one order, so its results do not depend on the core count.
For the same reason small fits run numba itself on one thread (``threads_for``); every
optimizer (the logistic and the MF Adam fits) shares that one cutoff.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

import numba
from threadpoolctl import threadpool_limits

# Fits smaller than this run on one thread: their epochs take well under a millisecond, and on a
# busy machine waiting for a second thread at every epoch's barrier costs more than it saves.
SERIAL_BELOW = 200_000

P = ParamSpec("P")
R = TypeVar("R")


def serial_blas(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` with every BLAS library limited to one thread (restored afterwards)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def threads_for(n_ratings: int) -> Iterator[None]:
    """One numba thread for fits below ``SERIAL_BELOW`` ratings (their epochs are too short to pay
    for waking a second thread at every barrier); the caller's count otherwise, restored after."""
    threads = numba.get_num_threads()
    if n_ratings < SERIAL_BELOW:
        numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(threads)
