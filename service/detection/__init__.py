"""Language detection: script rules, fastText, py3langid, langdetect, and the ensemble.

``create_detector(name, seed=...)`` builds one by its settings name. Every
detector is thread-safe and deterministic, and runs offline on models that
ship inside its packages.
"""

from __future__ import annotations

from collections.abc import Callable

from xling.service.detection.base import UNDETERMINED, Detector, LanguageScore
from xling.service.detection.ensemble import EnsembleDetector
from xling.service.detection.fasttext_detector import FastTextDetector
from xling.service.detection.langdetect_detector import LangdetectDetector
from xling.service.detection.py3langid_detector import Py3langidDetector
from xling.service.detection.script_rules import ScriptDetector

__all__ = ["DETECTOR_NAMES", "UNDETERMINED", "Detector", "LanguageScore", "create_detector"]

_FACTORIES: dict[str, Callable[[int], Detector]] = {
    "ensemble": lambda seed: EnsembleDetector(),
    "langdetect": lambda seed: LangdetectDetector(seed),
    "fasttext": lambda seed: FastTextDetector(),
    "py3langid": lambda seed: Py3langidDetector(),
    "script": lambda seed: ScriptDetector(),
}
DETECTOR_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def create_detector(name: str, *, seed: int = 0) -> Detector:
    """The detector called ``name``; ``seed`` fixes langdetect's sampling.
    ``ValueError`` names the valid choices for an unknown name."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ValueError(f"unknown detector {name!r}; choose one of: {', '.join(DETECTOR_NAMES)}")
    return factory(seed)
