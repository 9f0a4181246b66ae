"""Sentence-aware chunking across scripts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xling.index.chunking import chunk_text


def test_empty_text_gives_no_chunks() -> None:
    assert chunk_text("", max_chars=100, overlap_chars=10) == []
    assert chunk_text(" \n\t ", max_chars=100, overlap_chars=10) == []


def test_short_text_is_one_stripped_chunk() -> None:
    assert chunk_text("  Hello world.  ", max_chars=100, overlap_chars=10) == ["Hello world."]


def test_chunks_hold_whole_sentences_and_overlap_by_whole_sentences() -> None:
    text = "The cat sat on the mat. It was happy. The dog barked."

    assert chunk_text(text, max_chars=40, overlap_chars=15) == [
        "The cat sat on the mat. It was happy.",
        "It was happy. The dog barked.",
    ]


def test_overlap_is_dropped_when_it_would_overflow_the_chunk() -> None:
    text = "The cat sat on the mat. It was happy. The dog barked at the cat loudly."

    assert chunk_text(text, max_chars=40, overlap_chars=15) == [
        "The cat sat on the mat. It was happy.",
        "The dog barked at the cat loudly.",
    ]


def test_decimal_points_do_not_end_sentences() -> None:
    assert chunk_text("Version 3.14 is out. Great!", max_chars=22, overlap_chars=0) == [
        "Version 3.14 is out.",
        "Great!",
    ]


def test_cjk_sentences_end_at_full_width_stops_without_spaces() -> None:
    text = "東京は日本の首都です。大阪は大きな都市です。京都には古い寺がたくさんあります。"

    assert chunk_text(text, max_chars=22, overlap_chars=0) == [
        "東京は日本の首都です。大阪は大きな都市です。",
        "京都には古い寺がたくさんあります。",
    ]


def test_long_text_without_spaces_is_cut_by_characters() -> None:
    text = "これはとても長い文でありまして句読点がまったくないまま延々と続いていきます"

    chunks = chunk_text(text, max_chars=10, overlap_chars=0)

    assert chunks == [text[0:10], text[10:20], text[20:30], text[30:]]


def test_long_sentences_are_cut_between_words_with_word_overlap() -> None:
    text = "one two three four five six seven eight nine ten"

    assert chunk_text(text, max_chars=15, overlap_chars=6) == [
        "one two three",
        "four five six",
        "six seven eight",
        "eight nine ten",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("यह पहला वाक्य है। यह दूसरा वाक्य है।", ["यह पहला वाक्य है।", "यह दूसरा वाक्य है।"]),
        ("هل أنت بخير؟ نعم أنا بخير.", ["هل أنت بخير؟", "نعم أنا بخير."]),
        ("First paragraph no stop\n\nSecond one", ["First paragraph no stop", "Second one"]),
    ],
    ids=["devanagari-danda", "arabic-question-mark", "blank-line"],
)
def test_script_specific_sentence_ends(text: str, expected: list[str]) -> None:
    assert chunk_text(text, max_chars=24, overlap_chars=0) == expected


@pytest.mark.parametrize(("max_chars", "overlap_chars"), [(0, 0), (10, 10), (10, -1)])
def test_bad_sizes_are_value_errors(max_chars: int, overlap_chars: int) -> None:
    with pytest.raises(ValueError):
        chunk_text("text", max_chars=max_chars, overlap_chars=overlap_chars)


_WORDS = st.sampled_from(
    ["alpha", "beta", "gamma.", "delta!", "東京は", "首都です。", "है।", "x" * 30]
)


@settings(max_examples=150, deadline=None)
@given(
    words=st.lists(_WORDS, max_size=60),
    separator=st.sampled_from([" ", "", "\n\n"]),
    max_chars=st.integers(min_value=1, max_value=80),
    overlap_ratio=st.floats(min_value=0, max_value=0.9),
)
def test_chunks_fit_and_lose_no_text(
    words: list[str], separator: str, max_chars: int, overlap_ratio: float
) -> None:
    text = separator.join(words)
    overlap = int(max_chars * overlap_ratio)

    chunks = chunk_text(text, max_chars=max_chars, overlap_chars=overlap)

    assert all(0 < len(chunk) <= max_chars for chunk in chunks)
    assert all(chunk == chunk.strip() for chunk in chunks)
    # Chunks, spaces aside, are pieces of the text that leave no gap: each
    # starts at or before where the previous ones reached (overlaps repeat).
    squeezed_text = "".join(text.split())
    covered = 0
    for chunk in chunks:
        piece = "".join(chunk.split())
        start = squeezed_text.rfind(piece, 0, covered + len(piece))
        assert start != -1, (chunk, chunks)
        covered = max(covered, start + len(piece))
    assert covered == len(squeezed_text)
