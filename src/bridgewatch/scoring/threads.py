"""Scoring runs on one thread pool, numba's; BLAS stays single-threaded while it runs.

Numba's OpenMP workers spin for a while after each parallel kernel, and OpenBLAS starts its own
workers for any call above a few thousand elements (the topic model's logistic regression, small
matrix products). On a two-core machine the two pools then take turns on the same cores: limiting
BLAS to one thread made the topic model 1.5x faster and a group scorer's prescoring twice as fast.
A single-threaded BLAS also sums in one order, so its results do not depend on the core count.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from threadpoolctl import threadpool_limits

P = ParamSpec("P")
R = TypeVar("R")


def serial_blas(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` with every BLAS library limited to one thread (restored afterwards)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper
