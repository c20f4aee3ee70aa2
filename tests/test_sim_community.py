"""The simulated community: byte determinism, the public format, and ground-truth sanity."""

from __future__ import annotations

import filecmp
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bridgewatch import schema
from bridgewatch.errors import ConfigError
from bridgewatch.sim.config import config_for_scale
from bridgewatch.sim.ratings import expected_helpfulness
from bridgewatch.sim.simulate import simulate
from bridgewatch.sim.text import TOPICS

FILES = (
    schema.NOTES_FILE,
    schema.RATINGS_FILE,
    schema.STATUS_FILE,
    schema.ENROLLMENT_FILE,
    "truth.tsv",
    "meta.json",
)


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("tiny")
    return out, simulate(config_for_scale("tiny", seed=7), out)


@pytest.fixture(scope="module")
def frames(tiny: tuple[Path, object]) -> dict[str, pd.DataFrame]:
    out, _ = tiny
    return {name: _read(out / name) for name in FILES if name.endswith(".tsv")}


def test_same_seed_same_bytes_other_seed_differs(tiny: tuple[Path, object], tmp_path: Path) -> None:
    out, _ = tiny
    simulate(config_for_scale("tiny", seed=7), tmp_path / "again")
    simulate(config_for_scale("tiny", seed=8), tmp_path / "other")
    for name in FILES:
        assert filecmp.cmp(out / name, tmp_path / "again" / name, shallow=False), name
        assert not filecmp.cmp(out / name, tmp_path / "other" / name, shallow=False), name


def test_block_size_is_part_of_identity_but_output_is_complete(tmp_path: Path) -> None:
    # Small blocks stream the ratings in many appends; the files stay well-formed and complete.
    s = simulate(config_for_scale("tiny", seed=3, block_ratings=1_000, ratings_per_shard=4_000), tmp_path)
    assert len(s.ratings_files) >= 2
    assert s.ratings_files == tuple(sorted(p.name for p in tmp_path.glob("ratings-*.tsv")))
    # shards roll over only between blocks: none is empty, none far past the limit
    sizes = [len(_read(tmp_path / f)) for f in s.ratings_files]
    assert all(0 < n < 4_000 + 2_000 for n in sizes)
    total = sum(len(_read(tmp_path / f)) for f in s.ratings_files)
    assert total == s.ratings


def test_headers_are_the_reference_column_orders(tiny: tuple[Path, object]) -> None:
    out, _ = tiny
    expected = {
        schema.NOTES_FILE: schema.NOTE_COLUMNS,
        schema.RATINGS_FILE: schema.RATING_COLUMNS,
        schema.STATUS_FILE: schema.NOTE_STATUS_HISTORY_COLUMNS,
        schema.ENROLLMENT_FILE: schema.ENROLLMENT_COLUMNS,
    }
    for name, columns in expected.items():
        header = (out / name).read_text().split("\n", 1)[0].split("\t")
        assert tuple(header) == columns, name


def test_values_are_in_the_public_enums_and_shapes(frames: dict[str, pd.DataFrame]) -> None:
    notes, ratings = frames[schema.NOTES_FILE], frames[schema.RATINGS_FILE]
    nsh, enroll = frames[schema.STATUS_FILE], frames[schema.ENROLLMENT_FILE]
    assert len(notes) > 200 and notes["noteId"].is_unique
    hex64 = re.compile(r"^[0-9A-F]{64}$")
    for col in (notes["noteAuthorParticipantId"], ratings["raterParticipantId"], enroll["participantId"]):
        assert col.map(lambda s: bool(hex64.match(s))).all()
    for col in (notes["noteId"], notes["tweetId"], ratings["ratedOnTweetId"]):
        assert col.str.fullmatch(r"\d{19}").all()
    assert set(notes["classification"]) == set(schema.CLASSIFICATIONS)
    assert 0.04 < (notes["classification"] == schema.NOT_MISLEADING).mean() < 0.2
    assert set(ratings["helpfulnessLevel"]) == set(schema.HELPFULNESS_LEVELS)
    assert set(ratings["ratingSourceBucketed"]) == set(schema.RATING_SOURCES)
    assert 0.01 < (ratings["ratingSourceBucketed"] == schema.RATING_SOURCE_POPULATION_SAMPLED).mean() < 0.06
    for tag in schema.RATING_TAGS:
        assert set(ratings[tag]) <= {"0", "1"}
    assert set(enroll["enrollmentState"]) <= set(schema.ENROLLMENT_STATES)
    assert set(enroll["modelingPopulation"]) <= set(schema.MODELING_POPULATIONS)
    assert set(nsh["currentStatus"]) <= set(schema.STATUSES)
    for frame, col in ((notes, "createdAtMillis"), (ratings, "createdAtMillis"), (nsh, "createdAtMillis")):
        t = frame[col].astype(np.int64)
        assert ((t > schema.MIN_PLAUSIBLE_MILLIS) & (t < schema.MAX_PLAUSIBLE_MILLIS)).all()


def test_ratings_are_consistent_with_notes_and_enrollment(frames: dict[str, pd.DataFrame]) -> None:
    notes, ratings, enroll = (
        frames[schema.NOTES_FILE],
        frames[schema.RATINGS_FILE],
        frames[schema.ENROLLMENT_FILE],
    )
    merged = ratings.merge(notes, on="noteId", suffixes=("", "_note"))
    assert len(merged) == len(ratings)
    assert (
        merged["createdAtMillis"].astype(np.int64) > merged["createdAtMillis_note"].astype(np.int64)
    ).all()
    assert (merged["ratedOnTweetId"] == merged["tweetId"]).all()
    assert (merged["raterParticipantId"] != merged["noteAuthorParticipantId"]).all()
    assert not ratings.duplicated(["noteId", "raterParticipantId"]).any()
    people = set(enroll["participantId"])
    assert set(ratings["raterParticipantId"]) <= people and set(notes["noteAuthorParticipantId"]) <= people
    # most ratings arrive within the first days of a note
    delay = merged["createdAtMillis"].astype(np.int64) - merged["createdAtMillis_note"].astype(np.int64)
    assert np.median(delay) < 2 * 86_400_000


def test_tags_follow_levels(frames: dict[str, pd.DataFrame]) -> None:
    r = frames[schema.RATINGS_FILE]
    helpful = r[list(schema.HELPFUL_TAGS)].astype(int).sum(axis=1)
    not_helpful = r[list(schema.NOT_HELPFUL_TAGS)].astype(int).sum(axis=1)
    level = r["helpfulnessLevel"]
    assert (helpful[level == schema.NOT_HELPFUL] == 0).all()
    assert (not_helpful[level == schema.HELPFUL] == 0).all()
    assert (helpful[level == schema.HELPFUL] > 0).all() and (
        not_helpful[level == schema.NOT_HELPFUL] > 0
    ).all()


def test_status_history_matches_notes_and_locks_old_notes(frames: dict[str, pd.DataFrame], tiny) -> None:
    notes, nsh = frames[schema.NOTES_FILE], frames[schema.STATUS_FILE]
    m = nsh.merge(notes, on="noteId", suffixes=("", "_n"))
    assert len(m) == len(nsh) and len(nsh) > 0.9 * len(notes)
    assert (m["noteAuthorParticipantId"] == m["noteAuthorParticipantId_n"]).all()
    assert (m["createdAtMillis"] == m["createdAtMillis_n"]).all()
    age = nsh["timestampMillisOfCurrentStatus"].astype(np.int64) - nsh["createdAtMillis"].astype(np.int64)
    locked = nsh["lockedStatus"] != ""
    assert locked.any() and (~locked).any()
    assert (locked == (age > schema.NOTE_LOCK_MILLIS)).all()
    lock_age = nsh.loc[locked, "timestampMillisOfStatusLock"].astype(np.int64) - nsh.loc[
        locked, "createdAtMillis"
    ].astype(np.int64)
    assert (lock_age >= schema.NOTE_LOCK_MILLIS).all()
    decided = nsh["firstNonNMRStatus"] != ""
    assert ((nsh["currentStatus"] != schema.NMR) == decided).all()
    assert {schema.CRH, schema.CRNH, schema.NMR} <= set(nsh["currentStatus"])


def _helpful_num(ratings: pd.DataFrame) -> pd.Series:
    return ratings["helpfulnessLevel"].map(schema.HELPFULNESS_LEVELS)


def test_quality_and_viewpoint_drive_ratings(frames: dict[str, pd.DataFrame]) -> None:
    ratings, truth = frames[schema.RATINGS_FILE], frames["truth.tsv"]
    notes_t = truth[truth["kind"] == "note"].set_index("id")
    raters_t = truth[truth["kind"] == "rater"].set_index("id")
    h = _helpful_num(ratings)
    per_note = h.groupby(ratings["noteId"]).mean()
    quality = notes_t.loc[per_note.index, "quality"].astype(float)
    assert np.corrcoef(quality.rank(), per_note.rank())[0, 1] > 0.5
    product = (
        raters_t.loc[ratings["raterParticipantId"], "viewpoint"].astype(float).to_numpy()
        * notes_t.loc[ratings["noteId"], "slant"].astype(float).to_numpy()
    )
    assert h[product > 0.15].mean() > h[product < -0.15].mean() + 0.15


def test_incorrect_tag_marks_low_quality_notes(frames: dict[str, pd.DataFrame]) -> None:
    ratings, truth = frames[schema.RATINGS_FILE], frames["truth.tsv"]
    quality = truth[truth["kind"] == "note"].set_index("id")["quality"].astype(float)
    nh = ratings[ratings["helpfulnessLevel"] == schema.NOT_HELPFUL]
    q = quality.loc[nh["noteId"]].to_numpy()
    incorrect = nh["notHelpfulIncorrect"].astype(int).to_numpy()
    assert incorrect[q < -1].mean() > incorrect[q > 0.5].mean() + 0.2


def test_activity_is_heavy_tailed_and_truth_counts_match(frames: dict[str, pd.DataFrame]) -> None:
    ratings, truth = frames[schema.RATINGS_FILE], frames["truth.tsv"]
    raters_t = truth[truth["kind"] == "rater"]
    counts = np.sort(raters_t["numRatings"].astype(int).to_numpy())[::-1]
    assert counts.sum() == len(ratings)
    top = counts[: counts.size // 10].sum() / counts.sum()
    assert top > 0.35 and counts[0] > 10 * max(np.median(counts), 1)
    per_note = ratings["noteId"].value_counts()
    notes_t = truth[truth["kind"] == "note"].set_index("id")
    assert (notes_t.loc[per_note.index, "numRatings"].astype(int) == per_note).all()


def test_topics_use_seed_words(frames: dict[str, pd.DataFrame]) -> None:
    notes, truth = frames[schema.NOTES_FILE], frames["truth.tsv"]
    topic = truth[truth["kind"] == "note"].set_index("id")["topic"].loc[notes["noteId"]].to_numpy()
    assert (topic != "").sum() >= 10
    for text, t in zip(notes["summary"], topic, strict=True):
        words = set(re.findall(r"[a-z]+", text.lower()))
        if t:
            assert words & set(TOPICS[t][0])
        else:
            assert not any(words & set(seeds) for seeds, _ in TOPICS.values())
    assert notes["summary"].str.contains("https://").mean() > 0.5


def test_two_dimensional_viewpoints(tmp_path: Path) -> None:
    simulate(config_for_scale("tiny", seed=2, dims=2), tmp_path)
    truth = _read(tmp_path / "truth.tsv")
    assert (truth.loc[truth["kind"] == "rater", "viewpoint2"] != "").all()
    assert (truth.loc[truth["kind"] == "note", "slant2"] != "").all()


@pytest.mark.parametrize(
    "overrides",
    [{"scale": "huge"}, {"notes": 0}, {"polarization": 1.5}, {"dims": 3}, {"bogus": 1}, {"ratings": 10**9}],
)
def test_bad_configs_raise_config_error(overrides: dict) -> None:
    scale = overrides.pop("scale", "tiny")
    with pytest.raises(ConfigError):
        config_for_scale(scale, **overrides)


def test_reader_accepts_output_without_warnings(tiny: tuple[Path, object]) -> None:
    from bridgewatch.io.dataset import read_dataset

    out, summary = tiny
    ds = read_dataset(out)
    assert ds.warnings == ()
    assert len(ds.notes) == summary.notes
    assert len(ds.enrollment) == summary.raters


def test_camp_truth_is_the_camps_members_on_average(tmp_path: Path) -> None:
    # campHelpful*: the mean expected helpfulNum over each camp's honest, diligent raters (all of them
    # at this size), recomputed here from the truth's own columns; the same in an attacked twin
    out = tmp_path / "base"
    simulate(config_for_scale("tiny", seed=2), out)
    t = _read(out / "truth.tsv")
    notes, raters = t[t["kind"] == "note"], t[t["kind"] == "rater"]
    cfg = config_for_scale("tiny", seed=2)
    camp = raters[raters["isLowDiligence"] == "0"]
    v, lenient = camp["viewpoint"].astype(float).to_numpy(), camp["leniency"].astype(float).to_numpy()
    q, s = notes["quality"].astype(float).to_numpy(), notes["slant"].astype(float).to_numpy()
    for side, column in ((-1, "campHelpfulLeft"), (1, "campHelpfulRight")):
        members = v * side > 0
        z = q[:, None] + lenient[members][None, :] + cfg.slant_weight * s[:, None] * v[members][None, :]
        expected = expected_helpfulness(z, cfg).mean(axis=1)
        # the truth file keeps 5 decimals of viewpoint, slant, quality and leniency, 4 of the means
        np.testing.assert_allclose(notes[column].astype(float), expected, atol=2e-4)
    # a camp member sits at about +-0.7, so it is more forgiving of slant than a rater at +-1
    lo_camp = np.minimum(notes["campHelpfulLeft"].astype(float), notes["campHelpfulRight"].astype(float))
    lo_end = np.minimum(notes["expHelpfulLeft"].astype(float), notes["expHelpfulRight"].astype(float))
    slanted = np.abs(s) > 0.5
    assert (lo_camp[slanted] > lo_end[slanted]).mean() > 0.8
    attacked = tmp_path / "bloc"
    simulate(config_for_scale("tiny", seed=2, attack="coordinated_bloc", attack_direction="down"), attacked)
    a = _read(attacked / "truth.tsv")
    cols = ["id", "campHelpfulLeft", "campHelpfulRight"]
    assert a.loc[a["kind"] == "note", cols].reset_index(drop=True).equals(notes[cols].reset_index(drop=True))
