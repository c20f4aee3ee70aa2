"""Rater similarity, polarization and coordinated-group detection (§7).

Every function takes plain arrays (ids as ints, times in ms) and returns arrays or frames; nothing
here imports the scorer. Entry points:

- ``adapters.detect_integrity(matrix, notes)`` → everything below for a ``RatingMatrix`` in one call
  (imported from its module, so the array core does not pull in ``bridgewatch.io``).
- ``post_selection_similarity`` → PSS clique per participant; ``apply_pss`` → keep mask (§7.1).
- ``quasi_cliques`` → ``quasiCliqueValue`` per rater; ``correlated_rater`` → flag per rating (§7.2).
- ``top_k_similar``, ``opinion_groups`` (similarity), ``note_rater_diversity``,
  ``rater_polarization`` (polarization): report views, assembled per note and per rater by
  ``views.note_view`` / ``views.rater_view`` and written by the batch job via
  ``adapters.integrity_tables``.
"""

from bridgewatch.integrity.polarization import note_rater_diversity, rater_polarization
from bridgewatch.integrity.pss import (
    PSSParams,
    apply_pss,
    participant_space,
    post_selection_similarity,
)
from bridgewatch.integrity.quasi_clique import QuasiCliqueParams, correlated_rater, quasi_cliques
from bridgewatch.integrity.similarity import opinion_groups, top_k_similar

__all__ = [
    "PSSParams",
    "QuasiCliqueParams",
    "apply_pss",
    "correlated_rater",
    "note_rater_diversity",
    "opinion_groups",
    "participant_space",
    "post_selection_similarity",
    "quasi_cliques",
    "rater_polarization",
    "top_k_similar",
]
