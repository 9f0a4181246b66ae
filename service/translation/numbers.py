"""Numbers survive translation: every digit run of the source is in the reply.

Masking protects most numbers as tokens, restored verbatim; the digits left
in the text the model sees are parts of words (``mp3``, ``COVID-19``,
``21st``, ``iPhone15``), which a model may rewrite (``21st`` into
``twenty-first``) or drop. This check runs on the masked source and the
model's masked reply, so the tokens' own digits do not count. Digits of any
script compare by value (full-width or Arabic-Indic 19 is 19), since some
locales write them so; separators around them are free to follow the target locale.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from xling.service.translation.masking import strip_tokens

_DIGITS = re.compile(r"\d+")


def digit_runs(text: str) -> Counter[str]:
    """Each maximal run of digits, as ASCII digits, with its count."""
    return Counter(
        "".join(str(unicodedata.digit(ch)) for ch in run) for run in _DIGITS.findall(text)
    )


def missing_numbers(source: str, translated: str) -> list[str]:
    """Digit runs of ``source`` that ``translated`` lacks, tokens aside, in source order.

    >>> missing_numbers("Play the mp3 on the 21st", "Spielen Sie die mp3 am einundzwanzigsten")
    ['21']
    """
    need = digit_runs(strip_tokens(source))
    have = digit_runs(strip_tokens(translated))
    return list((need - have).elements())
