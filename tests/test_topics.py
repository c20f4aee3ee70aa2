"""Topic assignment (§6.3): seed regex cases, conflicted posts, classifier, confidence helper."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bridgewatch.scoring import topics as tp


def _topic(text: str) -> str | None:
    labels, conflicted = tp.seed_labels([text])
    if conflicted[0] is not None:
        return "conflicted"
    return None if labels[0] == 0 else tp.TOPICS[labels[0]]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Ukrainian forces advanced", "UkraineConflict"),  # shortened seed, word start
        ("the Kremlin in MOSCOW said", "UkraineConflict"),  # case-insensitive
        ("prussia was a kingdom", None),  # not at a word start
        ("a hamas statement", "GazaConflict"),
        ("the hamasbase account", None),  # \bhamas\b needs a word end too
        ("messi scored", "MessiRonaldo"),
        ("messier objects", None),  # messi\b
        ("this is a scam link", "Scams"),
        ("undisclosed ad here", "Scams"),
        ("see help.x.com for rules", "Scams"),
        ("sc, st reservation", "InDimensionTwo"),
        ("the scst code", None),
        ("plain note about weather", None),
        ("putin and gaza in one post", "conflicted"),
    ],
)
def test_seed_regex_cases(text, expected):
    assert _topic(text) == expected


def test_url_tokens_are_filtered_before_matching():
    notes = pd.DataFrame(
        {
            "noteId": [1, 2],
            "tweetId": ["10", "10"],
            "summary": ["see https://example.com/sc_lang?x=ukr", "more context"],
        }
    )
    posts = tp.post_texts(notes)
    assert len(posts) == 1
    text = posts["summary"][0]
    # short URL fragments ("sc", "ukr", "x") are dropped; the post concatenates both notes
    assert "example" in text and "lang" in text and " sc " not in f" {text} "
    assert text.endswith("more context")
    assert _topic(text) is None


def test_tokenizer_keeps_seed_urls_whole():
    assert tp.tokenize("visit https://help.x.com/en/rules now") == ["visit", "help.x.com", "now"]
    assert tp.tokenize("a bc def") == ["bc", "def"]


def _corpus(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    filler = ["weather", "market", "city", "music", "garden", "report", "train", "school"]
    rows = []
    context = {
        "UkraineConflict": ["frontline", "donbas", "shelling"],
        "GazaConflict": ["hostages", "ceasefire", "westbank"],
        "Scams": ["giveaway", "crypto", "wallet"],
    }
    seeds = {"UkraineConflict": "kyiv", "GazaConflict": "gaza", "Scams": "scam"}
    tweet = 0
    for topic, words in context.items():
        for i in range(30):
            tweet += 1
            text = " ".join(rng.choice(filler, 4).tolist() + rng.choice(words, 3).tolist())
            if i < 25:  # the rest carry only context words: the classifier must find them
                text += f" {seeds[topic]}"
            rows.append((tweet, str(1000 + tweet), text))
    for _ in range(60):
        tweet += 1
        rows.append((tweet, str(1000 + tweet), " ".join(rng.choice(filler, 6).tolist())))
    tweet += 1
    rows.append((tweet, str(1000 + tweet), "kyiv and gaza frontline shelling donbas"))  # conflicted
    return pd.DataFrame(rows, columns=["noteId", "tweetId", "summary"])


def test_classifier_extends_seed_topics_and_resolves_conflicts():
    notes = _corpus()
    result = tp.assign_topics(notes)
    topic = pd.Series(result.note_topic, index=notes["noteId"])
    assert result.balanced_accuracy > 0.35
    # seeded posts keep their topic
    assert (topic.iloc[:25] == "UkraineConflict").all()
    # most unseeded posts with topic context words are picked up by the classifier
    assert (topic.iloc[25:30] == "UkraineConflict").mean() >= 0.6
    assert (topic.iloc[85:90] == "Scams").mean() >= 0.6
    # filler posts stay unassigned
    assert topic.iloc[90:150].isna().mean() > 0.9
    # the conflicted post goes to the better-supported of its matched topics, or stays unassigned
    assert topic.iloc[-1] in ("UkraineConflict", None)
    # determinism
    again = tp.assign_topics(notes)
    assert list(again.note_topic) == list(result.note_topic)


def test_merge_predictions_overrides():
    probs = np.array(
        [
            [0.9, 0.05, 0.05, 0, 0, 0],  # seeded Ukraine with p=0.05 > 0.01 → keeps seed
            [0.995, 0.005, 0, 0, 0, 0],  # seeded Ukraine with p=0.005 → argmax (Unassigned)
            [0.2, 0.3, 0.5, 0, 0, 0],  # conflicted {1, 2} → 2
            [0.6, 0.3, 0.1, 0, 0, 0],  # unseeded → argmax
        ]
    )
    seeds = np.array([1, 1, 0, 0])
    conflicted = [None, None, frozenset({1, 2}), None]
    pred = tp.merge_predictions(probs, seeds, conflicted, np.full(6, 0.99))
    assert pred.tolist() == [1, 0, 2, 0]


def test_no_seed_matches_assigns_nothing():
    notes = pd.DataFrame({"noteId": [1, 2], "tweetId": ["1", "2"], "summary": ["hello world", None]})
    result = tp.assign_topics(notes)
    assert list(result.note_topic) == [None, None]


def test_topic_note_confident():
    note = np.array([0] * 10 + [1] * 10)
    factor = np.array([-0.5] * 5 + [0.0] * 5 + [-0.5] * 4 + [0.5] * 5 + [np.nan])
    rater = np.arange(20)  # each rating its own rater
    assert tp.topic_note_confident(note, rater, factor, 2).tolist() == [True, False]
    # raters' factors read per rater: two raters, each rating several notes
    note = np.array([0, 0, 0, 1, 1, 1, 1])
    rater = np.array([0, 1, 1, 0, 0, 1, 1])
    assert tp.topic_note_confident(note, rater, np.array([0.2, -0.1]), 2, 1).tolist() == [False, True]
    assert tp.topic_note_confident(note, rater, np.array([np.nan, -0.1]), 2, 0).tolist() == [False, False]


def _literal_seed_topics(text: str) -> set[int]:
    """Topics the spec's literal regex finds (IGNORECASE, one alternation in topic order)."""
    regex = tp.compile_seed_regex()
    found: set[int] = set()
    for match in regex.finditer(text.lower()):
        found.update(tp.TOPICS.index(name) for name, hit in match.groupdict().items() if hit)
    return found


def _fuzz_texts(n: int, seed: int) -> list[str]:
    """Texts built from seed-term fragments, boundary characters and case/Unicode look-alikes."""
    rng = np.random.default_rng(seed)
    pieces = [
        "ukrain", "Russia", "kyiv", "israel", "GAZA", "hamas", "messi", "ronaldo", "scam", "spam",
        "undisclosed ad", "terms of service", "help.x.com", "x.com/tos", "drop ship", "promotion",
        "ugc", "gc", "obc", "sc", "st", "sc, st", "st sc", "आरक्षण", "ı", "ſ", "İ", "K", "x", "help",
        ".", ",", "/", "_", "-", " ", "  ", "\n", "\u00a0", "a", "s", "c", "ſcam", "meſſi", "ıſrael",
    ]  # fmt: skip
    return ["".join(rng.choice(pieces, rng.integers(1, 12))) for _ in range(n)]


def test_seed_scanner_finds_what_the_literal_regex_finds():
    texts = _fuzz_texts(20_000, 0)
    labels, conflicted = tp.seed_labels(texts)
    for i, text in enumerate(texts):
        want = _literal_seed_topics(text)
        got = set(conflicted[i]) if conflicted[i] is not None else ({int(labels[i])} - {0})
        assert got == want, text


def test_tokenized_texts_give_countvectorizer_matrices():
    from sklearn.feature_extraction.text import CountVectorizer

    texts = [*_fuzz_texts(3_000, 1), "", "a", "Crème brûlée at https://help.x.com/en rules", "ab ab ab"]
    stop = tp.seed_stop_words(texts)
    assert stop and all(any(b in w for b in tp._blocked_tokens()) for w in stop)
    tokens = tp.TokenizedTexts.of(texts).without(stop)
    for min_df, max_df in ((1, 1.0), (3, 500)):
        plain = CountVectorizer(
            tokenizer=tp.tokenize, token_pattern=None, strip_accents="unicode", stop_words=stop,
            min_df=min_df, max_df=max_df,
        )  # fmt: skip
        fast = CountVectorizer(analyzer=tokens.analyzer, min_df=min_df, max_df=max_df)
        train = np.arange(0, len(texts), 2)
        a = plain.fit_transform(np.asarray(texts, dtype=object)[train])
        b = fast.fit_transform(train)
        assert plain.vocabulary_ == fast.vocabulary_
        ids = tp.count_matrices(tokens, train, min_df, max_df)
        for x, y, z in (
            (a, b, ids[0]),
            (plain.transform(texts), fast.transform(np.arange(len(texts))), ids[1]),
        ):
            assert x.shape == z.shape
            for part in ("indptr", "indices", "data"):
                assert np.array_equal(getattr(x, part), getattr(y, part))
                assert np.array_equal(getattr(x, part), getattr(z, part))
                assert getattr(x, part).dtype == getattr(z, part).dtype


def test_count_matrices_fail_where_countvectorizer_does():
    tokens = tp.TokenizedTexts.of(["alpha beta", "beta gamma", "", "gamma gamma"])
    with pytest.raises(ValueError, match="empty vocabulary"):
        tp.count_matrices(tokens, np.array([2]), 1, 10)
    with pytest.raises(ValueError, match="no terms remain"):
        tp.count_matrices(tokens, np.array([0, 1]), 3, 10)
    with pytest.raises(ValueError, match="max_df corresponds"):
        tp.count_matrices(tokens, np.array([0, 1]), 2, 1)
    fit, every = tp.count_matrices(tokens, np.array([0, 1, 3]), 2, 10)  # beta, gamma: 2 texts each
    assert fit.toarray().tolist() == [[1, 0], [1, 1], [0, 2]]
    assert every.toarray().tolist() == [[1, 0], [1, 1], [0, 0], [0, 2]]


def test_the_classifier_on_count_matrices_gives_the_pipelines_probabilities():
    from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    texts = _fuzz_texts(3_000, 3)
    seeds, conflicted = tp.seed_labels(texts)
    train = np.flatnonzero([x is None for x in conflicted])
    tokens = tp.TokenizedTexts.of(texts)
    pipe = Pipeline([
        ("counts", CountVectorizer(analyzer=tokens.analyzer, min_df=2, max_df=1000)),
        ("tfidf", TfidfTransformer()),
        ("classifier", LogisticRegression(max_iter=200)),
    ])  # fmt: skip
    pipe.fit(train, seeds[train])
    want = pipe.predict_proba(np.arange(len(texts)))
    fit, every = tp.count_matrices(tokens, train, 2, 1000)
    tfidf, lr = TfidfTransformer(), LogisticRegression(max_iter=200)
    lr.fit(tfidf.fit_transform(fit), seeds[train])
    assert lr.predict_proba(tfidf.transform(every)).tobytes() == want.tobytes()


def test_posts_join_their_notes_as_a_sorted_groupby_does():
    rng = np.random.default_rng(4)
    n = 3_000
    notes = pd.DataFrame(
        {
            "noteId": np.arange(n),
            # string ids of different lengths: "10" sorts before "9"
            "tweetId": rng.integers(1, 400, n).astype(str),
            "summary": [None if i % 97 == 0 else f"note {i} see https://ex.com/a_b/{i}" for i in range(n)],
        }
    )
    posts = tp.post_texts(notes)
    frame = notes[["tweetId", "summary"]].copy()
    frame["summary"] = frame["summary"].fillna("").astype(str)
    want = frame.groupby("tweetId", sort=True)["summary"].apply(" ".join).reset_index()
    assert posts["tweetId"].tolist() == want["tweetId"].tolist()
    cleaned = [tp._filter_url_tokens(t, 4).replace("_", " ").replace("/", " ") for t in want["summary"]]
    assert posts["summary"].tolist() == cleaned
    assert tp.post_texts(notes.iloc[:0]).shape == (0, 2)


def test_texts_analysed_in_two_processes_are_the_single_pass(monkeypatch):
    texts = [*_fuzz_texts(4_000, 2), "", "Crème brûlée putin gaza", "ab ab"]
    monkeypatch.setattr(tp, "PARALLEL_POSTS", 10)
    labels, conflicted, tokens = tp.analyse_texts(texts, workers=2)
    want_labels, want_conflicted = tp.seed_labels(texts)
    want = tp.TokenizedTexts.of(texts)
    assert np.array_equal(labels, want_labels) and conflicted == want_conflicted
    assert tokens.vocabulary == want.vocabulary
    assert np.array_equal(tokens.ids, want.ids) and np.array_equal(tokens.indptr, want.indptr)
    assert tokens.ids.dtype == np.int32 and tokens.indptr.dtype == np.int64
    assert tp._SHARED_TEXTS == []  # the texts are not kept for the next call
    monkeypatch.setattr(tp.multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    one = tp.analyse_texts(texts, workers=2)  # no fork on this platform: one pass, same arrays
    assert np.array_equal(one[0], labels) and one[2].vocabulary == tokens.vocabulary
