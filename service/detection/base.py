"""The detector protocol: text in, ranked candidate languages out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

UNDETERMINED = "und"


@dataclass(frozen=True, slots=True)
class LanguageScore:
    """One candidate language of a text.

    ``language_code`` is a lowercase base BCP-47 code ("en", "pt", "zh"), or
    ``"und"`` when the text holds no letters to judge by.
    """

    language_code: str
    confidence: float


class Detector(Protocol):
    """Identifies the language of a text. Implementations are thread-safe and
    deterministic: the same text always gets the same answer."""

    name: str

    def detect(self, text: str, top_k: int = 3) -> list[LanguageScore]:
        """Up to ``top_k`` candidates, best first, confidences in [0, 1]
        summing to at most 1. Never empty: ``und`` with 0.0 when unknowable."""
        ...

    def supported_languages(self) -> frozenset[str]:
        """Base codes this detector can return."""
        ...
