"""BCP-47 language codes: normalization, the supported set, display names.

Callers write codes every way (``zh-CN``, ``zh_Hans``, ``ZH``, ``iw``); the
service answers in one canonical form (``zh-CN``, ``zh-Hans``, ``zh``, ``he``)
and compares languages by their base subtag.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import langcodes

# Languages the chat models translate into reliably. Sources also include any
# language the detector knows, since a model reads more than it writes well.
TARGET_LANGUAGES: tuple[str, ...] = (
    "af", "ar", "az", "be", "bg", "bn", "bs", "ca", "cs", "cy", "da", "de", "el", "en", "es",
    "et", "eu", "fa", "fi", "fr", "ga", "gl", "gu", "he", "hi", "hr", "hu", "hy", "id", "is",
    "it", "ja", "ka", "kk", "km", "kn", "ko", "lt", "lv", "mk", "ml", "mn", "mr", "ms", "my",
    "nb", "ne", "nl", "pa", "pl", "pt", "pt-BR", "pt-PT", "ro", "ru", "si", "sk", "sl", "sq",
    "sr", "sv", "sw", "ta", "te", "th", "tl", "tr", "uk", "ur", "uz", "vi", "zh", "zh-Hans",
    "zh-Hant",
)  # fmt: skip
_TARGET_BASES = frozenset(code.split("-")[0] for code in TARGET_LANGUAGES)


def normalize(code: str) -> str:
    """The canonical BCP-47 form of ``code``; ``ValueError`` if it names no language."""
    text = code.strip().replace("_", "-")
    try:
        language = langcodes.Language.get(text)
    except (ValueError, langcodes.tag_parser.LanguageTagError) as exc:
        raise ValueError(f"not a BCP-47 language code: {code!r}") from exc
    if not language.is_valid() or language.language in (None, "und"):
        raise ValueError(f"unknown language code: {code!r}")
    return str(language)


def base(code: str) -> str:
    """The language subtag of a canonical code: ``pt-BR`` -> ``pt``."""
    return code.split("-")[0]


def is_target(code: str) -> bool:
    """Whether translation into this canonical code is supported."""
    return base(code) in _TARGET_BASES


@dataclass(frozen=True, slots=True)
class LanguageInfo:
    language_code: str
    display_name: str
    supports_source: bool
    supports_target: bool


def list_languages(display_code: str, source_codes: Iterable[str]) -> list[LanguageInfo]:
    """Every supported language, named in ``display_code`` (a canonical code)."""
    return [
        LanguageInfo(
            language_code=code,
            display_name=langcodes.Language.get(code).display_name(display_code),
            supports_source=True,
            supports_target=code in TARGET_LANGUAGES,
        )
        for code in sorted(set(source_codes) | set(TARGET_LANGUAGES))
    ]
