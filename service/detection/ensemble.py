"""Script rules, fastText, langdetect and function words, for short texts above all.

The script of the letters picks the candidate languages, and settles the
single-language scripts alone. Each candidate of a shared script then gets a
log-linear score:

    ln(p_fasttext + floor) + w_ld * ln(p_langdetect + floor)
    + w_fw * (share of the words that are function words of the language)
    - letter_penalty * (letters its alphabet lacks)
    - fasttext_only_penalty * (langdetect does not know the language)

and a softmax at ``temperature`` turns scores into confidences.

Both models learnt from long text and see a 2-6 word phrase through a handful
of n-grams; function words (stopwords-iso lists) are most of such a phrase and
tell close languages apart (nb "hva" vs da "hvad", sv "jag" vs da "jeg"). fastText
also knows ~120 languages that langdetect lacks, mostly Wikipedia-only ones
(eo, ceb, war) that its small model over-predicts on short input: they start
with a penalty, capped at 2 nats as the tune set holds no text in them to show
what a larger one would cost.

The weights were fit on tests/data/phrases_tune.tsv alone (``python
bench/detect_bench.py --fit``): best top-1 accuracy, then lowest log-loss,
then the temperature that minimises log-loss.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import stopwordsiso

from xling.service.detection import fasttext_detector
from xling.service.detection.base import LanguageScore
from xling.service.detection.fasttext_detector import FastTextDetector
from xling.service.detection.langdetect_detector import LangdetectDetector
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

    langdetect: float
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
    langdetect=0.5,
    floor=3e-3,
    function_words=16.0,
    fasttext_only_penalty=2.0,
    latin_letter_penalty=4.0,
    other_letter_penalty=6.0,
    temperature=1.149,
)

_WORD = re.compile(r"\w+")
_FULL_LIST = 150  # words; the lists run from 29 (zu) to 1298 (en)
_STOPWORD_CODES = {"no": "nb"}  # stopwords-iso's Norwegian list is Bokmål
_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    _STOPWORD_CODES.get(code, code): frozenset(w.lower() for w in stopwordsiso.stopwords(code))
    for code in stopwordsiso.langs()
}


@dataclass(frozen=True, slots=True)
class Evidence:
    """What each source says about one text. Empty where the script alone
    decides: the models are not run then."""

    script: ScriptEvidence
    fasttext: Mapping[str, float]
    langdetect: Mapping[str, float]
    function_words: Mapping[str, float]  # share of the words, per language


def function_word_shares(cleaned: str, languages: tuple[str, ...]) -> dict[str, float]:
    """Per language with a list, the share of the words of ``cleaned`` in it.

    Short lists miss common words (stopwords-iso's Ukrainian one lacks за, на,
    не), which would count against their language: a language with a short list
    scores at least the mean share of the candidates with full ones.
    """
    words = _WORD.findall(cleaned.lower())
    if not words:
        return {}
    shares = {
        lang: sum(word in _FUNCTION_WORDS[lang] for word in words) / len(words)
        for lang in languages
        if lang in _FUNCTION_WORDS
    }
    full = [share for lang, share in shares.items() if len(_FUNCTION_WORDS[lang]) >= _FULL_LIST]
    if full:
        mean = sum(full) / len(full)
        for lang, share in shares.items():
            if len(_FUNCTION_WORDS[lang]) < _FULL_LIST:
                shares[lang] = max(share, mean)
    return shares


def combine(
    evidence: Evidence, weights: EnsembleWeights, langdetect_languages: frozenset[str]
) -> dict[str, float]:
    """Confidence for every candidate language of the evidence."""
    candidates = evidence.script.candidates
    if len(candidates) <= 1:
        return {lang: evidence.script.rule_confidence for lang in candidates}
    letter_penalty = (
        weights.latin_letter_penalty
        if evidence.script.script == "Latn"
        else weights.other_letter_penalty
    )
    floor = weights.floor
    scores: dict[str, float] = {}
    for lang in candidates:
        score = math.log(evidence.fasttext.get(lang, 0.0) + floor)
        if evidence.langdetect:  # it found no known n-gram otherwise
            score += weights.langdetect * math.log(evidence.langdetect.get(lang, 0.0) + floor)
        if lang not in langdetect_languages:
            score -= weights.fasttext_only_penalty
        score += weights.function_words * evidence.function_words.get(lang, 0.0)
        score -= letter_penalty * evidence.script.foreign_letters.get(lang, 0)
        scores[lang] = score / weights.temperature
    top = max(scores.values())
    exps = {lang: math.exp(score - top) for lang, score in scores.items()}
    total = sum(exps.values())
    return {lang: value / total for lang, value in exps.items()}


class EnsembleDetector:
    """Thread-safe and deterministic as its parts are; the models, langdetect
    the slow one, only run where the script leaves a choice."""

    name = "ensemble"

    def __init__(self, seed: int = 0, weights: EnsembleWeights = FITTED_WEIGHTS) -> None:
        self._fasttext = FastTextDetector()
        self._langdetect = LangdetectDetector(seed)
        self._weights = weights
        self._supported = all_languages() & (
            fasttext_detector.SUPPORTED | self._langdetect.supported_languages()
        )
        logger.debug("ensemble of %d languages, %s", len(self._supported), weights)

    def gather(self, text: str) -> Evidence:
        cleaned = clean_text(text)
        script = analyze(cleaned)
        if len(script.candidates) <= 1:
            return Evidence(script, {}, {}, {})
        return Evidence(
            script,
            self._fasttext.distribution(cleaned),
            self._langdetect.distribution(cleaned),
            function_word_shares(cleaned, script.candidates),
        )

    def combine(
        self, evidence: Evidence, weights: EnsembleWeights | None = None
    ) -> dict[str, float]:
        """Confidences from gathered evidence, with other weights if given (to fit them)."""
        return combine(evidence, weights or self._weights, self._langdetect.supported_languages())

    def detect(self, text: str, top_k: int = 3) -> list[LanguageScore]:
        return ranked(self.combine(self.gather(text)), top_k)

    def supported_languages(self) -> frozenset[str]:
        return self._supported
