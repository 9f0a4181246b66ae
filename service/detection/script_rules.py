"""Unicode script rules, and the text clean-up every detector shares.

The script of a text's letters settles some languages outright (kana: ja,
hangul: ko, Han alone: zh, Thai, Greek, ...) and narrows the rest to the
languages written in that script, which statistical models then rank. Within a
script, letters outside a language's alphabet (Ukrainian ї in "Russian", ã in
"Spanish") count against that language.
"""

from __future__ import annotations

import bisect
import functools
import heapq
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from xling.service.detection.base import UNDETERMINED, LanguageScore

# Only the start of a huge text is read: its language shows early, and the
# models' cost grows with length.
MAX_MODEL_CHARS = 2000
MAX_SCAN_CHARS = 4 * MAX_MODEL_CHARS

_SPACES = re.compile(r"\s+")
# Joiners shape Persian and Indic words; variation selectors and keycaps are emoji parts.
_JOINERS = frozenset("\u200c\u200d")
_EMOJI_MARKS = re.compile("[\ufe00-\ufe0f\u20e3\U000e0100-\U000e01ef]")


def clean_text(text: str) -> str:
    """The words of ``text`` for a language model: no links, e-mail addresses,
    @mentions, digits, symbols, emoji or control characters; lone surrogates
    dropped; all-caps text in sentence case; at most ``MAX_MODEL_CHARS``."""
    text = text[:MAX_SCAN_CHARS]
    # Surrogate pairs written as two code units are joined; lone ones become U+FFFD (a symbol).
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    # Addresses and links name things rather than say them in a language. Whole
    # tokens go, tested with plain substring checks: regexes for e-mail
    # addresses backtrack quadratically on long runs without spaces.
    text = " ".join(word for word in text.split() if not _is_address(word))
    text = _EMOJI_MARKS.sub(" ", text)
    text = "".join(ch if _is_word_char(ch) else " " for ch in text)
    text = _SPACES.sub(" ", text).strip()
    if text.isupper():
        # Both models learnt from sentence-case text; langdetect skips all-caps words.
        text = text.capitalize()
    return text[:MAX_MODEL_CHARS].strip()


def _is_address(word: str) -> bool:
    return "@" in word or "://" in word or word[:4].lower() == "www."


def _is_word_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LMP" or ch in _JOINERS


def has_letters(text: str) -> bool:
    return any(ch.isalpha() for ch in text)


def ranked(scores: Mapping[str, float], top_k: int) -> list[LanguageScore]:
    """The best ``top_k`` (at least 1) of ``scores``, clipped to [0, 1] and
    scaled down if rounding made them sum past 1; ``und`` when empty."""
    top_k = max(top_k, 1)
    if len(scores) > top_k:
        # Only the values that can make the top k are sorted; ties at the
        # cut all stay in, so the order by code among them is kept.
        cut = heapq.nlargest(top_k, scores.values())[-1]
        scores = {code: value for code, value in scores.items() if value >= cut}
    best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:top_k]
    if not best:
        return [LanguageScore(UNDETERMINED, 0.0)]
    clipped = [(code, min(max(value, 0.0), 1.0)) for code, value in best]
    total = sum(value for _, value in clipped)
    scale = 1.0 / total if total > 1.0 else 1.0
    return [LanguageScore(code, value * scale) for code, value in clipped]


def rank_text(
    distribution: Callable[[str], Mapping[str, float]], text: str, top_k: int
) -> list[LanguageScore]:
    """``detect`` for a statistical model: its ``distribution`` over ``text``
    cleaned, ranked; nothing for text without letters."""
    cleaned = clean_text(text)
    if not has_letters(cleaned):
        return ranked({}, top_k)
    return ranked(distribution(cleaned), top_k)


# Code point ranges of the scripts that supported languages use (ISO 15924
# codes). "Kana" covers hiragana, katakana and the Japanese marks 々 and 〆.
_RANGES: tuple[tuple[int, int, str], ...] = tuple(
    sorted(
        (
            (0x0041, 0x005A, "Latn"), (0x0061, 0x007A, "Latn"), (0x00AA, 0x00AA, "Latn"),
            (0x00BA, 0x00BA, "Latn"), (0x00C0, 0x02AF, "Latn"), (0x1E00, 0x1EFF, "Latn"),
            (0x2C60, 0x2C7F, "Latn"), (0xA720, 0xA7FF, "Latn"), (0xAB30, 0xAB6F, "Latn"),
            (0xFB00, 0xFB06, "Latn"), (0xFF21, 0xFF3A, "Latn"), (0xFF41, 0xFF5A, "Latn"),
            (0x0370, 0x03FF, "Grek"), (0x1F00, 0x1FFF, "Grek"),
            (0x0400, 0x052F, "Cyrl"), (0x1C80, 0x1C8F, "Cyrl"), (0x2DE0, 0x2DFF, "Cyrl"),
            (0xA640, 0xA69F, "Cyrl"),
            (0x0530, 0x058F, "Armn"), (0xFB13, 0xFB17, "Armn"),
            (0x0590, 0x05FF, "Hebr"), (0xFB1D, 0xFB4F, "Hebr"),
            (0x0600, 0x06FF, "Arab"), (0x0750, 0x077F, "Arab"), (0x08A0, 0x08FF, "Arab"),
            (0xFB50, 0xFDFF, "Arab"), (0xFE70, 0xFEFF, "Arab"),
            (0x0700, 0x074F, "Syrc"), (0x0780, 0x07BF, "Thaa"),
            (0x0900, 0x097F, "Deva"), (0xA8E0, 0xA8FF, "Deva"), (0x0980, 0x09FF, "Beng"),
            (0x0A00, 0x0A7F, "Guru"), (0x0A80, 0x0AFF, "Gujr"), (0x0B00, 0x0B7F, "Orya"),
            (0x0B80, 0x0BFF, "Taml"), (0x0C00, 0x0C7F, "Telu"), (0x0C80, 0x0CFF, "Knda"),
            (0x0D00, 0x0D7F, "Mlym"), (0x0D80, 0x0DFF, "Sinh"), (0x0E00, 0x0E7F, "Thai"),
            (0x0E80, 0x0EFF, "Laoo"), (0x0F00, 0x0FFF, "Tibt"), (0x1000, 0x109F, "Mymr"),
            (0x10A0, 0x10FF, "Geor"), (0x1C90, 0x1CBF, "Geor"), (0x2D00, 0x2D2F, "Geor"),
            (0x1100, 0x11FF, "Hang"), (0x3130, 0x318F, "Hang"), (0xA960, 0xA97F, "Hang"),
            (0xAC00, 0xD7FF, "Hang"), (0xFFA0, 0xFFDC, "Hang"),
            (0x1200, 0x139F, "Ethi"), (0x2D80, 0x2DDF, "Ethi"),
            (0x1780, 0x17FF, "Khmr"), (0x19E0, 0x19FF, "Khmr"), (0x1800, 0x18AF, "Mong"),
            (0x3005, 0x3006, "Kana"), (0x3040, 0x30FF, "Kana"), (0x31F0, 0x31FF, "Kana"),
            (0xFF66, 0xFF9F, "Kana"),
            (0x3100, 0x312F, "Hani"), (0x31A0, 0x31BF, "Hani"),  # bopomofo: Chinese
            (0x3400, 0x4DBF, "Hani"), (0x4E00, 0x9FFF, "Hani"), (0xF900, 0xFAFF, "Hani"),
            (0x20000, 0x3134F, "Hani"),
        )
    )
)  # fmt: skip
_RANGE_STARTS = tuple(start for start, _, _ in _RANGES)


@functools.lru_cache(maxsize=8192)
def char_script(ch: str) -> str | None:
    """The ISO 15924 code of a letter's script, or None if not one listed."""
    point = ord(ch)
    index = bisect.bisect_right(_RANGE_STARTS, point) - 1
    if index >= 0 and point <= _RANGES[index][1]:
        return _RANGES[index][2]
    return None


# Languages by script, most used first (the order ranks ScriptDetector's guesses).
SCRIPT_LANGUAGES: dict[str, tuple[str, ...]] = {
    "Latn": (
        "en", "es", "pt", "fr", "de", "it", "nl", "pl", "tr", "vi", "id", "sv", "ro", "cs",
        "hu", "da", "nb", "fi", "sk", "hr", "ms", "tl", "sr", "sl", "lt", "lv", "et", "ca",
        "af", "sw", "sq", "az", "uz", "bs", "eu", "gl", "is", "ga", "cy", "so", "eo", "la",
        "mt", "lb", "nn", "ku", "tk", "jv", "su", "ceb", "war", "mg", "ht", "yo", "qu", "gn",
        "an", "ast", "bar", "bcl", "br", "cbk", "co", "diq", "dsb", "eml", "frr", "fy", "gd",
        "gsw", "gv", "hif", "hsb", "ia", "ie", "ilo", "io", "jbo", "kw", "li", "lmo", "min",
        "mwl", "nah", "nap", "nds", "oc", "pam", "pfl", "pms", "rm", "sc", "scn", "sco", "vec",
        "vep", "vls", "vo", "wa",
    ),
    "Cyrl": (
        "ru", "uk", "bg", "sr", "be", "kk", "mk", "ky", "tg", "mn", "uz", "tt", "ba", "cv",
        "ce", "os", "av", "kv", "sah", "tyv", "xal", "krc", "lez", "mhr", "mrj", "myv", "rue",
        "bxr",
    ),
    "Arab": ("ar", "fa", "ur", "ps", "sd", "ug", "ckb", "pnb", "az", "mzn", "lrc"),
    "Deva": ("hi", "mr", "ne", "sa", "mai", "bho", "new", "gom", "dty"),
    "Beng": ("bn", "as", "bpy"),
    "Hebr": ("he", "yi"),
    "Geor": ("ka", "xmf"),
    "Grek": ("el",), "Armn": ("hy",), "Guru": ("pa",), "Gujr": ("gu",), "Orya": ("or",),
    "Taml": ("ta",), "Telu": ("te",), "Knda": ("kn",), "Mlym": ("ml",), "Sinh": ("si",),
    "Thai": ("th",), "Laoo": ("lo",), "Tibt": ("bo",), "Mymr": ("my",), "Khmr": ("km",),
    "Ethi": ("am",), "Thaa": ("dv",), "Mong": ("mn",),
    "Jpan": ("ja",), "Hang": ("ko",), "Hani": ("zh",),
}  # fmt: skip

# How sure a rule that leaves one language is. Han alone is usually Chinese,
# but short Japanese can be all kanji ("送料無料"), which no rule here can tell.
_RULE_CONFIDENCE = {"Hani": 0.9}
_DEFAULT_RULE_CONFIDENCE = 0.99
_JAPANESE_BY_FORM_CONFIDENCE = 0.95

# Kanji forms that Chinese writes otherwise in both simplified and traditional
# script (駅 for 站/驛, 気 for 气/氣) and kokuji (込, 働): Japanese without kana.
_JAPANESE_ONLY_HAN = frozenset(
    "駅気売読続込働畑峠辻枠匂図広円覧関様検録変転済払価帰楽発対単経験歳営鉄県戦実両恵拡択権応圧総徴"
)

# A text counts as written in a non-Latin script once that script holds this
# share of its letters: Latin brand names inside Cyrillic or CJK text are common.
_NON_LATIN_SHARE = 0.3
# One CJK character carries about as much as a short word of letters.
_CJK_WEIGHT = 3
_CJK = frozenset({"Hani", "Kana", "Hang"})

# Alphabets of the languages whose letters tell them apart from their script
# neighbours; languages not listed here are never counted against.
_LATIN_EXTRAS: dict[str, str] = {
    "en": "", "id": "", "ms": "", "tl": "", "sw": "", "so": "", "uz": "",
    "fr": "àâæçéèêëîïôœùûüÿ", "de": "äöüß", "es": "áéíñóúü", "it": "àèéìíîòóùú",
    "pt": "áâãàçéêíóôõúü", "ca": "àçéèíïòóúü", "gl": "áéíñóúü", "ro": "ăâîșşțţ",
    "nl": "éëïöüè", "sv": "åäöé", "da": "æøåé", "nb": "æøåéóòô", "nn": "æøåéóòô",
    "fi": "äöåšž", "et": "äöõüšž", "hu": "áéíóöőúüű", "pl": "ąćęłńóśźż",
    "cs": "áčďéěíňóřšťúůýž", "sk": "áäčďéíĺľňóôŕšťúýž", "sl": "čšž", "hr": "čćđšž",
    "bs": "čćđšž", "sr": "čćđšž", "lt": "ąčęėįšųūž", "lv": "āčēģīķļņšūž",
    "tr": "çğıöşüâîû", "az": "çəğıöşü", "tk": "äçňöşüýž", "ku": "çêîşû",
    "is": "áðéíóúýþæö", "ga": "áéíóú", "cy": "âêîôûŵŷäëïöüÿáéíóúàèìòù", "sq": "çë",
    "af": "êëîïôûéèáóúý", "eu": "ñ", "eo": "ĉĝĥĵŝŭ", "mt": "ċġħżàèìòù", "lb": "äëéè",
    "vi": "àáảãạăằắẳẵặâầấẩẫậèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵđ",
}  # fmt: skip
_RUSSIAN = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"
_PERSIAN = "ءآأؤئابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهی"
_HEBREW = "אבגדהוזחטיךכלםמןנסעףפץצקרשת"
_ALPHABETS: dict[str, dict[str, frozenset[str]]] = {
    "Latn": {
        lang: frozenset(string.ascii_lowercase + extra) for lang, extra in _LATIN_EXTRAS.items()
    },
    "Cyrl": {
        lang: frozenset(letters)
        for lang, letters in {
            "ru": _RUSSIAN,
            "uk": "абвгґдеєжзиіїйклмнопрстуфхцчшщьюя",
            "be": "абвгґдеёжзійклмнопрстуўфхцчшыьэюя",
            "bg": "абвгдежзийклмнопрстуфхцчшщъьюяѝ",
            "sr": "абвгдђежзијклљмнњопрстћуфхцчџш",
            "mk": "абвгдѓежзѕијклљмнњопрстќуфхцчџшѐѝ",
            "kk": _RUSSIAN + "әғқңөұүһі",
            "ky": _RUSSIAN + "ңөү",
            "tg": "абвгғдеёжзиӣйкқлмнопрстуӯфхҳчҷшъэюя",
            "mn": _RUSSIAN + "өү",
            "tt": _RUSSIAN + "әөүҗңһ",
            "ba": _RUSSIAN + "ғҙҡңөҫүһә",
        }.items()
    },
    "Arab": {
        "ar": frozenset("ءآأؤإئابةتثجحخدذرزسشصضطظعغفقكلمنهوىي"),
        "fa": frozenset(_PERSIAN),
        "ur": frozenset(_PERSIAN + "ٹڈڑںہھےۓۂۃ"),
    },
    "Hebr": {"he": frozenset(_HEBREW), "yi": frozenset(_HEBREW + "װױײ")},
}


@dataclass(frozen=True, slots=True)
class ScriptEvidence:
    """What a text's letters say about its language.

    ``candidates``: the languages its dominant script allows, most used first
    (empty: no letters, or a script no supported language uses).
    ``foreign_letters``: per candidate with a known alphabet that lacks some
    letters of the text, how many distinct ones (absent: none).
    ``rule_confidence``: how sure the rule is when it leaves one candidate.
    """

    script: str | None
    candidates: tuple[str, ...]
    foreign_letters: Mapping[str, int] = field(default_factory=dict)
    rule_confidence: float = _DEFAULT_RULE_CONFIDENCE


def dominant_script(text: str) -> str | None:
    """The script of most of the letters of ``text``; "Jpan" once kana appear
    (the Han characters with them are kanji). None without letters."""
    counts: Counter[str] = Counter()
    for ch in text:
        if ch.isalpha():
            script = char_script(ch) or "Zzzz"  # ISO 15924: uncoded
            counts[script] += _CJK_WEIGHT if script in _CJK else 1
    if not counts:
        return None
    if counts["Kana"]:
        counts["Jpan"] = counts.pop("Kana") + counts.pop("Hani", 0)
    total = counts.total()
    non_latin = max((s for s in counts if s != "Latn"), key=lambda s: (counts[s], s), default=None)
    if non_latin is not None and counts[non_latin] >= _NON_LATIN_SHARE * total:
        return non_latin
    return "Latn" if counts["Latn"] else non_latin


def analyze(text: str) -> ScriptEvidence:
    """Script evidence for a cleaned text (see ``clean_text``)."""
    script = dominant_script(text)
    if script is None:
        return ScriptEvidence(None, ())
    if script == "Hani" and any(ch in _JAPANESE_ONLY_HAN for ch in text):
        return ScriptEvidence("Jpan", ("ja",), rule_confidence=_JAPANESE_BY_FORM_CONFIDENCE)
    candidates = SCRIPT_LANGUAGES.get(script, ())
    alphabets = _ALPHABETS.get(script, {})
    letters = {
        ch
        for ch in text.lower()
        if ch.isalpha() and char_script(ch) == script and unicodedata.category(ch) != "Lm"
    }
    foreign = {
        lang: missing
        for lang, alphabet in alphabets.items()
        if (missing := len(letters - alphabet))
    }
    confidence = _RULE_CONFIDENCE.get(script, _DEFAULT_RULE_CONFIDENCE)
    return ScriptEvidence(script, candidates, foreign, confidence)


def all_languages() -> frozenset[str]:
    """Every language some script here is written in."""
    return frozenset(lang for langs in SCRIPT_LANGUAGES.values() for lang in langs)


class ScriptDetector:
    """Script rules alone. Where a script leaves several languages, the ones
    whose alphabets fit the letters best are ranked by a Zipf prior over how
    widely they are used: a guess, not evidence."""

    name = "script"

    def detect(self, text: str, top_k: int = 3) -> list[LanguageScore]:
        evidence = analyze(clean_text(text))
        if not evidence.candidates:
            return ranked({}, top_k)
        fewest = min(evidence.foreign_letters.get(lang, 0) for lang in evidence.candidates)
        fitting = [
            lang for lang in evidence.candidates if evidence.foreign_letters.get(lang, 0) == fewest
        ]
        if len(fitting) == 1:
            return ranked({fitting[0]: evidence.rule_confidence}, top_k)
        weights = [1.0 / rank for rank in range(1, len(fitting) + 1)]
        total = sum(weights)
        return ranked({lang: w / total for lang, w in zip(fitting, weights, strict=True)}, top_k)

    def supported_languages(self) -> frozenset[str]:
        return all_languages()
