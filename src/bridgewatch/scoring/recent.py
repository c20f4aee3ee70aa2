"""A small cache of the last values computed per owner object, shared between threads.

Scoring caches a few O(R) masks per ``ScoringInputs`` (a scorer's scope, its final-round mask)
that several of its steps ask for in turn. The owner is held weakly, so a run's entries go with
its inputs; only the last few are kept, since each costs bytes per rating.
"""

from __future__ import annotations

import threading
import weakref


class Recent:
    """The last ``size`` values computed per owner object (held weakly), safe to share between
    the threads of ``threads.scorer_pool``: two scorers then ask for their masks interleaved."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._owners: weakref.WeakKeyDictionary[object, dict] = weakref.WeakKeyDictionary()

    def get(self, owner: object, key: object) -> object | None:
        with self._lock:
            values = self._owners.get(owner)
            if values is None or key not in values:
                return None
            values[key] = values.pop(key)  # most recently used last
            return values[key]

    def put(self, owner: object, key: object, value: object) -> None:
        with self._lock:
            values = self._owners.setdefault(owner, {})
            values[key] = value
            while len(values) > self.size:
                del values[next(iter(values))]

    def clear(self, owner: object) -> None:
        """Forget every value kept for ``owner``."""
        with self._lock:
            self._owners.pop(owner, None)

    def held(self, owner: object) -> int:
        """How many values are kept for ``owner``."""
        with self._lock:
            return len(self._owners.get(owner, ()))
