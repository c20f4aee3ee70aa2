"""Scoring runs on one thread pool, numba's; BLAS stays single-threaded while it runs.

Numba's OpenMP workers spin for a while after each parallel kernel, and OpenBLAS starts its own
workers for any call above a few thousand elements (the topic model's logistic regression, small
matrix products). On a two-core machine the two pools then take turns on the same cores: limiting
BLAS to one thread made the topic model 1.5x faster and a group scorer's prescoring twice as fast.
A single-threaded BLAS also sums in one order, so its results do not depend on the core count.
For the same reason small fits run numba itself on one thread (``threads_for``); every
optimizer (the logistic and the MF Adam fits) shares that one cutoff.

Where every fit of a phase is that small (an incremental final run rescoring a few thousand notes,
a small community), one scorer at a time leaves the second core idle. ``scorer_pool`` then runs
two scorers at once, each on one numba thread: results do not depend on the thread count, so
the bytes are the same as one at a time.
"""

from __future__ import annotations

import contextlib
import functools
import types
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

import numba
from threadpoolctl import threadpool_limits

# Fits smaller than this run on one thread: their epochs take well under a millisecond, and on a
# busy machine waiting for a second thread at every epoch's barrier costs more than it saves.
SERIAL_BELOW = 200_000

# Scorers run two at a time (``scorer_pool``) when the matrix they fit has fewer ratings than this.
# Their fits then mostly run on one thread anyway, and two scorers' transient arrays (up to ~100
# bytes a fitted rating each) stay under ~1 GiB. Bigger runs keep one scorer at a time, each on
# every thread, so their peak memory is one scorer's.
CONCURRENT_BELOW = 5_000_000

P = ParamSpec("P")
R = TypeVar("R")


def twin_kernels(**options: object) -> Callable[[Callable], tuple[Callable, Callable]]:
    """Decorator: (serial, parallel) compiled forms of one kernel written with ``numba.prange``,
    which is ``range`` in the first; ``options`` go to both ``numba.njit`` calls (plus
    ``parallel=True`` to the second). The same code, so the same bits: the serial form runs where
    a parallel region's start and barrier would cost more than the pass (small passes, one numba
    thread). The serial twin gets its own name, so numba's on-disk cache keeps the two apart."""

    def both(fn: Callable) -> tuple[Callable, Callable]:
        twin = types.FunctionType(fn.__code__, fn.__globals__, f"{fn.__name__}_serial", fn.__defaults__)
        twin.__qualname__ = f"{fn.__qualname__}_serial"
        return (
            numba.njit(cache=True, **options)(twin),  # type: ignore[call-overload]
            numba.njit(cache=True, parallel=True, **options)(fn),  # type: ignore[call-overload]
        )

    return both


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


class _Inline(Executor):
    """An executor that runs each task as it is submitted, on the calling thread."""

    def submit(self, fn: Callable[..., R], /, *args: object, **kwargs: object) -> Future[R]:
        future: Future[R] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # handed to whoever asks for the result, as a pool would
            future.set_exception(exc)
        return future


@contextlib.contextmanager
def scorer_pool(n_ratings: int) -> Iterator[Executor]:
    """An executor for the scorers of one phase: two threads of one numba thread each when the
    caller has two or more numba threads and the phase fits fewer than ``CONCURRENT_BELOW``
    ratings, otherwise inline on the calling thread (the caller's thread count). A task may wait
    on a task submitted before it (a Gaussian scorer on its base scorer): with first-in first-out
    workers, that one is already running or done."""
    threads = numba.get_num_threads()
    if threads < 2 or n_ratings >= CONCURRENT_BELOW:
        yield _Inline()
        return
    # A new thread starts with numba's default count, not the caller's: set it in each worker.
    with ThreadPoolExecutor(2, initializer=numba.set_num_threads, initargs=(threads // 2,)) as pool:
        yield pool
