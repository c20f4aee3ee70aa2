"""Explanation tags and the InsufficientExplanation rule (spec §3.6).

A CRH note is explained by its two most used helpful tags, a CRNH note by its two most used
not-helpful tags. A tag qualifies when at least ``min_ratings_to_get_tag`` ratings carry it;
ties in count go to the tag with the higher priority (``schema.*_TAG_PRIORITY``). A rated note
with fewer than two qualifying tags cannot keep its status and falls back to NMR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from bridgewatch.io.matrix import STREAM_CHUNK, streamed
from bridgewatch.schema import (
    HELPFUL_TAG_PRIORITY,
    HELPFUL_TAGS,
    NOT_HELPFUL_TAG_PRIORITY,
    NOT_HELPFUL_TAGS,
    TAG_BIT,
    Status,
)

RULE_NAME = "InsufficientExplanation (v1.0)"


def tag_counts(
    note: np.ndarray, tags: np.ndarray, n_notes: int, tag_names: tuple[str, ...], chunk: int = STREAM_CHUNK
) -> np.ndarray:
    """int64[N, T]: how many ratings of each note carry each tag of ``tag_names`` (in that order).

    ``note``: int[R] note index; ``tags``: uint32[R] tag bits. One pass over the ratings, read as
    they are: the per-tag numpy form made an index copy of ``note`` and ~4 temporaries of length R
    per tag (~25 bytes a rating at its peak; final scoring and contributor scoring each count).
    Read a chunk at a time (``matrix.streamed``): columns mapped from the columnar cache go back
    to the page cache as they are read (8 bytes a rating, 1.5 GiB at X's scale).
    """
    tags = np.asarray(tags, dtype=np.uint32)
    note = np.asarray(note)
    if note.dtype.kind not in "iu":
        note = note.astype(np.intp)
    bits = np.array([TAG_BIT[t] for t in tag_names], dtype=np.uint32)
    out = np.zeros((n_notes, bits.shape[0]), dtype=np.int64)
    for lo, hi in streamed([note, tags], note.shape[0], chunk):
        part = note[lo:hi]
        if part.min() < 0 or part.max() >= n_notes:
            raise ValueError("tag_counts: note index out of range")  # as np.bincount's minlength would
        _tag_counts_nb(part, tags[lo:hi], bits, out)
    return out


@numba.njit(cache=True, nogil=True)
def _tag_counts_nb(note: np.ndarray, tags: np.ndarray, bits: np.ndarray, out: np.ndarray) -> None:
    for r in range(note.shape[0]):
        t = tags[r]
        if t == 0:
            continue
        n = note[r]
        for j in range(bits.shape[0]):
            if (t >> bits[j]) & np.uint32(1):
                out[n, j] += 1


def top_two_tags(
    counts: np.ndarray, tag_names: tuple[str, ...], priority: dict[str, int], *, min_ratings: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Top two qualifying tags per row of ``counts`` (int[M, T], columns = ``tag_names``).

    Order: count descending, then priority descending. Returns two object[M] arrays of tag
    names, "" where fewer than two tags qualify (then both are "", as in the reference, which
    only assigns tags to notes with at least two qualifying ones).
    """
    counts = np.asarray(counts)
    m = counts.shape[0]
    first = np.full(m, "", dtype=object)
    second = np.full(m, "", dtype=object)
    if m == 0:
        return first, second
    prio = np.array([priority[t] for t in tag_names], dtype=np.int64)
    qualifies = counts >= min_ratings
    # Composite key: count first, priority as the tie-break; non-qualifying tags sink to -1.
    key = np.where(qualifies, counts.astype(np.int64) * 64 + prio, -1)
    order = np.argsort(-key, axis=1, kind="stable")[:, :2]
    ok = qualifies.sum(axis=1) >= 2
    names = np.array(tag_names, dtype=object)
    first[ok] = names[order[ok, 0]]
    second[ok] = names[order[ok, 1]]
    return first, second


@dataclass(frozen=True, eq=False)
class ExplanationResult:
    """``status``: int8[N] after InsufficientExplanation; ``first_tag``/``second_tag``: object[N]
    ("" when none); ``demoted``: bool[N], the rule set the note to NMR."""

    status: np.ndarray
    first_tag: np.ndarray
    second_tag: np.ndarray
    demoted: np.ndarray


def apply_explanation(
    status: np.ndarray,
    helpful_counts: np.ndarray,
    not_helpful_counts: np.ndarray,
    *,
    min_ratings_to_get_tag: int = 2,
    min_tags_needed: int = 2,
) -> ExplanationResult:
    """Assign tags to CRH/CRNH notes and demote those without enough explanation.

    ``status``: int8[N] final statuses; ``helpful_counts``: int[N, 9] in ``HELPFUL_TAGS`` order;
    ``not_helpful_counts``: int[N, 13] in ``NOT_HELPFUL_TAGS`` order.
    """
    status = np.asarray(status)
    n = status.shape[0]
    first = np.full(n, "", dtype=object)
    second = np.full(n, "", dtype=object)
    for code, counts, names, prio in (
        (Status.CRH, helpful_counts, HELPFUL_TAGS, HELPFUL_TAG_PRIORITY),
        (Status.CRNH, not_helpful_counts, NOT_HELPFUL_TAGS, NOT_HELPFUL_TAG_PRIORITY),
    ):
        sel = np.flatnonzero(status == code)
        f, s = top_two_tags(np.asarray(counts)[sel], names, prio, min_ratings=min_ratings_to_get_tag)
        first[sel], second[sel] = f, s
    rated = (status == Status.CRH) | (status == Status.CRNH)
    n_tags = (first != "").astype(int) + (second != "").astype(int)
    demoted = rated & (n_tags < min_tags_needed)
    new_status = status.copy()
    new_status[demoted] = Status.NMR
    return ExplanationResult(status=new_status, first_tag=first, second_tag=second, demoted=demoted)


def author_top_not_helpful_tags(
    author: np.ndarray, not_helpful_counts: np.ndarray, n_authors: int, *, min_ratings: int = 2
) -> np.ndarray:
    """``authorTopNotHelpfulTagValues`` (§4.6): each author's two most frequent top-two
    not-helpful tags over their notes, as TSV-order indices ("1,4"), "" for no tagged note.

    ``author``: int[M] author index per note (< 0 = unknown); ``not_helpful_counts``: int[M, 13]
    tag counts per note in ``NOT_HELPFUL_TAGS`` order. Every note, whatever its status, gets its
    top two tags as CRNH notes do; an author's tags are ordered by how many of their notes carry
    them (first or second), then by tag priority. Returns object[n_authors].
    """
    first, second = top_two_tags(not_helpful_counts, NOT_HELPFUL_TAGS, NOT_HELPFUL_TAG_PRIORITY,
                                 min_ratings=min_ratings)  # fmt: skip
    column = {t: j for j, t in enumerate(NOT_HELPFUL_TAGS)}
    per_author = np.zeros((n_authors, len(NOT_HELPFUL_TAGS)), dtype=np.int64)
    author = np.asarray(author)
    for picked in (first, second):
        ok = (picked != "") & (author >= 0)
        cols = np.array([column[t] for t in picked[ok]], dtype=np.intp)
        np.add.at(per_author, (author[ok], cols), 1)
    prio = np.array([NOT_HELPFUL_TAG_PRIORITY[t] for t in NOT_HELPFUL_TAGS], dtype=np.int64)
    key = np.where(per_author > 0, per_author * 64 + prio, -1)
    order = np.argsort(-key, axis=1, kind="stable")[:, :2]
    out = np.full(n_authors, "", dtype=object)
    for i in np.flatnonzero(per_author.any(axis=1)):
        out[i] = ",".join(str(j) for j in order[i] if per_author[i, j] > 0)
    return out
