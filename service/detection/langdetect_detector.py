"""langdetect (a port of Google's language-detection), made deterministic.

langdetect samples n-grams at random. Its module-level ``detect`` shares one
global factory whose seed any caller may change; here each seed gets its own
factory, fully set up before anyone reads it, and every call builds a fresh
``Detector`` that seeds its own ``random.Random`` from it: same text, same seed,
same answer, from any number of threads.
"""

from __future__ import annotations

import logging
import threading

from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
from langdetect.lang_detect_exception import LangDetectException

from xling.service.detection.base import LanguageScore
from xling.service.detection.script_rules import rank_text

logger = logging.getLogger(__name__)

_CODES = {"zh-cn": "zh", "zh-tw": "zh", "no": "nb"}

_lock = threading.Lock()
_factories: dict[int, DetectorFactory] = {}


def _factory(seed: int) -> DetectorFactory:
    """The factory for ``seed``, loaded once per process (~0.6 s, ~60 MB)."""
    with _lock:
        factory = _factories.get(seed)
        if factory is None:
            factory = DetectorFactory()
            factory.load_profile(PROFILES_DIRECTORY)
            factory.set_seed(seed)
            _factories[seed] = factory
            logger.info("langdetect profiles loaded (seed %d)", seed)
        return factory


def to_base_code(code: str) -> str:
    return _CODES.get(code, code)


class LangdetectDetector:
    """``trials``: how many random walks over the n-grams are averaged
    (langdetect's ``n_trial``, 7 unless set). Each walk runs until one
    language holds 0.99999 or 1000 steps, so on an ambiguous short text each
    costs the full 1000: cost grows with trials."""

    name = "langdetect"

    def __init__(self, seed: int = 0, trials: int = 7) -> None:
        self._factory = _factory(seed)
        self._trials = trials
        self._supported = frozenset(to_base_code(code) for code in self._factory.get_lang_list())

    def distribution(self, cleaned: str) -> dict[str, float]:
        """Languages above langdetect's 0.1 reporting floor, for a cleaned
        text (``clean_text``); empty when it finds no known n-gram."""
        detector = self._factory.create()
        detector.n_trial = self._trials
        detector.append(cleaned)
        try:
            found = detector.get_probabilities()
        except LangDetectException:
            return {}
        scores: dict[str, float] = {}
        for language in found:
            code = to_base_code(language.lang)
            scores[code] = scores.get(code, 0.0) + language.prob
        return scores

    def detect(self, text: str, top_k: int = 3) -> list[LanguageScore]:
        return rank_text(self.distribution, text, top_k)

    def supported_languages(self) -> frozenset[str]:
        return self._supported
