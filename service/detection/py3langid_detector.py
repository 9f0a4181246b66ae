"""py3langid (a langid.py fork): a naive Bayes model over byte n-grams, offline.

Its model ships inside the package (data/model.npz.xz, 140 labels, loaded in
~0.5 s). Scores are a softmax of the log-posterior at a temperature of the
square root of the text's length in bytes (``norm_probs``), which keeps a
short phrase's probabilities spread where the n-grams leave it unsure.
"""

from __future__ import annotations

import logging
import threading

from py3langid.langid import MODEL_FILE, LanguageIdentifier

from xling.service.detection.base import LanguageScore
from xling.service.detection.script_rules import rank_text

logger = logging.getLogger(__name__)

# The service answers base ISO 639-1 codes where one exists, and
# macrolanguages for their members (arz: Egyptian Arabic, uzs: Southern Uzbek).
_CODES = {
    "no": "nb",  # py3langid's Norwegian is Bokmål; nn is its own label
    "arz": "ar",
    "ary": "ar",
    "wuu": "zh",
    "yue": "zh",
    "uzs": "uz",
    "gug": "gn",
    "sdh": "ku",
    "fuv": "ff",
}
# "No linguistic content": not a language to answer.
_DROPPED = frozenset({"zxx"})

# Labels below this are left out, as fastText's are (fasttext_detector.MIN_PROBABILITY).
MIN_PROBABILITY = 1e-4

_lock = threading.Lock()
_shared: LanguageIdentifier | None = None


def _identifier() -> LanguageIdentifier:
    """One loaded model for the process. Classifying only reads it; nothing
    here calls ``set_languages``, its one method that writes."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            logger.info("py3langid model loaded (%d labels)", len(_shared.labels))
        return _shared


def to_base_code(label: str) -> str:
    return _CODES.get(label, label)


class Py3langidDetector:
    """Thread-safe and deterministic: naive Bayes has no randomness."""

    name = "py3langid"

    def __init__(self) -> None:
        self._identifier = _identifier()
        self._supported = frozenset(
            to_base_code(label) for label in self._identifier.labels if label not in _DROPPED
        )

    def distribution(self, cleaned: str) -> dict[str, float]:
        """Probability of every language with at least ``MIN_PROBABILITY`` for
        a cleaned text (``clean_text``)."""
        scores: dict[str, float] = {}
        for label, probability in self._identifier.rank(cleaned):
            if probability < MIN_PROBABILITY:
                break  # ranked best first
            if label not in _DROPPED:
                code = to_base_code(label)
                scores[code] = scores.get(code, 0.0) + probability
        return scores

    def detect(self, text: str, top_k: int = 3) -> list[LanguageScore]:
        return rank_text(self.distribution, text, top_k)

    def supported_languages(self) -> frozenset[str]:
        return self._supported
