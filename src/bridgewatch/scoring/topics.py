"""Topic assignment (§6.3): seed terms, then a bag-of-words classifier that widens them.

Notes are grouped by post (``tweetId``) and a post's text is the concatenation of its notes. A post
matching seed terms of exactly one topic is labelled with it; one matching several is "conflicted"
(unlabelled, left out of training). A CountVectorizer → TF-IDF → multinomial logistic regression
is trained on the non-conflicted posts, with every token containing a seed term removed so the
model must learn the *context* of a topic. Prediction takes the most probable class, except that a
seed-labelled post keeps its seed topic unless the model gives that topic less than 1 % (2 % for
InDimensionTwo), and a conflicted post takes the most probable of its matched topics under the
same test. Every note on a post inherits the post's topic; "Unassigned" means no topic (None).

Determinism: seed patterns are kept in fixed order (not sets), the solver (lbfgs) is
deterministic, and posts are ordered by ``tweetId``.
"""

from __future__ import annotations

import itertools
import multiprocessing
import numbers
import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import pandas as pd

from bridgewatch.errors import ScoringError
from bridgewatch.scoring.rating_pass import rater_side_counts

TOPICS = ("Unassigned", "UkraineConflict", "GazaConflict", "MessiRonaldo", "Scams", "InDimensionTwo")
UNASSIGNED = 0

# Seed patterns per topic (regex, matched case-insensitively on lowercased post text). Plain
# patterns are anchored at a word start; patterns with their own boundary or an escaped period
# (URLs) are used as written. Some are shortened on purpose (``ukrain``, ``palestin``).
SEED_TERMS: dict[str, tuple[str, ...]] = {
    "UkraineConflict": ("ukrain", "russia", "kiev", "kyiv", "moscow", "zelensky", "putin"),
    "GazaConflict": ("israel", "palestin", "gaza", "jerusalem", r"\bhamas\b"),
    "MessiRonaldo": (r"messi\b", "ronaldo"),
    "Scams": (
        "scam", r"undisclosed\sad", r"terms\sof\sservice", r"help\.x\.com", r"x\.com/tos",
        r"engagement\sfarm", "spam", "gambling", "apostas", "apuestas", "dropship", r"drop\sship",
        "promotion",
    ),
    "InDimensionTwo": (
        r"\bugc\b", r"\bgc\b", r"\bobc\b", r"\bsc\b", r"\bsc[,\s]+st\b", r"\bst[,\s]+sc\b", "आरक्षण",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class TopicConfig:
    """Classifier constants of the reference topic model."""

    unassigned_threshold: float = 0.99  # keep the seed topic unless 1 − p(seed) exceeds this
    in_dimension_two_threshold: float = 0.98
    min_balanced_accuracy: float = 0.35  # abort if the model cannot reproduce its own seed labels
    max_iter: int = 1000
    large_corpus_posts: int = 2000  # min_df = 1 below this many posts, else 25
    large_corpus_min_df: int = 25
    max_df_floor: int = 1000  # max_df = max(floor, share × posts)
    max_df_share: float = 0.25
    url_min_token_length: int = 4


def compile_seed_regex(seed_terms: dict[str, tuple[str, ...]] = SEED_TERMS) -> re.Pattern[str]:
    """One regex with a named group per topic; plain terms anchored at whitespace or text start.

    The literal form of the seed rule, kept as the plain twin of ``compile_seed_scanner`` (tests
    check that both find the same topics); ``seed_labels`` uses the scanner.
    """
    groups = []
    for topic, patterns in seed_terms.items():
        parts = []
        for pattern in patterns:
            if _free_standing(pattern):
                parts.append(pattern)
            else:
                parts.append(rf"(?:\s|^){pattern}")
        groups.append(f"(?P<{topic}>{'|'.join(parts)})")
    return re.compile("|".join(groups), re.IGNORECASE)


def _free_standing(pattern: str) -> bool:
    """A seed used as written (it has its own boundary or is a URL), not anchored at a word start."""
    return "\\." in pattern or pattern.startswith((r"\b", r"\s"))


def compile_seed_scanner(seed_terms: dict[str, tuple[str, ...]] = SEED_TERMS) -> re.Pattern[str]:
    r"""``compile_seed_regex`` rearranged so Python's engine scans ~7x faster, with the same matches.

    Why it is the same: the anchored terms all start after whitespace (or at the text start) with a
    letter, the free-standing ones at a letter, so at any position only one kind can match and the
    shared ``(?:\s|^)`` prefix can be tested once; each kind keeps its terms in the original
    order, so the first alternative that matches (and so where the match ends, where the next
    search starts) is unchanged. Case: it is matched without IGNORECASE on lowercased text that
    ``fold_case`` also maps ı → i and ſ → s (the only other characters Python's case-insensitive
    matching equates with the seeds' letters once the text is lowercased), so the engine's fast
    first-letter test applies. A topic's groups are named ``Topic`` and ``Topic_``.
    """
    anchored, free = [], []
    for topic, patterns in seed_terms.items():
        mine = [p for p in patterns if not _free_standing(p)]
        own = [p for p in patterns if _free_standing(p)]
        if mine:
            anchored.append(f"(?P<{topic}>{'|'.join(mine)})")
        if own:
            free.append(f"(?P<{topic}_>{'|'.join(own)})")
    parts = ([rf"(?:\s|^)(?:{'|'.join(anchored)})"] if anchored else []) + free
    return re.compile("|".join(parts))


_FOLD = {0x131: "i", 0x17F: "s"}  # dotless i, long s: equal to i, s under re.IGNORECASE


def fold_case(text: str) -> str:
    """Lowercase, as ``compile_seed_scanner`` expects (same length: positions are unchanged)."""
    return text.lower().translate(_FOLD)


_SEED_SCANNER = compile_seed_scanner()
_SEED_TOPIC = {i: TOPICS.index(name.rstrip("_")) for name, i in _SEED_SCANNER.groupindex.items()}


def seed_labels(texts: list[str] | np.ndarray) -> tuple[np.ndarray, list[frozenset[int] | None]]:
    """Seed topic per text (int64[P], 0 = none) and the matched topics of conflicted texts."""
    labels = np.zeros(len(texts), dtype=np.int64)
    conflicted: list[frozenset[int] | None] = [None] * len(texts)
    topic = _SEED_TOPIC
    for i, text in enumerate(texts):
        found = {topic[m.lastindex] for m in _SEED_SCANNER.finditer(fold_case(text))}  # type: ignore[index]
        if len(found) == 1:
            labels[i] = found.pop()
        elif len(found) > 1:
            conflicted[i] = frozenset(found)
    return labels, conflicted


_URL = re.compile(r"https?://[^\s)\]]+")
_KEEP_URLS = (re.compile(r"help\.x\.com"), re.compile(r"x\.com/tos"))


def _filter_url_tokens(text: str, min_len: int) -> str:
    """Replace each URL by its alphabetic pieces of ≥ min_len letters (seed URLs kept whole)."""

    def replace(match: re.Match[str]) -> str:
        url = match.group(0)
        if any(p.search(url) for p in _KEEP_URLS):
            return url
        return " ".join(t for t in re.findall(r"[a-zA-Z]+", url) if len(t) >= min_len)

    return _URL.sub(replace, text)


def post_texts(notes: pd.DataFrame, config: TopicConfig | None = None) -> pd.DataFrame:
    """One row per post (sorted by ``tweetId``): ``tweetId`` and the cleaned concatenated ``summary``."""
    c = config or TopicConfig()
    frame = notes[["tweetId", "summary"]].copy()
    frame["tweetId"] = frame["tweetId"].astype(str)
    frame["summary"] = frame["summary"].fillna("").astype(str)
    # One post per distinct tweetId in sorted order, its notes' summaries joined in row order: what
    # ``groupby(sort=True).apply(" ".join)`` gives, without pandas' per-group call (1.3M posts at
    # X's scale; the apply was a sixth of the topic model's time).
    codes, ids = pd.factorize(frame["tweetId"].to_numpy(dtype=object), sort=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(ids) + 1)).tolist()
    summaries = frame["summary"].to_numpy(dtype=object)[order].tolist()
    clean = c.url_min_token_length
    joined = [
        _filter_url_tokens(" ".join(summaries[a:b]), clean).replace("_", " ").replace("/", " ")
        for a, b in itertools.pairwise(bounds)
    ]
    return pd.DataFrame({"tweetId": np.asarray(ids, dtype=object), "summary": joined})


_URL_SEEDS = tuple(t for terms in SEED_TERMS.values() for t in terms if "\\." in t)
# One group per seed URL, then one for plain words: exactly one group of a match is non-empty.
_TOKEN = re.compile(
    r"(?i)" + "".join(rf"(?:https?://)?({t})(?:/[^\s]+)?|" for t in _URL_SEEDS) + r"(\b\w\w+\b)"
)


def tokenize(text: str) -> list[str]:
    """Words of ≥ 2 characters, keeping seed URLs (``help.x.com``, ``x.com/tos``) as single tokens.

    Expects preprocessed (accent-stripped, lowercased) text, as CountVectorizer passes it.
    """
    return ["".join(groups) for groups in _TOKEN.findall(text)]


def _blocked_tokens() -> set[str]:
    blocked: set[str] = set()
    for terms in SEED_TERMS.values():
        blocked |= {re.sub(r"\\[sb]", "", t.strip()) for t in terms}
        blocked |= {re.sub(r"\\.", ".", t.strip()) for t in terms}
    return blocked


def _is_seed_token(token: str, blocked: set[str]) -> bool:
    return any(t in token for t in blocked)


def seed_stop_words(texts: list[str]) -> list[str]:
    """Vocabulary tokens that contain any seed term: removed so the model learns context only."""
    tokens = TokenizedTexts.of(texts)
    blocked = _blocked_tokens()
    return sorted(v for v in tokens.vocabulary if _is_seed_token(v, blocked))


@dataclass
class TokenizedTexts:
    """Every text analysed once, as CountVectorizer(strip_accents="unicode", tokenizer=tokenize)
    would (lowercase, strip accents, ``tokenize``): token ids (int32, concatenated, ``indptr``
    int64[P+1]) into ``vocabulary`` (first-seen order).

    Why: the topic model analyses the posts three times (stop words, fit, predict); the analysis is
    most of its cost. ``analyzer`` hands a text's tokens to CountVectorizer(analyzer=...) by index,
    so sklearn builds the very same matrices from them. Ids, not strings, so that memory stays
    4 bytes a token at any scale.
    """

    ids: np.ndarray
    indptr: np.ndarray
    vocabulary: list[str]

    @classmethod
    def of(cls, texts: list[str]) -> TokenizedTexts:
        from array import array

        from sklearn.feature_extraction.text import CountVectorizer

        prep = CountVectorizer(strip_accents="unicode").build_preprocessor()
        index: dict[str, int] = {}
        ids = array("i")
        indptr = array("q", [0])
        for text in texts:
            ids.extend([index.setdefault(w, len(index)) for w in tokenize(prep(text))])
            indptr.append(len(ids))
        return cls(np.frombuffer(ids, dtype=np.int32), np.frombuffer(indptr, dtype=np.int64), list(index))

    def without(self, stop_words: list[str]) -> TokenizedTexts:
        """The same texts with every token in ``stop_words`` dropped (as CountVectorizer does)."""
        if not stop_words:
            return self
        stop = frozenset(stop_words)
        drop = np.fromiter((v in stop for v in self.vocabulary), dtype=bool, count=len(self.vocabulary))
        keep = ~drop[self.ids]
        kept_before = np.r_[0, np.cumsum(keep, dtype=np.int64)]  # kept tokens before each position
        return TokenizedTexts(self.ids[keep], kept_before[self.indptr], self.vocabulary)

    def followed_by(self, other: TokenizedTexts) -> TokenizedTexts:
        """These texts then ``other``'s, as one ``of`` over both would number them: ``other``'s
        words not in this vocabulary get the next ids in ``other``'s first-seen order."""
        index = {w: i for i, w in enumerate(self.vocabulary)}
        vocabulary = list(self.vocabulary)
        remap = np.empty(len(other.vocabulary), dtype=np.int32)
        for j, word in enumerate(other.vocabulary):
            i = index.get(word)
            if i is None:
                i = index[word] = len(vocabulary)
                vocabulary.append(word)
            remap[j] = i
        ids = np.concatenate([self.ids, remap[other.ids]])
        indptr = np.concatenate([self.indptr, other.indptr[1:] + self.indptr[-1]])
        return TokenizedTexts(ids, indptr, vocabulary)

    def analyzer(self, i: int) -> list[str]:
        """Tokens of text ``i`` (CountVectorizer's ``analyzer``; the documents are text indices)."""
        vocab = self.vocabulary
        return [vocab[j] for j in self.ids[self.indptr[i] : self.indptr[i + 1]].tolist()]


@numba.njit(cache=True, nogil=True)
def _doc_counts(ids, indptr, docs, column, key):
    """CSR (indptr int64, indices int64, data int64) of ``docs``' token counts by ``column[id]``
    (ids whose column is negative dropped), each row's entries in ascending ``key[id]`` (a key
    unique to each word)."""
    total = 0
    for d in docs:
        total += indptr[d + 1] - indptr[d]
    out_ptr = np.zeros(docs.shape[0] + 1, dtype=np.int64)
    out_col = np.empty(total, dtype=np.int64)
    out_n = np.empty(total, dtype=np.int64)
    n = 0
    for i in range(docs.shape[0]):
        d = docs[i]
        mine = ids[indptr[d] : indptr[d + 1]]
        mine = mine[column[mine] >= 0]
        keys = key[mine]
        mine = mine[np.argsort(keys, kind="mergesort")]
        for j in range(mine.shape[0]):
            if j > 0 and mine[j] == mine[j - 1]:
                out_n[n - 1] += 1
            else:
                out_col[n] = column[mine[j]]
                out_n[n] = 1
                n += 1
        out_ptr[i + 1] = n
    return out_ptr, out_col[:n].copy(), out_n[:n].copy()


@numba.njit(cache=True, nogil=True)
def _first_seen(ids, indptr, docs, n_words):
    """int64[n_words]: each word's rank of first appearance over ``docs`` in order (-1: absent)."""
    rank = np.full(n_words, -1, dtype=np.int64)
    r = 0
    for d in docs:
        for j in range(indptr[d], indptr[d + 1]):
            if rank[ids[j]] < 0:
                rank[ids[j]] = r
                r += 1
    return rank


def _csr(docs: np.ndarray, tokens: TokenizedTexts, column: np.ndarray, key: np.ndarray, width: int) -> Any:
    """A count matrix as CountVectorizer returns one: int64 counts, int32 indices while they fit
    (as sklearn picks them), each row's entries in ``key`` order (``count_matrices``)."""
    import scipy.sparse as sp

    ptr, col, counts = _doc_counts(tokens.ids, tokens.indptr, docs, column, key)
    index = np.int32 if ptr[-1] <= np.iinfo(np.int32).max else np.int64
    return sp.csr_array((counts, col.astype(index), ptr.astype(index)), shape=(docs.shape[0], width))


def count_matrices(
    tokens: TokenizedTexts, fit_docs: np.ndarray, min_df: float, max_df: float
) -> tuple[Any, Any]:
    """What ``CountVectorizer(analyzer=tokens.analyzer, min_df=min_df, max_df=max_df)`` gives from
    ``fit_transform(fit_docs)`` and then ``transform`` of every text: the vocabulary is the
    fitted texts' words sorted, less those in fewer than ``min_df`` or more than ``max_df`` of
    them (an integer is a count of texts, a float a share of them, as sklearn reads both); a
    row counts its text's words in that vocabulary. Same values, indices and order, so TF-IDF
    and the classifier see the same numbers, bit for bit: sklearn leaves a fitted row's entries
    in the order the words first appeared in the fitted texts (it sorts them before it renumbers
    the words alphabetically), and sorts a transformed row's by column. Raises sklearn's
    ``ValueError``s where it would (no words, none left)."""
    fit_docs = np.asarray(fit_docs, dtype=np.int64)
    n_words = len(tokens.vocabulary)
    first = _first_seen(tokens.ids, tokens.indptr, fit_docs, n_words)
    if not (first >= 0).any():
        raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
    n_fit = fit_docs.shape[0]
    max_df = max_df if isinstance(max_df, numbers.Integral) else max_df * n_fit
    min_df = min_df if isinstance(min_df, numbers.Integral) else min_df * n_fit
    if max_df < min_df:
        raise ValueError("max_df corresponds to < documents than min_df")
    words = np.flatnonzero(first >= 0)
    words = words[np.argsort(np.asarray(tokens.vocabulary, dtype=object)[words], kind="stable")]
    every = np.arange(n_words, dtype=np.int64)
    df = np.bincount(_csr(fit_docs, tokens, every, every, n_words).indices, minlength=n_words)[words]
    kept = words[(df <= max_df) & (df >= min_df)]
    if kept.shape[0] == 0:
        raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
    column = np.full(n_words, -1, dtype=np.int64)
    column[kept] = np.arange(kept.shape[0])
    all_docs = np.arange(tokens.indptr.shape[0] - 1, dtype=np.int64)
    n = kept.shape[0]
    return _csr(fit_docs, tokens, column, first, n), _csr(all_docs, tokens, column, column, n)


# Posts from which the per-text passes (seed labels, tokens) run in two processes: below it the
# fork costs more than it saves.
PARALLEL_POSTS = 100_000
_SHARED_TEXTS: list[str] = []  # what a forked worker reads its half from (no pickling of texts)


def _analyse(texts: list[str]) -> tuple[np.ndarray, list[frozenset[int] | None], TokenizedTexts]:
    labels, conflicted = seed_labels(texts)
    return labels, conflicted, TokenizedTexts.of(texts)


def _analyse_shared(start: int, stop: int) -> tuple[np.ndarray, list[frozenset[int] | None], TokenizedTexts]:
    return _analyse(_SHARED_TEXTS[start:stop])


def analyse_texts(
    texts: list[str], workers: int | None = None
) -> tuple[np.ndarray, list[frozenset[int] | None], TokenizedTexts]:
    """``seed_labels(texts)`` and ``TokenizedTexts.of(texts)``: two pure-Python passes over every
    post (two fifths of the topic model at `large`, on one core since the GIL holds them), so
    from ``PARALLEL_POSTS`` posts a forked process takes the second half while this one does the
    first (where the platform can fork; else one pass). The halves join to the same arrays:
    labels and tokens are per text, and the second half's new words are numbered after the
    first half's vocabulary in the order they first appear, which is where a single pass
    numbers them. ``workers``: how many processes (default: 2 where the process may run on two
    CPUs)."""
    if workers is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        workers = min(2, cpus)
    if workers < 2 or len(texts) < PARALLEL_POSTS or "fork" not in multiprocessing.get_all_start_methods():
        return _analyse(texts)
    half = len(texts) // 2
    global _SHARED_TEXTS
    _SHARED_TEXTS = texts
    try:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
            second = pool.submit(_analyse_shared, half, len(texts))
            first = _analyse(texts[:half])
            rest = second.result()
    finally:
        _SHARED_TEXTS = []
    return (
        np.concatenate([first[0], rest[0]]),
        first[1] + rest[1],
        first[2].followed_by(rest[2]),
    )


@dataclass
class TopicAssignment:
    """Per-post results (aligned with ``posts``) and per-note topics."""

    posts: pd.DataFrame  # tweetId, summary, seed, topic (int)
    note_topic: np.ndarray  # object[notes]: topic name or None
    balanced_accuracy: float  # NaN when no classifier was trained


def _thresholds(c: TopicConfig) -> np.ndarray:
    thr = np.full(len(TOPICS), c.unassigned_threshold)
    thr[TOPICS.index("InDimensionTwo")] = c.in_dimension_two_threshold
    return thr


def merge_predictions(
    probs: np.ndarray, seeds: np.ndarray, conflicted: list[frozenset[int] | None], thresholds: np.ndarray
) -> np.ndarray:
    """int64[P]: argmax, overridden by the seed topic (or best conflicted topic) when confident enough."""
    pred = np.argmax(probs, axis=1)
    for label in range(1, len(TOPICS)):
        keep = (seeds == label) & (1.0 - probs[:, label] <= thresholds[label])
        pred[keep] = label
    for i, options in enumerate(conflicted):
        if options:
            best = max(sorted(options), key=lambda t: probs[i, t])  # ties → smallest topic index
            if 1.0 - probs[i, best] <= thresholds[best]:
                pred[i] = best
    return pred


def assign_topics(notes: pd.DataFrame, config: TopicConfig | None = None) -> TopicAssignment:
    """Topic per note of ``notes`` (columns ``noteId``, ``tweetId``, ``summary``), in its row order.

    Raises ``ScoringError`` when the trained classifier reproduces its seed labels with balanced
    accuracy ≤ 0.35 (the reference aborts the run there).
    """
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    c = config or TopicConfig()
    posts = post_texts(notes, c)
    texts = posts["summary"].tolist()
    seeds, conflicted, analysed = analyse_texts(texts)
    is_conflicted = np.array([x is not None for x in conflicted], dtype=bool)
    train = ~is_conflicted
    accuracy = float("nan")
    if len(np.unique(seeds[train])) < 2:
        pred = seeds.copy()  # nothing to learn from: seed labels only
    else:
        n_posts = len(texts)
        tokens = analysed
        blocked = _blocked_tokens()
        tokens = tokens.without(sorted(v for v in tokens.vocabulary if _is_seed_token(v, blocked)))
        # The reference's CountVectorizer → TF-IDF → logistic regression pipeline, its counts
        # made from the token ids (``count_matrices``: the same matrices, without a Python pass
        # over every token of every post twice)
        min_df = 1 if n_posts < c.large_corpus_posts else c.large_corpus_min_df
        max_df = max(c.max_df_floor, int(c.max_df_share * n_posts))
        fit_counts, all_counts = count_matrices(tokens, np.flatnonzero(train), min_df, max_df)
        tfidf = TfidfTransformer()
        classifier = LogisticRegression(max_iter=c.max_iter)
        classifier.fit(tfidf.fit_transform(fit_counts), seeds[train])
        del fit_counts
        raw = classifier.predict_proba(tfidf.transform(all_counts))
        probs = np.zeros((n_posts, len(TOPICS)))
        probs[:, classifier.classes_] = raw
        accuracy = float(balanced_accuracy_score(seeds[train], np.argmax(probs, axis=1)[train]))
        if accuracy <= c.min_balanced_accuracy:
            raise ScoringError(
                f"topic classifier: balanced accuracy {accuracy:.3f} ≤ {c.min_balanced_accuracy}"
            )
        pred = merge_predictions(probs, seeds, conflicted, _thresholds(c))
    posts["seed"] = seeds
    posts["topic"] = pred
    names = np.array([None, *TOPICS[1:]], dtype=object)
    by_post = dict(zip(posts["tweetId"], names[pred], strict=True))
    note_topic = notes["tweetId"].astype(str).map(by_post).to_numpy(dtype=object)
    return TopicAssignment(posts=posts, note_topic=note_topic, balanced_accuracy=accuracy)


def topic_note_confident(
    note: np.ndarray, rater: np.ndarray, rater_factor: np.ndarray, n_notes: int, min_per_side: int = 4
) -> np.ndarray:
    """bool[N]: more than ``min_per_side`` ratings by raters with factor ≥ 0 and more by raters
    with factor < 0 (§6.1).

    ``note``, ``rater``: per rating (length R; a matrix's own arrays); ``rater_factor``: float[U]
    the topic scorer's factor per rater (NaN: no factor, not counted). One pass with no
    per-rating array: the gathered form held ~27 bytes a rating (~5 GiB at X's 206M ratings).
    """
    neg, pos = rater_side_counts(note, rater, rater_factor, n_notes)
    return (pos > min_per_side) & (neg > min_per_side)
