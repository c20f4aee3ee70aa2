"""A scorer's own ratings as a matrix of their own: what the group and topic scorers fit on.

Each of the ~20 group, multi-group and topic scorers sees a few percent of the ratings (its
raters' ratings, or its topic's), yet every pass of its prescoring and final scoring — scope
masks, count filters, the helpfulness pass, the harassment labels, the final-round masks, the
filters — walked all R ratings and made bool[R] masks, and read the notes, raters and values of
every rating. At X's 206M ratings that was ~5 GiB of masks and mapped columns for a fit of a few
million ratings, and each pass cost as much as Core's. On the scope's ratings alone
(``RatingMatrix.subset``: note and rater spaces kept whole, ratings in the same order) every
pass reads only those, and the results are the same: every step of a scorer reads only the
ratings in its scope, except the capture test (§6.1), which counts a note's ratings from outside
the scope too, and is measured on the whole matrix first (``ScoringInputs.capture``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bridgewatch.scoring import preprocess as P
from bridgewatch.scoring.scorer import ScoringInputs, forget_scopes, scope_mask
from bridgewatch.scoring.scorer_specs import ScorerSpec

# A scorer whose scope holds more than this share of the ratings scores on the whole matrix: a
# subset would copy most of it (Core and Expansion see ~90%).
SCOPE_SHARE = 0.5


def on_scope(inputs: ScoringInputs, spec: ScorerSpec) -> ScoringInputs:
    """``inputs`` restricted to the ratings in ``spec``'s scope, when they are at most
    ``SCOPE_SHARE`` of the matrix's and the restriction keeps every result; else ``inputs``.

    The restricted inputs keep the note and rater index spaces, so a prescoring or a run scored on
    them is in ``inputs``' spaces. Not restricted: a scope whose capture test counts ratings of a
    topic scope (the strict test counts topic-scoped ratings, the reported-notes test all of
    them: no group scorer has a topic, so both are the whole matrix's)."""
    m = inputs.matrix
    scope, in_group = scope_mask(inputs, spec)
    kept = int(np.count_nonzero(scope))
    if kept > SCOPE_SHARE * m.n_ratings:
        return inputs
    capture = None
    if spec.capture_threshold is not None:
        topics = P.note_topic_mask(
            m.n_notes, inputs.note_topic, topic=spec.topic, exclude_topics=spec.exclude_topics
        )
        if not topics.all():
            return inputs
        capture = P.capture_share(m, inputs.base_keep, in_group)
        capture.flags.writeable = False
    sub = m.subset(scope)
    base_keep = inputs.base_keep[scope]
    del in_group
    forget_scopes(inputs)  # its masks over R are read no more (``subset`` handed the columns back)
    return dataclasses.replace(inputs, matrix=sub, base_keep=base_keep, capture=capture)
