"""TranslateText on the embedded local model, checked by an independent detector.

py3langid is not part of xling's detector, so it judges the output language
without sharing xling's blind spots.
"""

from __future__ import annotations

import re

import py3langid
import pytest

from xling.clients import Client

SENTENCES = {
    ("en", "fr"): [
        "The meeting has been moved to Thursday afternoon.",
        "Please check your email to confirm your account.",
        "The weather is lovely today, let's go for a walk.",
        "Your package will arrive in three days.",
    ],
    ("en", "de"): [
        "The train to Berlin is running late this morning.",
        "Could you send me the report by Friday?",
        "My brother lives in a small house near the lake.",
        "The museum is free on the first Sunday of the month.",
    ],
    ("en", "zh"): [
        "The store opens at nine in the morning.",
        "I am learning to cook new recipes.",
        "The hotel room has a view of the sea.",
        "Please keep your ticket until the end of the trip.",
    ],
    ("fr", "en"): [
        "Le chat dort sur le canapé depuis ce matin.",
        "Nous partons en vacances à la montagne cet été.",
        "Pouvez-vous m'indiquer le chemin de la gare ?",
        "La réunion commence dans dix minutes.",
    ],
    ("ja", "en"): [
        "明日の会議は午後三時に始まります。",
        "駅までの道を教えていただけますか。",
        "この本はとても面白かったです。",
        "週末は家族と海に行きました。",
    ],
    ("ru", "es"): [
        "Сегодня вечером мы идём в театр.",
        "Мой друг работает врачом в больнице.",
        "Пожалуйста, закройте окно, здесь холодно.",
        "Этот город известен своими красивыми мостами.",
    ],
}


# The default suite samples each check; `pytest -m slow` runs it whole (the
# model takes 4-6 s a segment on 2 cores, and about 12 s more to evaluate the
# system prompt of each target language the first time; these tests dominate
# the suite).
SAMPLE = "sample"
# Three scripts, three target languages, English on neither side of one.
SAMPLE_PAIRS = [("en", "zh"), ("ja", "en"), ("ru", "es")]
WHOLE = pytest.param("whole", marks=pytest.mark.slow)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("size", [SAMPLE, WHOLE])
def test_output_is_in_the_target_language(client: Client, size: str) -> None:
    total = correct = 0
    misses = []
    pairs = SAMPLE_PAIRS if size == SAMPLE else list(SENTENCES)
    for source, target in pairs:
        sentences = SENTENCES[source, target][: 2 if size == SAMPLE else None]
        response = client.translate_text(sentences, target_language_code=target, timeout=600)
        for sentence, translation in zip(sentences, response.translations, strict=True):
            assert translation.detected_language_code == source
            assert translation.model.startswith("local:")
            total += 1
            if not translation.error:
                language, _ = py3langid.classify(translation.translated_text)
                if language == target:
                    correct += 1
                    continue
            misses.append((target, sentence, translation.translated_text, translation.error))
    assert correct / total >= 0.8, misses


MARKUP = [
    ("text/html", "<p>Welcome back, <b>{name}</b>!</p>"),
    (
        "text/html",
        'Read our <a href="https://example.com/terms?lang=en">terms of service</a> first.',
    ),
    ("text/html", "<ul><li>Fast shipping</li><li>Free returns</li></ul>"),
    ("text/plain", "You have {count} new messages."),
    ("text/plain", "Hello %s, your code is %d."),
    ("text/plain", "Contact support@example.com or visit https://example.com/help today."),
    ("text/plain", "The update to version 2.4.1 takes about 30 minutes."),
    ("text/plain", "Click <0>here</0> to continue, {{user}}."),
]
PROTECTED = re.compile(r"<[^>]+>|\{\{?\w+\}\}?|%[sd]|\S+@\S+\.\w+|https?://\S+|\d+(?:\.\d+)*")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("target", ["fr"])
def test_markup_and_placeholders_survive_or_are_reported(client: Client, target: str) -> None:
    failures = 0
    for mime_type, text in MARKUP:
        (translation,) = client.translate_text(
            [text],
            target_language_code=target,
            source_language_code="en",
            mime_type=mime_type,
            timeout=300,
        ).translations
        if translation.error:
            failures += 1
            assert translation.translated_text == ""
            continue
        for item in PROTECTED.findall(text):
            assert translation.translated_text.count(item) == text.count(item), translation
    assert failures <= 1


TIGHT_TAGS = [
    "<p>Click <b>here</b> to reset your password.</p>",
    "<p>Your order has <strong>shipped</strong>.</p>",
    'Open <a href="/settings">your settings</a> to change it.',
]
SPACE_INSIDE_TAG = re.compile(r"<[A-Za-z][^<>]*>\s|\s</[A-Za-z][^<>]*>")


@pytest.mark.timeout(600)
def test_tags_gain_no_whitespace(client: Client) -> None:
    """None of these sources has whitespace just inside an element; no translation may."""
    response = client.translate_text(
        TIGHT_TAGS,
        target_language_code="de",
        source_language_code="en",
        mime_type="text/html",
        timeout=300,
    )
    translated = [t.translated_text for t in response.translations if not t.error]
    assert len(translated) >= len(TIGHT_TAGS) - 1, response
    for text in translated:
        assert not SPACE_INSIDE_TAG.search(text), text


NUMBERS = [
    "The jacket costs 49.99 euros.",
    "Tickets are $12 for adults and $6 for children.",
    "The meeting is on 14/03/2025 at 10:30.",
    "Our office opens at 8:00 and closes at 17:45.",
    "We shipped 1,250 orders last week.",
    "Version 3.2.1 fixes 17 bugs.",
    "Please upgrade to version 2.0 before March 31.",
    "The train leaves at 6:15 from platform 9.",
    "She was born on 2 May 1987.",
    "The flight takes 11 hours and 40 minutes.",
    "About 3 million people live in the region.",
    "The recipe needs 250 grams of flour and 3 eggs.",
    "Your order number is 48213.",
    "The sale ends on 30 November 2024.",
    "Rent went up by 8% this year.",
    "The room holds 120 people.",
    "Call us between 9 and 5 on weekdays.",
    "The new phone costs 799 dollars.",
    "Python 3.12 was released in 2023.",
    "We have 24 hours to reply, so answer by 18:00.",
]
DIGITS = re.compile(r"\d+")


# A price, a date and time, a count with a separator, a version, a percentage, a year.
NUMBERS_SAMPLE = [NUMBERS[i] for i in (0, 2, 4, 5, 14, 18)]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("size", [SAMPLE, WHOLE])
def test_numbers_survive_or_are_reported(client: Client, size: str) -> None:
    sources = NUMBERS_SAMPLE if size == SAMPLE else NUMBERS
    response = client.translate_text(
        sources, target_language_code="de", source_language_code="en", timeout=840
    )
    errors = 0
    for source, translation in zip(sources, response.translations, strict=True):
        if translation.error:
            errors += 1
            assert translation.translated_text == ""
            continue
        runs = DIGITS.findall(translation.translated_text)
        for run in DIGITS.findall(source):
            assert run in runs, (source, translation.translated_text)
            runs.remove(run)
    assert errors <= max(1, len(sources) // 10), response
