"""The in-process engine: numba kernels (or their numpy twins) over the CSR rating views.

It is the scoring layer's own default (``scoring.sweeps.LocalEngine``); this module names it
beside the other engines so callers pick engines in one place.
"""

from __future__ import annotations

from bridgewatch.scoring.sweeps import LocalEngine, LocalSweeps

__all__ = ["LocalEngine", "LocalSweeps"]
