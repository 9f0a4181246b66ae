"""The tokenizer and the incremental BM25, checked against bm25s as an oracle."""

from __future__ import annotations

import random

import bm25s
import numpy as np
import pytest

from xling.index.lexical import Bm25Index, tokenize


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("The Cat's HOUSE, 2024!", ["the", "cat", "s", "house", "2024"]),
        ("Straße", ["strasse"]),
        ("東京都に行く", ["東京", "京都", "都に", "に行", "行く"]),
        ("東", ["東"]),
        ("서울 특별시", ["서울", "특별", "별시"]),
        ("ภาษาไทย", ["ภา", "าษ", "ษา", "าไ", "ไท", "ทย"]),
        ("हिन्दी भाषा", ["हिन्दी", "भाषा"]),
        ("اللغة العربية", ["اللغة", "العربية"]),
        ("iPhone 15 東京版", ["iphone", "15", "東京", "京版"]),
    ],
)
def test_tokenize(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_stop_words_go_only_in_their_own_language() -> None:
    assert tokenize("Die Katze und der Hund", "de") == ["katze", "hund"]
    assert tokenize("Die Katze und der Hund", "de-AT") == ["katze", "hund"]
    assert tokenize("Die Katze und der Hund", "en") == ["die", "katze", "und", "der", "hund"]
    assert tokenize("the war of the worlds", "EN") == ["war", "worlds"]
    assert tokenize("the war", "xx") == tokenize("the war") == ["the", "war"]


def random_corpus(count: int, *, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(200)]
    # Zipf-like: a few common words, many rare ones, as in real text.
    weights = [1 / (rank + 1) for rank in range(len(words))]
    return [rng.choices(words, weights, k=rng.randint(1, 40)) for _ in range(count)]


def oracle_scores(corpus: list[list[str]], query: list[str]) -> np.ndarray:
    oracle = bm25s.BM25(method="lucene")
    oracle.index(corpus, show_progress=False)
    return oracle.get_scores(query)


def dense_scores(index: Bm25Index, ids: np.ndarray, query: list[str]) -> np.ndarray:
    found, scores = index.search(query, len(ids))
    position = {chunk_id: row for row, chunk_id in enumerate(ids.tolist())}
    result = np.zeros(len(ids))
    for chunk_id, score in zip(found.tolist(), scores.tolist(), strict=True):
        result[position[chunk_id]] = score
    return result


QUERIES = [["w1"], ["w3", "w150"], ["w0", "w0", "w77"], ["w199", "w5", "w20", "w2"]]


def test_scores_match_bm25s_after_many_small_additions() -> None:
    corpus = random_corpus(600, seed=1)
    ids = np.arange(600, dtype=np.int64) * 3 + 11
    index = Bm25Index()
    for start in range(0, 600, 23):  # many writes: segments get merged
        index.add(ids[start : start + 23], corpus[start : start + 23])

    assert len(index) == 600
    for query in QUERIES:
        np.testing.assert_allclose(
            dense_scores(index, ids, query), oracle_scores(corpus, query), rtol=1e-5, atol=1e-6
        )


def test_scores_match_bm25s_after_removals() -> None:
    corpus = random_corpus(400, seed=2)
    ids = np.arange(400, dtype=np.int64)
    index = Bm25Index()
    for start in range(0, 400, 50):
        index.add(ids[start : start + 50], corpus[start : start + 50])
    doomed = ids[::3]

    assert index.remove(np.concatenate([doomed, [10_000]])) == len(doomed)

    kept = np.setdiff1d(ids, doomed)
    assert sorted(index.chunk_ids().tolist()) == kept.tolist()
    for query in QUERIES:
        np.testing.assert_allclose(
            dense_scores(index, kept, query),
            oracle_scores([corpus[i] for i in kept], query),
            rtol=1e-5,
            atol=1e-6,
        )


def test_results_are_best_first_positive_and_filtered() -> None:
    index = Bm25Index()
    texts = ["red apples and red cherries", "green apples", "blue sky", "red sky at night"]
    index.add(np.arange(4, dtype=np.int64), [tokenize(text) for text in texts])

    found, scores = index.search(tokenize("red apples"), 10)
    assert found.tolist() == [0, 1, 3]  # both words first, then the shorter one-word match
    assert np.all(scores > 0) and np.all(np.diff(scores) < 0)

    found, _ = index.search(tokenize("red apples"), 10, allowed_ids=np.array([1, 2], np.int64))
    assert found.tolist() == [1]
    found, _ = index.search(tokenize("red apples"), 1)
    assert found.tolist() == [0]


def test_unknown_words_and_empty_indexes_find_nothing() -> None:
    index = Bm25Index()
    assert index.search(["anything"], 5)[0].size == 0

    index.add(np.array([1], np.int64), [["known"]])
    assert index.search(["unknown"], 5)[0].size == 0
    assert index.search([], 5)[0].size == 0
    index.remove(np.array([1], np.int64))
    assert index.search(["known"], 5)[0].size == 0
    assert len(index) == 0
