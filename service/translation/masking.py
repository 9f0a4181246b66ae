"""Masking: protected spans become numbered tokens for the model, then come back.

``mask`` replaces everything that must survive a translation verbatim
(markup, entities, placeholders, URLs, emails, numbers, code spans,
do-not-translate terms) with tokens; the model translates the words around
them; ``unmask`` checks its reply and restores the spans. For every string
``x``, ``unmask(mask(x, html=h).text, mask(x, html=h)) == x``.

Tokens are ``⟦0⟧``, ``⟦1⟧``... (U+27E6, U+27E7). Neither UI strings nor HTML
use these brackets, so a token is never confused with a placeholder, a tag or
text, and it holds no word to translate. ``unmask`` also accepts what models
make of them: spaces inside, ``〚1〛``, ``[[1]]``, full-width brackets,
digits of another script. Source text that already looks like a token is
masked too, so every token in the masked text is one of ours.

Tokens may move, since languages order words differently, but markup keeps
its tree: each tag stays inside the same enclosing element and each closing
tag closes its own opening tag. Siblings may swap (``<b>red</b> <i>car</i>``
into ``<i>voiture</i> <b>rouge</b>``); ``<b>x</b>`` cannot become
``</b>x<b>`` and a link cannot leave its paragraph. Where the source markup
does not nest (unclosed or stray tags), tags keep their source order. The
rule covers HTML tags, comments and verbatim elements in HTML mode, and
react-i18next's numbered tags (``<0>...</0>``) in both modes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from html.entities import html5 as _HTML5_ENTITIES
from itertools import pairwise

# Token n is "⟦n⟧".
TOKEN_BRACKETS = ("⟦", "⟧")
# What models make of the brackets: CJK look-alikes, doubled ASCII or full-width brackets.
TOKEN_BRACKET_VARIANTS = (
    TOKEN_BRACKETS,
    ("\u301a", "\u301b"),
    ("[[", "]]"),
    ("\uff3b\uff3b", "\uff3d\uff3d"),
)

# Elements whose content is code, not prose: each is masked whole.
VERBATIM_ELEMENTS = frozenset({"script", "style", "code", "pre"})
VOID_ELEMENTS = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
    }
)
# The longest brace group masked as one placeholder: a stray "{" in prose must not
# swallow a paragraph up to some later "}".
MAX_BRACE_SPAN = 4000


class MaskError(ValueError):
    """A translation lost, repeated or invented tokens, or broke the markup's nesting."""


class SpanKind(StrEnum):
    TAG = "tag"  # an HTML tag, or a react-i18next numbered tag
    ELEMENT = "element"  # a whole script, style, code or pre element
    COMMENT = "comment"
    DECLARATION = "declaration"  # <!DOCTYPE ...>, <![CDATA[...]]>, <?...?>
    ENTITY = "entity"
    PLACEHOLDER = "placeholder"
    URL = "url"
    EMAIL = "email"
    NUMBER = "number"
    CODE = "code"  # a backtick code span
    TERM = "term"
    LOOKALIKE = "lookalike"  # source text that looks like a token


class Role(StrEnum):
    OPEN = "open"
    CLOSE = "close"
    VOID = "void"


@dataclass(frozen=True, slots=True)
class MarkupNode:
    """One markup span's place in the source tree."""

    token: int
    role: Role
    # OPEN and VOID: the enclosing open tag's token, -1 at top level. CLOSE: its open tag's token.
    link: int


@dataclass(frozen=True, slots=True)
class Masked:
    """Masked text and what its tokens stand for; token ``n`` stands for ``spans[n]``."""

    text: str
    spans: tuple[str, ...]
    kinds: tuple[SpanKind, ...]
    markup: tuple[MarkupNode, ...] = ()
    nested: bool = True  # the source markup nests; if not, tags must keep their order

    def text_without_tokens(self) -> str:
        """The words alone, e.g. for language detection."""
        return " ".join(strip_tokens(self.text).split())


def strip_tokens(text: str) -> str:
    """``text`` with each token, in any of the forms ``unmask`` accepts, replaced by a space."""
    return _TOKEN.sub(" ", text)


def token_text(number: int) -> str:
    """The token that stands for span ``number``: ``token_text(2) == "⟦2⟧"``."""
    return f"{TOKEN_BRACKETS[0]}{number}{TOKEN_BRACKETS[1]}"


def _either(options: Sequence[str]) -> str:
    return "|".join(re.escape(option) for option in dict.fromkeys(options))


_INNER_SPACE = "[ \t\u00a0\u3000]*"
_TOKEN = re.compile(
    f"(?:{_either([open_ for open_, _ in TOKEN_BRACKET_VARIANTS])}){_INNER_SPACE}(\\d{{1,6}})"
    f"{_INNER_SPACE}(?:{_either([close for _, close in TOKEN_BRACKET_VARIANTS])})"
)

# Scripts whose words run together (Thai, Lao, Myanmar, Khmer, CJK) or take attached
# particles (Korean): a number or term touching them is still a word of its own.
_UNSPACED = (
    "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f"
)
_WORD = f"[^\\W{_UNSPACED}]"
_LETTER = f"[^\\W\\d_{_UNSPACED}]"
_WORD_CHAR = re.compile(_WORD)

_URL = (
    r"(?<![A-Za-z0-9])(?i:(?:https?|ftps?|wss?)://|www\.)"
    f"[^\\s<>\"'`{{}}|\\\\^{_UNSPACED}\u3000-\u303f\uff00-\uffef]+"
)
_EMAIL = r"(?<![A-Za-z0-9._%+-])(?:mailto:)?[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
_MARKUP = (
    ("comment", r"(?s:<!--.*?(?:-->|\Z))"),
    ("declaration", r"(?s:<!\[CDATA\[.*?(?:\]\]>|\Z))|<[!?][^<>]*>"),
    # A "<" outside quotes ends a tag that never closed: each "<" then scans to the next
    # one at most, so a text full of stray "<" masks in linear time.
    ("tag", r"</?[A-Za-z][^\s/<>\"']*(?:[^<>\"']|\"[^\"]*\"|'[^']*')*>"),
    ("entity", r"&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});"),
)
_CODE = r"(?s:(?<!`)(?P<ticks>`+)[^`](?:.*?[^`])?(?P=ticks)(?!`))"
_NUMBERED_TAG = r"</?[0-9]{1,3}\s*/?>"
_PLACEHOLDER = "|".join(
    (
        r"\$\{[^{}\n]{0,200}\}",  # ${name}
        r"\$[A-Za-z_][A-Za-z0-9_]*(?:\([^()\n]{0,200}\))?",  # $name, i18next's $t(key)
        r"%\{[A-Za-z_][A-Za-z0-9_]*\}",  # Ruby's %{name}
        # printf: %s, %d, %(name)s, %1$s, %-5.2f, %lld, %@, %%; no space flag ("50% off")
        r"%(?:\([\w.-]{1,64}\))?(?:[1-9][0-9]{0,2}\$)?[-+#0']*(?:[0-9]+|\*)?"
        r"(?:\.(?:[0-9]+|\*))?(?:hh|ll|[hlLqjzt])?[diouxXeEfFgGaAcspn@%]",
        r"%[1-9][0-9]?(?![0-9])",  # Qt's %1
    )
)
# Integers, decimals, grouped numbers, percentages, versions (v2.4.1), dates and times;
# not digits inside a word (mp3, 4K, COVID-19), hence the atomic group and lookarounds.
_NUMBER = (
    f"(?<!{_LETTER})(?<![\\d_])(?<!{_LETTER}-)(?:[vV](?=\\d))?"
    "(?>\\d+(?:[.,:/\\-\u00a0\u202f\u2009]\\d+)*(?:%(?![%\\w({])|‰)?)"
    f"(?!{_LETTER})"
)
_GROUP_KINDS = {
    "token": SpanKind.LOOKALIKE,
    "url": SpanKind.URL,
    "email": SpanKind.EMAIL,
    "term": SpanKind.TERM,
    "comment": SpanKind.COMMENT,
    "declaration": SpanKind.DECLARATION,
    "tag": SpanKind.TAG,
    "entity": SpanKind.ENTITY,
    "code": SpanKind.CODE,
    "numbered_tag": SpanKind.TAG,
    "placeholder": SpanKind.PLACEHOLDER,
    "brace": SpanKind.PLACEHOLDER,
    "number": SpanKind.NUMBER,
}
_STRUCTURAL = frozenset({SpanKind.TAG, SpanKind.ELEMENT, SpanKind.COMMENT, SpanKind.DECLARATION})
_TAG_NAME = re.compile(r"</?([^\s/>]+)")
_VERBATIM_END = {name: re.compile(rf"</{name}\s*>", re.IGNORECASE) for name in VERBATIM_ELEMENTS}
_BRACES = re.compile(r"[{}]")
_URL_OPENERS = {")": "(", "]": "["}


def _term_pattern(term: str) -> str:
    """``term`` as a whole word, where it starts or ends with a word character."""
    before = f"(?<!{_WORD})" if _WORD_CHAR.match(term[0]) else ""
    after = f"(?!{_WORD})" if _WORD_CHAR.match(term[-1]) else ""
    return f"{before}{re.escape(term)}{after}"


@lru_cache(maxsize=64)
def _scanner(html: bool, terms: tuple[str, ...], numbers: bool) -> re.Pattern[str]:
    """One alternation; where two alternatives match at one place, the earlier one wins."""
    groups = [
        ("token", _TOKEN.pattern),
        ("url", _URL),
        ("email", _EMAIL),
        *([("term", "|".join(map(_term_pattern, terms)))] if terms else []),
        *(_MARKUP if html else ()),
        ("code", _CODE),
        ("numbered_tag", _NUMBERED_TAG),
        ("placeholder", _PLACEHOLDER),
        ("brace", r"\{"),
        *([("number", _NUMBER)] if numbers else []),
    ]
    return re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in groups))


def mask(text: str, *, html: bool, keep_terms: Sequence[str] = (), numbers: bool = True) -> Masked:
    """Replaces protected spans with tokens numbered from 0 in order of appearance.

    ``keep_terms`` match whole words, case-sensitively; the longest wins. With
    ``numbers`` off, numbers stay in the text.

    >>> m = mask('Hi {name}, see <a href="/x">3 files</a>', html=True)
    >>> m.text, m.spans
    ('Hi ⟦0⟧, see ⟦1⟧⟦2⟧ files⟦3⟧', ('{name}', '<a href="/x">', '3', '</a>'))
    """
    terms = tuple(sorted({t for t in keep_terms if t}, key=lambda t: (-len(t), t)))
    scanner = _scanner(html, terms, numbers)
    pieces: list[str] = []
    spans: list[str] = []
    kinds: list[SpanKind] = []
    brace_groups = _brace_groups(text) if "{" in text else {}
    copied = search_from = 0
    while match := scanner.search(text, search_from):
        start = match.start()
        kind, end = _span_end(text, match, brace_groups)
        if end is None:
            search_from = start + 1
            continue
        pieces += (text[copied:start], token_text(len(spans)))
        spans.append(text[start:end])
        kinds.append(kind)
        copied = search_from = end
    pieces.append(text[copied:])
    markup, nested = _markup_tree(spans, kinds)
    return Masked("".join(pieces), tuple(spans), tuple(kinds), markup, nested)


def _span_end(
    text: str, match: re.Match[str], brace_groups: dict[int, int]
) -> tuple[SpanKind, int | None]:
    """The span's kind and end, or None for an end when the match is not a span after all."""
    group = match.lastgroup or ""
    kind, start, end = _GROUP_KINDS[group], match.start(), match.end()
    if group == "brace":
        return kind, brace_groups.get(start)
    if group == "entity":
        known = text[start + 1] == "#" or text[start + 1 : end] in _HTML5_ENTITIES
        return kind, end if known else None
    if group == "url":
        return kind, start + len(_trim_url(match[0]))
    if group == "tag":
        role, name = _tag_role(match[0])
        if role is Role.OPEN and name in VERBATIM_ELEMENTS:
            close = _VERBATIM_END[name].search(text, end)
            return SpanKind.ELEMENT, close.end() if close else len(text)
    return kind, end


def _brace_groups(text: str) -> dict[int, int]:
    """The end of each balanced brace group by its start (ICU messages nest braces)."""
    groups: dict[int, int] = {}
    opened: list[int] = []
    for brace in _BRACES.finditer(text):
        if brace[0] == "{":
            opened.append(brace.start())
        elif opened:
            start = opened.pop()
            if brace.end() - start <= MAX_BRACE_SPAN:
                groups[start] = brace.end()
    return groups


def _trim_url(url: str) -> str:
    """Drops sentence punctuation after a URL; keeps closing brackets it opened itself."""
    while url[-1] in ".,;:!?*)]":
        opener = _URL_OPENERS.get(url[-1])
        if opener and url.count(opener) >= url.count(url[-1]):
            break
        url = url[:-1]
    return url


def _tag_role(tag: str) -> tuple[Role, str]:
    name_match = _TAG_NAME.match(tag)
    name = name_match[1].lower() if name_match else ""
    if tag.startswith("</"):
        return Role.CLOSE, name
    if name in VOID_ELEMENTS or tag[:-1].rstrip().endswith("/"):
        return Role.VOID, name
    return Role.OPEN, name


def _markup_tree(
    spans: Sequence[str], kinds: Sequence[SpanKind]
) -> tuple[tuple[MarkupNode, ...], bool]:
    """The markup spans' tree, and whether the source markup nests at all."""
    nodes: list[MarkupNode] = []
    open_tags: list[tuple[str, int]] = []
    nested = True
    for token, (span, kind) in enumerate(zip(spans, kinds, strict=True)):
        if kind not in _STRUCTURAL:
            continue
        role, name = _tag_role(span) if kind is SpanKind.TAG else (Role.VOID, "")
        link = open_tags[-1][1] if open_tags else -1
        if role is Role.OPEN:
            open_tags.append((name, token))
        elif role is Role.CLOSE:
            if open_tags and open_tags[-1][0] == name:
                link = open_tags.pop()[1]
            else:
                nested = False
        nodes.append(MarkupNode(token, role, link))
    return tuple(nodes), nested and not open_tags


def unmask(translated: str, masked: Masked) -> str:
    """Restores the spans in a translation of ``masked.text``.

    Raises MaskError when a token is missing, repeated or unknown, or when
    the markup no longer nests as in the source (see the module's docstring).

    >>> m = mask("Hello {name}, you have <b>3</b> messages", html=True)
    >>> unmask("Bonjour ⟦0⟧, vous avez ⟦1⟧⟦2⟧⟦3⟧ messages", m)
    'Bonjour {name}, vous avez <b>3</b> messages'
    """
    found = [int(token[1]) for token in _TOKEN.finditer(translated)]
    _check_tokens(found, masked)
    _check_markup(found, masked)
    translated = _tidy_tag_spacing(translated, masked)
    return _TOKEN.sub(lambda token: masked.spans[int(token[1])], translated)


def _tight_tags(masked: Masked) -> dict[int, Role]:
    """Open tags with no whitespace after them in the source, close tags with none before."""
    roles = {node.token: node.role for node in masked.markup if node.role is not Role.VOID}
    tight = {}
    text = masked.text
    for token in _TOKEN.finditer(text):
        number = int(token[1])
        role = roles.get(number)
        inner = {
            Role.OPEN: text[token.end() : token.end() + 1],
            Role.CLOSE: text[max(token.start() - 1, 0) : token.start()],
        }.get(role)
        if role is not None and not inner.isspace():
            tight[number] = role
    return tight


def _tidy_tag_spacing(translated: str, masked: Masked) -> str:
    """Drops whitespace the model put just inside an element where the source had none.

    Models write ``⟦1⟧hier ⟦2⟧ um`` for ``<b>here</b> to``, which would give
    ``hier </b> um``. Such whitespace leaves the element: it goes just outside
    the tag when it is all that parts two words there (``Klicken⟦0⟧ hier``
    becomes ``Klicken <b>hier``), and goes away otherwise.
    """
    tight = _tight_tags(masked)
    if not tight:
        return translated
    tokens = list(_TOKEN.finditer(translated))
    numbers = [int(token[1]) for token in tokens]
    cuts = [0, *(edge for token in tokens for edge in token.span()), len(translated)]
    texts = [translated[start:end] for start, end in zip(cuts[::2], cuts[1::2], strict=True)]
    last = len(texts) - 1
    moved = True
    while moved:  # whitespace only ever moves outward, away from the tag it left
        moved = False
        for index, number in enumerate(numbers):
            role = tight.get(number)
            if role is Role.OPEN:
                inner, outer = index + 1, index
                space = texts[inner][: len(texts[inner]) - len(texts[inner].lstrip())]
                if not space:
                    continue
                texts[inner] = texts[inner][len(space) :]
                inside = _neighbour(texts[inner][:1], inner == last)
                outside = _neighbour(texts[outer][-1:], outer == 0)
                if _parts_words(inside, outside):
                    texts[outer] += space
                moved = True
            elif role is Role.CLOSE:
                inner, outer = index, index + 1
                space = texts[inner][len(texts[inner].rstrip()) :]
                if not space:
                    continue
                texts[inner] = texts[inner][: len(texts[inner]) - len(space)]
                inside = _neighbour(texts[inner][-1:], inner == 0)
                outside = _neighbour(texts[outer][:1], outer == last)
                if _parts_words(inside, outside):
                    texts[outer] = space + texts[outer]
                moved = True
    pieces = [texts[0]]
    for token, text in zip(tokens, texts[1:], strict=True):
        pieces += (token[0], text)
    return "".join(pieces)


def _neighbour(character: str, at_edge: bool) -> str | None:
    """The character next to a tag; "" for a token there, None for the text's edge."""
    return None if not character and at_edge else character


def _parts_words(inside: str | None, outside: str | None) -> bool:
    """Whether whitespace between these neighbours keeps two words apart (tokens count
    as words; scripts written without spaces never need it)."""
    return all(c is not None and (c == "" or _WORD_CHAR.match(c)) for c in (inside, outside))


def _describe(token: int, masked: Masked) -> str:
    if token < 0:
        return "the top level"
    span = masked.spans[token]
    preview = span if len(span) <= 40 else f"{span[:37]}..."
    return f"{token_text(token)} ({preview!r})"


def _check_tokens(found: list[int], masked: Masked) -> None:
    counts = Counter(found)
    total = len(masked.spans)
    missing = [n for n in range(total) if n not in counts]
    repeated = [n for n in sorted(counts) if n < total and counts[n] > 1]
    unknown = [n for n in sorted(counts) if n >= total]
    problems = []
    if missing:
        problems.append("missing " + ", ".join(_describe(n, masked) for n in missing))
    if repeated:
        problems.append(
            "duplicated " + ", ".join(f"{_describe(n, masked)} {counts[n]} times" for n in repeated)
        )
    if unknown:
        known = {0: "no tokens", 1: token_text(0)}.get(
            total, f"{token_text(0)} to {token_text(total - 1)}"
        )
        problems.append(f"unknown {', '.join(map(token_text, unknown))} (the source has {known})")
    if problems:
        raise MaskError("tokens not kept exactly once: " + "; ".join(problems))


def _check_markup(found: list[int], masked: Masked) -> None:
    nodes = {node.token: node for node in masked.markup}
    order = [token for token in found if token in nodes]
    if not masked.nested:
        for before, after in pairwise(order):
            if after < before:
                raise MaskError(
                    f"markup out of order: {_describe(before, masked)} now comes before "
                    f"{_describe(after, masked)}; the source markup does not nest, "
                    "so tags must keep their order"
                )
        return
    open_tags: list[int] = []
    for token in order:
        node, inside = nodes[token], open_tags[-1] if open_tags else -1
        if inside != node.link and node.role is Role.CLOSE:
            raise MaskError(
                f"markup does not nest as in the source: {_describe(token, masked)} must close "
                f"{_describe(node.link, masked)}, but it comes where "
                f"{'nothing' if inside < 0 else _describe(inside, masked)} is open"
            )
        if inside != node.link:
            raise MaskError(
                f"markup does not nest as in the source: {_describe(token, masked)} must be "
                f"inside {_describe(node.link, masked)}, not {_describe(inside, masked)}"
            )
        if node.role is Role.OPEN:
            open_tags.append(token)
        elif node.role is Role.CLOSE:
            open_tags.pop()


def verify_terms(
    translated: str, required: Sequence[str], *, case_sensitive: bool = True
) -> list[str]:
    """The required terms missing from ``translated``, in order, each once.

    A term matches as a whole word where it starts or ends with a word character.

    >>> verify_terms("Ouvrez le Tableau de bord", ["Tableau de bord", "Paramètres"])
    ['Paramètres']
    """
    flags = 0 if case_sensitive else re.IGNORECASE
    return [
        term
        for term in dict.fromkeys(required)
        if term and not re.search(_term_pattern(term), translated, flags)
    ]
