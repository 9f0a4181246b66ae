"""PostgreSQL full-text search over the lexical tokenizer's words.

PostgreSQL's own parsers split text by the rules of one configuration; the
backend instead stores the words of ``xling.index.lexical.tokenize`` (every
script, CJK bigrams, the document language's stop words dropped) as a
``tsvector`` with positions, and turns a query's words into an OR
``tsquery``. Matching is then the same as the FAISS backend's BM25; ranking
is PostgreSQL's ``ts_rank`` (term frequency, not BM25's saturation and IDF).
"""

from __future__ import annotations

from xling.index.lexical import tokenize

# tsvector positions stop at 16383, and a word keeps at most 256 of them.
_MAX_POSITION = 16_383
_MAX_POSITIONS = 256
# PostgreSQL refuses longer lexemes; such a "word" is a run of symbols anyway.
_MAX_WORD_BYTES = 2046


def _words(text: str, language_code: str = "") -> list[str]:
    return [w for w in tokenize(text, language_code) if len(w.encode()) <= _MAX_WORD_BYTES]


def _quote(word: str) -> str:
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


def passage_tsvector(text: str, language_code: str) -> str:
    """The ``tsvector`` literal of a passage: each word with its positions."""
    positions: dict[str, list[int]] = {}
    for position, word in enumerate(_words(text, language_code), start=1):
        positions.setdefault(word, []).append(min(position, _MAX_POSITION))
    return " ".join(
        f"{_quote(word)}:{','.join(map(str, sorted(set(spots))[:_MAX_POSITIONS]))}"
        for word, spots in positions.items()
    )


def query_tsquery(query: str) -> str | None:
    """The ``tsquery`` literal matching any word of ``query``; None if it has none."""
    words = dict.fromkeys(_words(query))
    return " | ".join(map(_quote, words)) or None
