"""Note summaries made of pseudo-words, some about the reference's seed topics (§6.3).

The reference's topic model labels posts whose notes mention seed terms (``gaza``, ``ukraine``,
``scam``...) and learns the rest of the vocabulary from them; so topic notes carry seed words plus
topic-specific non-seed words, and the pseudo-word vocabulary is filtered so that no filler word
matches a seed pattern by accident.
"""

from __future__ import annotations

import re

import numpy as np

# topic -> (seed words that the reference's regexes match, companion words that do not)
TOPICS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "UkraineConflict": (
        ("ukraine", "russia", "kyiv", "moscow", "zelensky", "putin", "russian", "ukrainian"),
        ("frontline", "donbas", "drone", "sanctions", "kremlin", "counteroffensive", "artillery"),
    ),
    "GazaConflict": (
        ("gaza", "israel", "palestinian", "jerusalem", "hamas", "israeli"),
        ("hostages", "ceasefire", "hezbollah", "idf", "westbank", "airstrike", "refugees", "tunnels"),
    ),
    "MessiRonaldo": (
        ("messi", "ronaldo"),
        ("goal", "ballon", "barcelona", "madrid", "striker", "transfer", "league"),
    ),
    "Scams": (
        ("scam", "spam", "gambling", "promotion", "dropship", "scammers"),
        ("giveaway", "wallet", "crypto", "phishing", "refund", "coupon", "fraudulent"),
    ),
    "InDimensionTwo": (
        ("ugc", "obc"),
        ("reservation", "caste", "quota", "census", "category", "admission"),
    ),
}
TOPIC_NAMES: tuple[str, ...] = tuple(TOPICS)
# Relative frequency of each topic among topic posts (Gaza and Scams most common, like the golden data).
TOPIC_WEIGHTS = np.array([0.22, 0.38, 0.04, 0.30, 0.06])

# Word-start patterns of the reference's seed regexes (§6.3), used to keep filler words neutral.
_SEED_PATTERN = re.compile(
    r"^(ukrain|russia|kiev|kyiv|moscow|zelensky|putin|israel|palestin|gaza|jerusalem|hamas|messi|ronaldo"
    r"|scam|spam|gambling|apostas|apuestas|dropship|promotion|ugc|gc|obc|sc|st)"
)
_CONSONANTS = "bcdfghjklmnprstvwz"
_VOWELS = "aeiou"
_COMMON = ("news", "claim", "video", "photo", "post", "report", "data", "source", "study", "image")
_DOMAINS = (
    "www.reuters.com",
    "apnews.com",
    "www.bbc.co.uk",
    "www.who.int",
    "www.census.gov",
    "www.nature.com",
    "en.wikipedia.org",
    "www.snopes.com",
)


def make_vocabulary(rng: np.random.Generator, size: int = 4_000) -> np.ndarray:
    """``size`` distinct pseudo-words (CV syllables, sorted), none matching a seed pattern."""
    words: set[str] = set()
    while len(words) < size:
        n_syll = int(rng.integers(1, 5))
        chars = []
        for _ in range(n_syll):
            chars.append(_CONSONANTS[int(rng.integers(len(_CONSONANTS)))])
            chars.append(_VOWELS[int(rng.integers(len(_VOWELS)))])
        if rng.random() < 0.35:
            chars.append(_CONSONANTS[int(rng.integers(len(_CONSONANTS)))])
        word = "".join(chars)
        if len(word) >= 3 and not _SEED_PATTERN.match(word):
            words.add(word)
    return np.array(sorted(words), dtype=object)


def summaries(
    rng: np.random.Generator,
    vocab: np.ndarray,
    topic: np.ndarray,
    has_url: np.ndarray,
) -> list[str]:
    """One summary per note: filler words (Zipf-like), topic words where ``topic >= 0``, maybe a URL.

    ``topic`` (n,) int8 indexes ``TOPIC_NAMES`` (-1: none); ``has_url`` (n,) bool.
    """
    n = topic.size
    lengths = rng.integers(12, 36, size=n)
    total = int(lengths.sum())
    # Zipf-like filler: index = floor(V * u^3) favours the first words.
    filler = (vocab.size * rng.random(total) ** 3).astype(np.int64)
    n_common = rng.random(total) < 0.05
    common_pick = rng.integers(0, len(_COMMON), size=total)
    topic_pick = rng.random(total)
    topic_word = rng.random(total)
    url_domain = rng.integers(0, len(_DOMAINS), size=n)
    url_num = rng.integers(1_000_000, 99_999_999, size=n)
    out: list[str] = []
    pos = 0
    for i in range(n):
        k = int(lengths[i])
        words = [_COMMON[common_pick[j]] if n_common[j] else vocab[filler[j]] for j in range(pos, pos + k)]
        t = int(topic[i])
        if t >= 0:
            seeds, companions = TOPICS[TOPIC_NAMES[t]]
            for j in range(pos, pos + k):
                if topic_pick[j] < 0.08:
                    words[j - pos] = seeds[int(topic_word[j] * len(seeds))]
                elif topic_pick[j] < 0.25:
                    words[j - pos] = companions[int(topic_word[j] * len(companions))]
            # at least one seed word, so the seed labeler sees the topic
            words[int(topic_word[pos] * k)] = seeds[int(topic_pick[pos] * len(seeds))]
        pos += k
        text = " ".join(words)
        text = text[0].upper() + text[1:] + "."
        if has_url[i]:
            text += f" https://{_DOMAINS[url_domain[i]]}/article/{url_num[i]}"
        out.append(text)
    return out
