"""Explanation tags (§3.6): qualification, count order, priority tie-breaks, demotion."""

from __future__ import annotations

import numpy as np
import pytest

from bridgewatch.schema import (
    HELPFUL_TAG_PRIORITY,
    HELPFUL_TAGS,
    NOT_HELPFUL_TAGS,
    RATING_TAGS,
    TAG_BIT,
    Status,
)
from bridgewatch.scoring.explanation import (
    apply_explanation,
    author_top_not_helpful_tags,
    tag_counts,
    top_two_tags,
)


def counts_of(tag_names, **kw):
    row = np.zeros(len(tag_names), dtype=np.int64)
    for k, v in kw.items():
        row[tag_names.index(k)] = v
    return row


def test_top_two_by_count():
    c = counts_of(HELPFUL_TAGS, helpfulOther=9, helpfulClear=3, helpfulEmpathetic=5)
    f, s = top_two_tags(c[None], HELPFUL_TAGS, HELPFUL_TAG_PRIORITY)
    assert (f[0], s[0]) == ("helpfulOther", "helpfulEmpathetic")


def test_ties_go_to_higher_priority():
    # All at 4: Informative (8) and Clear (7) win over GoodSources (4) and Other (0).
    c = counts_of(HELPFUL_TAGS, helpfulOther=4, helpfulGoodSources=4, helpfulClear=4, helpfulInformative=4)
    f, s = top_two_tags(c[None], HELPFUL_TAGS, HELPFUL_TAG_PRIORITY)
    assert (f[0], s[0]) == ("helpfulInformative", "helpfulClear")


def test_needs_two_qualifying_tags():
    c = counts_of(HELPFUL_TAGS, helpfulClear=10, helpfulOther=1)
    f, s = top_two_tags(c[None], HELPFUL_TAGS, HELPFUL_TAG_PRIORITY)
    assert (f[0], s[0]) == ("", "")
    c = counts_of(HELPFUL_TAGS, helpfulClear=2, helpfulOther=2)
    f, s = top_two_tags(c[None], HELPFUL_TAGS, HELPFUL_TAG_PRIORITY)
    assert (f[0], s[0]) == ("helpfulClear", "helpfulOther")


def test_apply_explanation_demotes_and_uses_matching_tag_family():
    status = np.array([Status.CRH, Status.CRNH, Status.CRH, Status.NMR, Status.CRNH], dtype=np.int8)
    h = np.zeros((5, 9), dtype=np.int64)
    nh = np.zeros((5, 13), dtype=np.int64)
    h[0] = counts_of(HELPFUL_TAGS, helpfulClear=3, helpfulGoodSources=2)
    nh[0] = counts_of(NOT_HELPFUL_TAGS, notHelpfulIncorrect=50, notHelpfulOther=50)  # ignored for CRH
    nh[1] = counts_of(
        NOT_HELPFUL_TAGS, notHelpfulOutdated=2, notHelpfulSpamHarassmentOrAbuse=2, notHelpfulOther=2
    )
    h[2] = counts_of(HELPFUL_TAGS, helpfulClear=3)  # one qualifying tag → NMR
    h[3] = counts_of(HELPFUL_TAGS, helpfulClear=3, helpfulOther=3)  # NMR notes get no tags
    res = apply_explanation(status, h, nh)
    assert list(res.status) == [Status.CRH, Status.CRNH, Status.NMR, Status.NMR, Status.NMR]
    assert list(res.first_tag) == ["helpfulClear", "notHelpfulOutdated", "", "", ""]
    assert list(res.second_tag) == ["helpfulGoodSources", "notHelpfulSpamHarassmentOrAbuse", "", "", ""]
    assert list(res.demoted) == [False, False, True, False, True]


def test_tag_counts_from_bits():
    note = np.array([0, 0, 1])
    tags = np.array([1 << TAG_BIT["helpfulClear"], (1 << TAG_BIT["helpfulClear"]) | 1, 1], dtype=np.uint32)
    c = tag_counts(note, tags, 3, HELPFUL_TAGS)
    assert c[0, HELPFUL_TAGS.index("helpfulClear")] == 2
    assert c[0, 0] == 1 and c[1, 0] == 1 and c[2].sum() == 0


@pytest.mark.parametrize("names", [HELPFUL_TAGS, NOT_HELPFUL_TAGS, RATING_TAGS])
def test_tag_counts_match_per_tag_bincount(names):
    """The one-pass count equals the per-tag ``np.bincount`` of the bit masks (its former form),
    on unsorted notes, empty notes and every tag bit."""
    rng = np.random.default_rng(3)
    note = rng.integers(0, 50, 5000).astype(np.int32)
    tags = rng.integers(0, 1 << 24, 5000, dtype=np.uint32) & rng.integers(0, 1 << 24, 5000, dtype=np.uint32)
    has = [((tags >> np.uint32(TAG_BIT[t])) & 1).astype(bool) for t in names]
    expected = np.stack([np.bincount(note[h], minlength=60) for h in has], 1)
    got = tag_counts(note, tags, 60, names)
    assert got.dtype == np.int64 and got.shape == (60, len(names))
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(tag_counts(note, tags, 60, names, chunk=999), expected)  # read in chunks
    with pytest.raises(ValueError):
        tag_counts(note, tags, 40, names)


def _nh(**kw):
    return counts_of(NOT_HELPFUL_TAGS, **kw)


@pytest.mark.parametrize(
    ("notes", "expected"),
    [
        # One note: its top two each count once for the author, so priority orders them
        # (Outdated 12 > Incorrect 8); values are TSV-order indices.
        ([_nh(notHelpfulIncorrect=5, notHelpfulOutdated=3)], "5,1"),
        # A tag needs 2 ratings on a note and a note needs two such tags to count at all.
        ([_nh(notHelpfulIncorrect=5, notHelpfulOutdated=1)], ""),
        # Across notes: Incorrect is in the top two of both notes, so it leads.
        (
            [_nh(notHelpfulIncorrect=2, notHelpfulOther=4), _nh(notHelpfulIncorrect=3, notHelpfulOffTopic=9)],
            "1,8",
        ),
        # Equal note counts: the higher-priority tag wins (OffTopic 9 > Other 0).
        ([_nh(notHelpfulOther=4, notHelpfulOffTopic=4)], "8,0"),
    ],
)
def test_author_top_not_helpful_tags(notes, expected):
    counts = np.stack(notes)
    author = np.zeros(len(notes), dtype=np.int64)
    out = author_top_not_helpful_tags(author, counts, 2)
    assert out[0] == expected and out[1] == ""
