"""Script rules, fastText, function words and py3langid, for short texts above all.

A cascade, cheapest source first. The script of the letters picks the
candidate languages, and settles the single-language scripts alone. The
candidates of a shared script get a log-linear score, from fastText alone at
first; the function words join it where fastText is unsure (top confidence or
lead over the second below ``CascadeThresholds``), and py3langid, about twice
fastText's cost, only where they leave it unsure still. With every source in,
the score is

    ln(p_fasttext + floor) + w_py3langid * ln(p_py3langid + floor)
    + w_fw * (share of the words that are function words of the language)
    - letter_penalty * (letters its alphabet lacks)
    - fasttext_only_penalty * (py3langid does not know the language)

and a softmax at ``temperature`` turns scores into confidences. py3langid's
term is left out where the others leave the best two tied and py3langid is
unsure itself (``TIE_NATS``, ``EnsembleWeights.py3langid_confidence``).

Both models learnt from long text and see a 2-6 word phrase through a handful
of n-grams; function words (stopwords-iso lists) are most of such a phrase and
tell close languages apart (nb "hva" vs da "hvad", sv "jag" vs da "jeg"). fastText
also knows ~65 languages that py3langid lacks, mostly Wikipedia-only ones
(ceb, war, ia) that its small model over-predicts on short input: they start
with a penalty, capped at 2 nats as the tune set holds no text in them to show
what a larger one would cost.

py3langid took the last stage from langdetect, which cost ~40 times fastText
(7 ms a short phrase at its 7 trials, 17 ms on the unsure ones the cascade
sent it) and was right less often on short phrases (docs/bench/detection.md).
langdetect remains a detector of its own, outside the cascade.

A phrase that is the same in two languages (ru and uk "до завтра") leaves
fastText split between them, so it goes on down the cascade, and comes out
with both near each other unless another source tells them apart.

The weights were fit on tests/data/phrases_tune.tsv alone (``python
bench/detect_bench.py --fit``): best top-1 accuracy, then lowest log-loss,
then the temperature that minimises log-loss. The earlier stages'
temperatures (lowest log-loss) and the cascade's thresholds were fit on the
same phrases afterwards: the most accurate thresholds, then the fewest
py3langid runs, then the fewest function-word runs.
"""

from __future__ import annotations

import functools
import heapq
import logging
import math
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

import stopwordsiso

from xling.service.detection import fasttext_detector
from xling.service.detection.base import LanguageScore
from xling.service.detection.fasttext_detector import FastTextDetector
from xling.service.detection.py3langid_detector import Py3langidDetector
from xling.service.detection.script_rules import (
    ScriptEvidence,
    all_languages,
    analyze,
    clean_text,
    ranked,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EnsembleWeights:
    """fastText's log-probability is the unit the other terms are scaled to."""

    py3langid: float
    # Where the other sources leave two languages tied (within ``TIE_NATS``),
    # py3langid breaks the tie only if its own top probability reaches this.
    # A phrase written the same in two languages leaves it unsure too (ru/uk
    # "до завтра": uk 0.41, ru 0.15), and weighted as its sure answers are,
    # that lean would decide. Not fitted: the tune set holds no such phrase to
    # show what the lean costs; at 0.5 it puts more on one language than on
    # all the others together.
    py3langid_confidence: float
    floor: float
    function_words: float
    fasttext_only_penalty: float
    # Per distinct letter a candidate's alphabet lacks. Loanwords bring stray
    # accents into Latin text far more often than Cyrillic or Arabic letters
    # stray into another language of their script.
    latin_letter_penalty: float
    other_letter_penalty: float
    temperature: float


FITTED_WEIGHTS = EnsembleWeights(
    py3langid=2.0,
    py3langid_confidence=0.5,
    floor=3e-3,
    function_words=24.0,
    fasttext_only_penalty=2.0,
    latin_letter_penalty=4.0,
    other_letter_penalty=6.0,
    temperature=1.264,
)


@dataclass(frozen=True, slots=True)
class CascadeThresholds:
    """Where the cascade stops. After fastText, and again once the function
    words are in, the ranking is the answer if its top confidence is at least
    the stage's ``confidence`` and leads the second by at least its
    ``margin``. The temperatures turn those stages' scores into confidences;
    the last stage, with py3langid, uses the weights' own."""

    fasttext_confidence: float
    fasttext_margin: float
    fasttext_temperature: float
    function_words_confidence: float
    function_words_margin: float
    function_words_temperature: float


FITTED_THRESHOLDS = CascadeThresholds(
    fasttext_confidence=0.98,
    fasttext_margin=0.0,
    fasttext_temperature=0.785,
    function_words_confidence=0.95,
    function_words_margin=0.0,
    function_words_temperature=1.044,
)
# Every text through every source, as the ensemble ran before the cascade:
# what bench/detect_bench.py and the tests measure the cascade against.
NEVER_EARLY = CascadeThresholds(math.inf, math.inf, 1.0, math.inf, math.inf, 1.0)

# The sources after the script, in the order the cascade runs them: about
# 0.1, 0.07 and 0.19 ms a short phrase; the function words come before
# py3langid as they settle more of what fastText leaves unsure, for less.
SOURCES = ("fasttext", "function_words", "py3langid")

# How close (in score, nats) the two best candidates are before py3langid for
# its unsure answers to be left out (``EnsembleWeights.py3langid_confidence``):
# the widest tie the tune set can spare, 0.25 costing it one phrase of 290
# and 0.5 three, with every source on every phrase.
TIE_NATS = 0.25
_FULL_LIST = 150  # words; the lists run from 29 (zu) to 1298 (en)
_STOPWORD_CODES = {"no": "nb"}  # stopwords-iso's Norwegian list is Bokmål
_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    _STOPWORD_CODES.get(code, code): frozenset(w.lower() for w in stopwordsiso.stopwords(code))
    for code in stopwordsiso.langs()
}
# The same lists by word: a phrase's few words look up their languages, rather
# than every candidate language looking up every word.
_WORD_LANGUAGES: dict[str, tuple[str, ...]] = {}
for _lang, _words_of_lang in _FUNCTION_WORDS.items():
    for _word in _words_of_lang:
        _WORD_LANGUAGES[_word] = (*_WORD_LANGUAGES.get(_word, ()), _lang)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What each source says about one text. ``sources`` names the ones that
    ran (a prefix of ``SOURCES``): none where the script alone decides, and
    the others stay empty."""

    script: ScriptEvidence
    fasttext: Mapping[str, float]
    function_words: Mapping[str, float]  # share of the words, per language
    py3langid: Mapping[str, float]
    sources: tuple[str, ...] = ()

    def upto(self, source: str) -> Evidence:
        """This evidence as the cascade had it once ``source`` had run."""
        sources = SOURCES[: SOURCES.index(source) + 1]
        return Evidence(
            self.script,
            self.fasttext,
            self.function_words if "function_words" in sources else {},
            self.py3langid if "py3langid" in sources else {},
            sources,
        )


def _words(cleaned: str) -> list[str]:
    """The lowercase words of a cleaned text: letters and digits with their
    combining marks. (Python's \\w leaves out the vowel signs of Indic
    scripts, which cut "मुझे" into fragments that matched other lists.)"""
    return "".join(
        ch if ch.isalnum() or unicodedata.category(ch)[0] == "M" else " " for ch in cleaned.lower()
    ).split()


def function_word_shares(cleaned: str, languages: tuple[str, ...]) -> dict[str, float]:
    """Per language with a list, the share of the words of ``cleaned`` in it.

    Short lists miss common words (stopwords-iso's Ukrainian one lacks за, на,
    не), which would count against their language: a language with a short list
    scores at least the mean share of the candidates with full ones.
    """
    words = _words(cleaned)
    if not words:
        return {}
    counts = dict.fromkeys((lang for lang in languages if lang in _FUNCTION_WORDS), 0)
    for word in words:
        for lang in _WORD_LANGUAGES.get(word, ()):
            if lang in counts:
                counts[lang] += 1
    shares = {lang: count / len(words) for lang, count in counts.items()}
    full = [share for lang, share in shares.items() if len(_FUNCTION_WORDS[lang]) >= _FULL_LIST]
    if full:
        mean = sum(full) / len(full)
        for lang, share in shares.items():
            if len(_FUNCTION_WORDS[lang]) < _FULL_LIST:
                shares[lang] = max(share, mean)
    return shares


def combine(
    evidence: Evidence,
    weights: EnsembleWeights,
    thresholds: CascadeThresholds,
    model_languages: frozenset[str],
) -> dict[str, float]:
    """Confidence for every candidate language of the evidence, from the
    sources that ran."""
    candidates = evidence.script.candidates
    if len(candidates) <= 1:
        return {lang: evidence.script.rule_confidence for lang in candidates}
    letter_penalty = (
        weights.latin_letter_penalty
        if evidence.script.script == "Latn"
        else weights.other_letter_penalty
    )
    temperature = {
        "fasttext": thresholds.fasttext_temperature,
        "function_words": thresholds.function_words_temperature,
        "py3langid": weights.temperature,
    }[evidence.sources[-1]]
    # Terms every candidate shares (the floor where a model gave it nothing)
    # leave the softmax unchanged: each source only adds to the languages it
    # names.
    scores = dict(_priors(candidates, model_languages, weights.fasttext_only_penalty))
    floor = weights.floor
    base = math.log(floor)
    for lang, probability in evidence.fasttext.items():
        if lang in scores:
            scores[lang] += math.log(probability + floor) - base
    for lang, share in evidence.function_words.items():
        scores[lang] += weights.function_words * share
    for lang, letters in evidence.script.foreign_letters.items():
        if lang in scores:
            scores[lang] -= letter_penalty * letters
    model = evidence.py3langid
    if model and max(model.values()) < weights.py3langid_confidence:
        first, second = heapq.nlargest(2, scores.values())
        if first - second < TIE_NATS:
            model = {}
    for lang, probability in model.items():
        if lang in scores:
            scores[lang] += weights.py3langid * (math.log(probability + floor) - base)
    top = max(scores.values())
    inverse = 1.0 / temperature
    exps = [math.exp((score - top) * inverse) for score in scores.values()]
    norm = 1.0 / sum(exps)
    return {lang: value * norm for lang, value in zip(scores, exps, strict=True)}


@functools.cache
def _priors(
    candidates: tuple[str, ...], model_languages: frozenset[str], fasttext_only_penalty: float
) -> tuple[tuple[str, float], ...]:
    return tuple(
        (lang, 0.0 if lang in model_languages else -fasttext_only_penalty) for lang in candidates
    )


def is_sure(confidences: Mapping[str, float], confidence: float, margin: float) -> bool:
    """Whether the top candidate is at least ``confidence`` and leads the
    second by at least ``margin``."""
    top, second = (*heapq.nlargest(2, confidences.values()), 0.0)[:2]
    return top >= confidence and top - second >= margin


class EnsembleDetector:
    """Thread-safe and deterministic as its parts are; the models only run
    where the script leaves a choice, py3langid only where fastText and the
    function words leave it unsure."""

    name = "ensemble"

    def __init__(
        self,
        weights: EnsembleWeights = FITTED_WEIGHTS,
        thresholds: CascadeThresholds = FITTED_THRESHOLDS,
    ) -> None:
        self._fasttext = FastTextDetector()
        self._py3langid = Py3langidDetector()
        self._weights = weights
        self._thresholds = thresholds
        self._supported = all_languages() & (
            fasttext_detector.SUPPORTED | self._py3langid.supported_languages()
        )
        logger.debug("ensemble of %d languages, %s", len(self._supported), weights)

    def gather(self, text: str, *, full: bool = False) -> Evidence:
        """The sources' evidence on ``text``, as far as the cascade runs them,
        or all of them if ``full`` (to fit weights and thresholds)."""
        return self._cascade(text, full)[0]

    def combine(
        self,
        evidence: Evidence,
        weights: EnsembleWeights | None = None,
        thresholds: CascadeThresholds | None = None,
    ) -> dict[str, float]:
        """Confidences from gathered evidence, with other weights or
        temperatures if given (to fit them)."""
        return combine(
            evidence,
            weights or self._weights,
            thresholds or self._thresholds,
            self._py3langid.supported_languages(),
        )

    def detect(self, text: str, top_k: int = 3) -> list[LanguageScore]:
        return ranked(self._cascade(text, full=False)[1], top_k)

    def _cascade(self, text: str, full: bool) -> tuple[Evidence, dict[str, float]]:
        cleaned = clean_text(text)
        script = analyze(cleaned)
        evidence = Evidence(script, {}, {}, {})
        if len(script.candidates) <= 1:
            return evidence, self.combine(evidence)
        limits = self._thresholds
        evidence = Evidence(script, self._fasttext.distribution(cleaned), {}, {}, SOURCES[:1])
        confidences = self.combine(evidence)
        if not full and is_sure(confidences, limits.fasttext_confidence, limits.fasttext_margin):
            return evidence, confidences
        shares = function_word_shares(cleaned, script.candidates)
        evidence = Evidence(script, evidence.fasttext, shares, {}, SOURCES[:2])
        confidences = self.combine(evidence)
        if not full and is_sure(
            confidences, limits.function_words_confidence, limits.function_words_margin
        ):
            return evidence, confidences
        evidence = Evidence(
            script, evidence.fasttext, shares, self._py3langid.distribution(cleaned), SOURCES
        )
        return evidence, self.combine(evidence)

    def supported_languages(self) -> frozenset[str]:
        return self._supported
