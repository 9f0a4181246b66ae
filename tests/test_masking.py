"""Masking of markup and placeholders, and the checks on the way back.

Expected masked texts are written with ``⟦n⟧`` and converted through
``token_text``, so they hold whatever the token format is.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from xling.service.translation.masking import (
    Masked,
    MaskError,
    Role,
    SpanKind,
    mask,
    token_text,
    unmask,
    verify_terms,
)


def tokens(text: str) -> str:
    """``text`` with each ``⟦n⟧`` written in the module's token format."""
    return re.sub(r"⟦(\d+)⟧", lambda m: token_text(int(m[1])), text)


# (id, html, keep_terms, source, expected masked text, expected spans)
CASES = [
    # placeholders of every style
    ("brace-name", False, (), "Hello {name}!", "Hello ⟦0⟧!", ("{name}",)),
    ("brace-index", False, (), "You have {0} new messages", "You have ⟦0⟧ new messages", ("{0}",)),
    ("double-brace", False, (), "Hi {{user}}, welcome", "Hi ⟦0⟧, welcome", ("{{user}}",)),
    (
        "icu-plural",
        False,
        (),
        "{count, plural, one {# item} other {# items}} selected",
        "⟦0⟧ selected",
        ("{count, plural, one {# item} other {# items}}",),
    ),
    ("python-format", False, (), "Total: {:.2f} ({!r})", "Total: ⟦0⟧ (⟦1⟧)", ("{:.2f}", "{!r}")),
    ("printf", False, (), "Dear %s, order %d shipped", "Dear ⟦0⟧, order ⟦1⟧ shipped", ("%s", "%d")),
    (
        "printf-named",
        False,
        (),
        "Hello %(name)s, %(count)d tasks left",
        "Hello ⟦0⟧, ⟦1⟧ tasks left",
        ("%(name)s", "%(count)d"),
    ),
    ("printf-positional", False, (), "%1$s invited %2$s", "⟦0⟧ invited ⟦1⟧", ("%1$s", "%2$s")),
    ("ios", False, (), "Saved %@ in %lld files", "Saved ⟦0⟧ in ⟦1⟧ files", ("%@", "%lld")),
    ("printf-width", False, (), "Took %-5.2f s", "Took ⟦0⟧ s", ("%-5.2f",)),
    ("qt", False, (), "%1 of %2 done", "⟦0⟧ of ⟦1⟧ done", ("%1", "%2")),
    ("ruby", False, (), "Progress: %{percent}", "Progress: ⟦0⟧", ("%{percent}",)),
    (
        "dollar",
        False,
        (),
        "Welcome back, $name! Total: ${total}",
        "Welcome back, ⟦0⟧! Total: ⟦1⟧",
        ("$name", "${total}"),
    ),
    ("i18next-nesting", False, (), "$t(common.save) now", "⟦0⟧ now", ("$t(common.save)",)),
    (
        "numbered-tags",
        False,
        (),
        "Click <0>here</0> to <1>sign in</1>.<2/>",
        "Click ⟦0⟧here⟦1⟧ to ⟦2⟧sign in⟦3⟧.⟦4⟧",
        ("<0>", "</0>", "<1>", "</1>", "<2/>"),
    ),
    ("plain-keeps-html", False, (), "Use a <b> tag & more", "Use a <b> tag & more", ()),
    ("percent-signs", False, (), "50% off, 100%%", "⟦0⟧ off, ⟦1⟧⟦2⟧", ("50%", "100", "%%")),
    # URLs and emails
    (
        "url-query",
        False,
        (),
        "Visit https://example.com/docs?lang=en&page=2.",
        "Visit ⟦0⟧.",
        ("https://example.com/docs?lang=en&page=2",),
    ),
    (
        "url-parens",
        False,
        (),
        "(see https://en.wikipedia.org/wiki/Foo_(bar))",
        "(see ⟦0⟧)",
        ("https://en.wikipedia.org/wiki/Foo_(bar)",),
    ),
    ("url-www", False, (), "Go to www.example.org, then", "Go to ⟦0⟧, then", ("www.example.org",)),
    (
        "emails",
        False,
        (),
        "Write to support@example.com or mailto:sales@example.org.",
        "Write to ⟦0⟧ or ⟦1⟧.",
        ("support@example.com", "mailto:sales@example.org"),
    ),
    (
        "cjk-url",
        False,
        (),
        "访问https://example.cn了解更多",
        "访问⟦0⟧了解更多",
        ("https://example.cn",),
    ),
    # numbers
    (
        "version",
        False,
        (),
        "Version 2.4.1 fixes 3 bugs",
        "Version ⟦0⟧ fixes ⟦1⟧ bugs",
        ("2.4.1", "3"),
    ),
    (
        "decimals",
        False,
        (),
        "Total: 1,234.56 EUR (-12.5%), prix 1.234,56 €",
        "Total: ⟦0⟧ EUR (-⟦1⟧), prix ⟦2⟧ €",
        ("1,234.56", "12.5%", "1.234,56"),
    ),
    ("v-version", False, (), "Upgrade to v3.0 now", "Upgrade to ⟦0⟧ now", ("v3.0",)),
    (
        "digits-in-words",
        False,
        (),
        "Play MP3 and 4K video, H2O, COVID-19, i18n, 2nd",
        "Play MP3 and 4K video, H2O, COVID-19, i18n, 2nd",
        (),
    ),
    (
        "ranges-dates-times",
        False,
        (),
        "Pages 10-20, at 10:30 on 15/01/2024",
        "Pages ⟦0⟧, at ⟦1⟧ on ⟦2⟧",
        ("10-20", "10:30", "15/01/2024"),
    ),
    ("cjk-number", False, (), "共有3个文件", "共有⟦0⟧个文件", ("3",)),
    ("arabic", False, (), "لديك {n} رسائل", "لديك ⟦0⟧ رسائل", ("{n}",)),
    # code spans, terms, token look-alikes
    (
        "backticks",
        False,
        (),
        "Run `npm install` then ``make `all` ``",
        "Run ⟦0⟧ then ⟦1⟧",
        ("`npm install`", "``make `all` ``"),
    ),
    (
        "terms-longest-first",
        False,
        ("Acme", "Acme Cloud"),
        "Buy Acme Cloud today with Acme",
        "Buy ⟦0⟧ today with ⟦1⟧",
        ("Acme Cloud", "Acme"),
    ),
    (
        "terms-whole-word-case",
        False,
        ("Acme",),
        "Acmeville and acme stay, Acme goes",
        "Acmeville and acme stay, ⟦0⟧ goes",
        ("Acme",),
    ),
    (
        "term-beside-cjk",
        False,
        ("Acme", "数据库"),
        "使用Acme数据库",
        "使用⟦0⟧⟦1⟧",
        ("Acme", "数据库"),
    ),
    (
        "term-with-digits",
        False,
        ("3M",),
        "Made by 3M in 2024",
        "Made by ⟦0⟧ in ⟦1⟧",
        ("3M", "2024"),
    ),
    (
        "token-lookalikes",
        False,
        (),
        "Literal ⟦0⟧ and [[ 4 ]] stay",
        "Literal ⟦0⟧ and ⟦1⟧ stay",
        ("⟦0⟧", "[[ 4 ]]"),
    ),
    # HTML
    ("html-bold", True, (), "<b>Hello</b> world", "⟦0⟧Hello⟦1⟧ world", ("<b>", "</b>")),
    (
        "html-link",
        True,
        (),
        '<a href="https://example.com/?a=1&amp;b=2" title="Go">Click here</a>',
        "⟦0⟧Click here⟦1⟧",
        ('<a href="https://example.com/?a=1&amp;b=2" title="Go">', "</a>"),
    ),
    (
        "html-entities",
        True,
        (),
        "Tom &amp; Jerry&nbsp;&#8212; &#x2014; caf&eacute; &bogus; & co",
        "Tom ⟦0⟧ Jerry⟦1⟧⟦2⟧ ⟦3⟧ caf⟦4⟧ &bogus; & co",
        ("&amp;", "&nbsp;", "&#8212;", "&#x2014;", "&eacute;"),
    ),
    (
        "html-void",
        True,
        (),
        "One<br>two<br/>three<br />",
        "One⟦0⟧two⟦1⟧three⟦2⟧",
        ("<br>", "<br/>", "<br />"),
    ),
    (
        "html-comment",
        True,
        (),
        "<p>Keep <!-- note: <b> --> this</p>",
        "⟦0⟧Keep ⟦1⟧ this⟦2⟧",
        ("<p>", "<!-- note: <b> -->", "</p>"),
    ),
    (
        "html-code",
        True,
        (),
        "<p>Run <code>rm -rf {dir}</code> now</p>",
        "⟦0⟧Run ⟦1⟧ now⟦2⟧",
        ("<p>", "<code>rm -rf {dir}</code>", "</p>"),
    ),
    (
        "html-script-style",
        True,
        (),
        "<style>p { color: red }</style><script>if (a < b) x = '</p>';</script>Hi",
        "⟦0⟧⟦1⟧Hi",
        ("<style>p { color: red }</style>", "<script>if (a < b) x = '</p>';</script>"),
    ),
    (
        "html-pre",
        True,
        (),
        '<PRE class="x">\n  x = 1\n</pre>\nDone',
        "⟦0⟧\nDone",
        ('<PRE class="x">\n  x = 1\n</pre>',),
    ),
    (
        "html-list",
        True,
        (),
        "<ul><li>One</li><li>Two {n}</li></ul>",
        "⟦0⟧⟦1⟧One⟦2⟧⟦3⟧Two ⟦4⟧⟦5⟧⟦6⟧",
        ("<ul>", "<li>", "</li>", "<li>", "{n}", "</li>", "</ul>"),
    ),
    ("html-less-than", True, (), "if a < b and c>d", "if a < b and c>d", ()),
    (
        "html-quoted-gt",
        True,
        (),
        '<span title="a > b">x</span>',
        "⟦0⟧x⟦1⟧",
        ('<span title="a > b">', "</span>"),
    ),
    ("html-unclosed", True, (), "<p>Unclosed <b>bold", "⟦0⟧Unclosed ⟦1⟧bold", ("<p>", "<b>")),
    ("html-unclosed-code", True, (), "Run <code>make all", "Run ⟦0⟧", ("<code>make all",)),
    (
        "html-doctype",
        True,
        (),
        '<!DOCTYPE html><html lang="en"><![CDATA[x<y]]>',
        "⟦0⟧⟦1⟧⟦2⟧",
        ("<!DOCTYPE html>", '<html lang="en">', "<![CDATA[x<y]]>"),
    ),
    (
        "html-img-attrs",
        True,
        (),
        '<img src="a.png" alt="A cat"> Photo by <a href=\'/u/1\'>Ann</a>',
        "⟦0⟧ Photo by ⟦1⟧Ann⟦2⟧",
        ('<img src="a.png" alt="A cat">', "<a href='/u/1'>", "</a>"),
    ),
    ("html-numbered-tags", True, (), "<0>Hi</0> there", "⟦0⟧Hi⟦1⟧ there", ("<0>", "</0>")),
    (
        "html-mixed",
        True,
        (),
        "<p>See https://x.io/a for 3 examples, {user}.</p>",
        "⟦0⟧See ⟦1⟧ for ⟦2⟧ examples, ⟦3⟧.⟦4⟧",
        ("<p>", "https://x.io/a", "3", "{user}", "</p>"),
    ),
]


@pytest.mark.parametrize(
    ("html", "terms", "source", "expected", "spans"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_mask_table(
    html: bool, terms: tuple[str, ...], source: str, expected: str, spans: tuple[str, ...]
) -> None:
    masked = mask(source, html=html, keep_terms=terms)
    assert masked.text == tokens(expected)
    assert masked.spans == spans
    assert unmask(masked.text, masked) == source


def test_span_kinds() -> None:
    masked = mask(
        '<a href="/x">Mail a@b.io</a> {n} 3 https://x.io `c` &amp; <!-- c --> <pre>p</pre>',
        html=True,
        keep_terms=["Mail"],
    )
    assert masked.kinds == (
        SpanKind.TAG,
        SpanKind.TERM,
        SpanKind.EMAIL,
        SpanKind.TAG,
        SpanKind.PLACEHOLDER,
        SpanKind.NUMBER,
        SpanKind.URL,
        SpanKind.CODE,
        SpanKind.ENTITY,
        SpanKind.COMMENT,
        SpanKind.ELEMENT,
    )


def test_text_without_tokens() -> None:
    masked = mask("Hello {name}, <b>welcome</b>!", html=True)
    assert masked.text_without_tokens() == "Hello , welcome !"


# (id, html, source, translated masked text, expected translation)
TRANSLATIONS = [
    ("punctuation-spacing", False, "Hello {name}!", "Bonjour ⟦0⟧ !", "Bonjour {name} !"),
    (
        "placeholders-reordered",
        False,
        "%1$s invited %2$s",
        "⟦1⟧ a été invité par ⟦0⟧",
        "%2$s a été invité par %1$s",
    ),
    (
        "link-inside-sentence",
        True,
        '<p>Click <a href="/x">here</a> to <b>save</b> {n} files</p>',
        "⟦0⟧Cliquez ⟦1⟧ici⟦2⟧ pour ⟦3⟧enregistrer⟦4⟧ ⟦5⟧ fichiers⟦6⟧",
        '<p>Cliquez <a href="/x">ici</a> pour <b>enregistrer</b> {n} fichiers</p>',
    ),
    (
        "siblings-swapped",
        True,
        "<b>red</b> <i>car</i>",
        "⟦2⟧voiture⟦3⟧ ⟦0⟧rouge⟦1⟧",
        "<i>voiture</i> <b>rouge</b>",
    ),
    (
        "placeholder-leaves-tag",
        True,
        "<p>Delete <b>{count}</b> files?</p>",
        "⟦0⟧⟦1⟧⟦3⟧ Dateien ⟦2⟧ löschen?⟦4⟧",
        "<p><b></b> Dateien {count} löschen?</p>",
    ),
    (
        "void-moves-within-parent",
        True,
        "<p>A<br>B <b>C</b></p>",
        "⟦0⟧A ⟦2⟧C⟦3⟧⟦1⟧B⟦4⟧",
        "<p>A <b>C</b><br>B</p>",
    ),
    (
        "numbered-tags-reordered",
        False,
        "Read <0>the terms</0> and <1>the policy</1>",
        "Lisez ⟦2⟧la politique⟦3⟧ et ⟦0⟧les conditions⟦1⟧",
        "Lisez <1>la politique</1> et <0>les conditions</0>",
    ),
    # Whitespace the model puts just inside an element, where the source had none, moves out.
    (
        "no-space-before-close-tags",
        True,
        "<p>Click <b>here</b> to reset your password.</p>",
        "⟦0⟧Klicken ⟦1⟧hier ⟦2⟧ um dein Passwort zurückzusetzen. ⟦3⟧",
        "<p>Klicken <b>hier</b> um dein Passwort zurückzusetzen.</p>",
    ),
    (
        "space-after-open-tag-moves-before-it",
        True,
        "Click <b>here</b> now",
        "Klicken⟦0⟧ hier⟦1⟧ jetzt",
        "Klicken <b>hier</b> jetzt",
    ),
    (
        "space-before-close-tag-moves-after-it",
        True,
        "<b>Save</b> now",
        "⟦0⟧Speichern ⟦1⟧jetzt",
        "<b>Speichern</b> jetzt",
    ),
    (
        "nested-tags-at-the-edges",
        True,
        "<p><b>Hello</b></p>",
        "⟦0⟧ ⟦1⟧ Bonjour ⟦2⟧ ⟦3⟧",
        "<p><b>Bonjour</b></p>",
    ),
    ("empty-element-stays-empty", True, "A<i></i>B", "A ⟦0⟧ ⟦1⟧ B", "A <i></i> B"),
    ("source-spaces-inside-kept", True, "<b> bold </b>", "⟦0⟧ gras ⟦1⟧", "<b> gras </b>"),
    (
        "numbered-tags-spacing",
        False,
        "Click <0>here</0>.",
        "Klicke ⟦0⟧ hier ⟦1⟧.",
        "Klicke <0>hier</0>.",
    ),
    (
        "siblings-keep-their-separating-space",
        True,
        "<b>red</b> <i>car</i>",
        "⟦2⟧ voiture ⟦3⟧ ⟦0⟧ rouge ⟦1⟧",
        "<i>voiture</i> <b>rouge</b>",
    ),
    ("spaces-in-token", False, "Hi {name}", "Salut ⟦ 0 ⟧", "Salut {name}"),
    ("cjk-brackets", False, "Hi {name} and {n}", "〚0〛和〚 1 〛你好", "{name}和{n}你好"),
    ("ascii-brackets", False, "Hi {name}", "Salut [[0]]", "Salut {name}"),
    (
        "full-width",
        False,
        "Hi {name}",
        "こんにちは\uff3b\uff3b\uff10\uff3d\uff3dさん",
        "こんにちは{name}さん",
    ),
    ("arabic-digits", False, "Hi {name}", "مرحبا ⟦\u0660⟧", "مرحبا {name}"),
    ("emoji-rtl", False, "👋 {name} 🎉", "\u200f🎉 ⟦0⟧ 👋", "\u200f🎉 {name} 👋"),
]


@pytest.mark.parametrize(
    ("html", "source", "translated", "expected"),
    [case[1:] for case in TRANSLATIONS],
    ids=[case[0] for case in TRANSLATIONS],
)
def test_unmask_translation(html: bool, source: str, translated: str, expected: str) -> None:
    masked = mask(source, html=html)
    assert unmask(tokens(translated), masked) == expected


def test_glossary_spans_restore_as_their_targets() -> None:
    masked = mask("Open the Dashboard", html=False, keep_terms=["Dashboard"])
    restorable = dataclasses.replace(masked, spans=("Tableau de bord",))
    assert unmask(tokens("Ouvrez le ⟦0⟧"), restorable) == "Ouvrez le Tableau de bord"


# (id, html, source, translated masked text, phrases the message must hold)
FAILURES = [
    ("dropped", False, "Hi {name}, {n} new", "Salut, ⟦1⟧ nouveaux", ["missing ⟦0⟧", "'{name}'"]),
    ("duplicated", False, "Hi {name}", "Salut ⟦0⟧ ⟦0⟧", ["duplicated ⟦0⟧", "2 times"]),
    ("invented", False, "Hi {name}", "Salut ⟦0⟧ ⟦5⟧", ["unknown ⟦5⟧", "the source has ⟦0⟧)"]),
    (
        "invented-in-empty",
        False,
        "Hello",
        "Bonjour ⟦0⟧",
        ["unknown ⟦0⟧", "the source has no tokens"],
    ),
    (
        "several",
        False,
        "{a} {b} {c}",
        "⟦0⟧ ⟦0⟧ ⟦9⟧",
        ["missing ⟦1⟧ ('{b}'), ⟦2⟧ ('{c}')", "duplicated ⟦0⟧", "unknown ⟦9⟧"],
    ),
    ("close-before-open", True, "<b>x</b>", "⟦1⟧x⟦0⟧", ["⟦1⟧ ('</b>') must close ⟦0⟧ ('<b>')"]),
    (
        "crossing",
        True,
        "<b><i>x</i></b>",
        "⟦0⟧⟦1⟧x⟦3⟧⟦2⟧",
        ["⟦3⟧ ('</b>') must close ⟦0⟧ ('<b>')", "⟦1⟧ ('<i>') is open"],
    ),
    (
        "left-its-parent",
        True,
        "<p>Go <b>now</b></p>",
        "⟦0⟧Allez⟦3⟧ ⟦1⟧maintenant⟦2⟧",
        ["⟦1⟧ ('<b>') must be inside ⟦0⟧ ('<p>'), not the top level"],
    ),
    (
        "moved-into-sibling",
        True,
        "<b>a</b><br><i>b</i>",
        "⟦0⟧a⟦2⟧⟦1⟧⟦3⟧b⟦4⟧",
        ["⟦2⟧ ('<br>') must be inside the top level, not ⟦0⟧ ('<b>')"],
    ),
    (
        "unnested-source-keeps-order",
        True,
        "<p>One <b>two",
        "⟦1⟧deux ⟦0⟧un",
        ["⟦1⟧ ('<b>') now comes before ⟦0⟧ ('<p>')", "keep their order"],
    ),
    ("numbered-tags", False, "<0>x</0>", "⟦1⟧x⟦0⟧", ["must close ⟦0⟧ ('<0>')"]),
    ("long-span-preview", False, "{" + "x" * 60 + "}", "", ["'{xxxxxxxx", "...'"]),
]


@pytest.mark.parametrize(
    ("html", "source", "translated", "phrases"),
    [case[1:] for case in FAILURES],
    ids=[case[0] for case in FAILURES],
)
def test_unmask_rejects(html: bool, source: str, translated: str, phrases: list[str]) -> None:
    masked = mask(source, html=html)
    with pytest.raises(MaskError) as raised:
        unmask(tokens(translated), masked)
    for phrase in phrases:
        assert tokens(phrase) in str(raised.value)


def test_mask_error_is_a_value_error() -> None:
    assert issubclass(MaskError, ValueError)


@pytest.mark.parametrize(
    ("translated", "required", "missing"),
    [
        ("Ouvrez le Tableau de bord", ["Tableau de bord", "Paramètres"], ["Paramètres"]),
        ("Acmeville est loin", ["Acme"], ["Acme"]),
        ("acme est loin", ["Acme"], ["Acme"]),
        ("使用Acme数据库", ["Acme", "数据库"], []),
        ("Prix en C++ et .NET", ["C++", ".NET", "C#"], ["C#"]),
        ("Rien", ["Acme", "Acme", ""], ["Acme"]),
    ],
)
def test_verify_terms(translated: str, required: list[str], missing: list[str]) -> None:
    assert verify_terms(translated, required) == missing


def test_verify_terms_ignoring_case() -> None:
    assert verify_terms("acme est là", ["Acme"], case_sensitive=False) == []


ODD_INPUTS = [
    "",
    "\ud800{x}\udfff",  # lone surrogates
    "\x00\x07{a}\x1b[0m\x7f",
    "\u202eRTL override {n}\u202c \u200d\ufeff",
    "👩‍👩‍👧 {n} 🏳️‍🌈 ⟦",
    "<<<>>>&&&;;{{{}}}%%%$$$```",
    "<a href='x",
    '<a title="x>y',
    "<!-- never closed <b>",
    "<![CDATA[ open",
    "</b></i>stray<p",
    "{" * 50 + "}" * 3,
    "⟦⟦0⟧⟧ [[[1]]] 〚2〛 \uff3b\uff3b\uff13\uff3d\uff3d",
]


@pytest.mark.parametrize("source", ODD_INPUTS)
@pytest.mark.parametrize("html", [False, True])
def test_odd_inputs_round_trip(source: str, html: bool) -> None:
    masked = mask(source, html=html)
    assert unmask(masked.text, masked) == source


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "source",
    ["<a " * 10_000, '<a "' * 10_000, "<!x " * 10_000, "{" * 20_000, "`a " * 10_000, "%" * 20_000],
    ids=["stray-tags", "stray-quotes", "stray-declarations", "braces", "backticks", "percents"],
)
def test_pathological_inputs_mask_in_linear_time(source: str) -> None:
    masked = mask(source, html=True)
    assert unmask(masked.text, masked) == source


HTML_PIECES = [
    "<b>",
    "</b>",
    "<i>",
    "</i>",
    "<p>",
    "</p>",
    "<br>",
    "<br/>",
    '<a href="https://x.io/?a=1&amp;b=2">',
    "</a>",
    "<0>",
    "</0>",
    "<1/>",
    "<!-- c -->",
    "<!--",
    "<code>",
    "</code>",
    "<script>",
    "</script>",
    "<!DOCTYPE html>",
    "&amp;",
    "&nbsp;",
    "&#39;",
    "&",
    "<",
    ">",
    '"',
    "'",
    "{",
    "}",
    "{n}",
    "{{x}}",
    "%s",
    "%",
    "$x",
    "${y}",
    "`",
    "3",
    "2.4.1",
    "-",
    ".",
    "v",
    "https://",
    "a@b.io",
    "Acme",
    "⟦",
    "⟧",
    "[[",
    "]]",
    "〚",
    "\uff11",  # full-width 1
    " ",
    "\n",
    "word",
    "数据",
]
html_ish = st.lists(st.sampled_from(HTML_PIECES) | st.text(max_size=5), max_size=30).map("".join)
terms = st.lists(st.sampled_from(["Acme", "Acme Cloud", "数据", "3M", "x"]), max_size=3)
property_settings = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@property_settings
@given(source=st.text(), html=st.booleans(), keep=terms)
def test_round_trip_random_text(source: str, html: bool, keep: list[str]) -> None:
    masked = mask(source, html=html, keep_terms=keep)
    assert unmask(masked.text, masked) == source


@property_settings
@given(source=html_ish, html=st.booleans(), keep=terms)
def test_round_trip_html_ish(source: str, html: bool, keep: list[str]) -> None:
    masked = mask(source, html=html, keep_terms=keep)
    assert unmask(masked.text, masked) == source
    assert len(masked.spans) == len(masked.kinds)
    assert all(masked.spans)


@property_settings
@given(source=html_ish)
def test_tokens_reversed_without_markup_still_unmask(source: str) -> None:
    masked = mask(source, html=False)
    if masked.markup:
        return
    reversed_tokens = "|".join(token_text(n) for n in reversed(range(len(masked.spans))))
    assert unmask(reversed_tokens, masked) == "|".join(reversed(masked.spans))


@property_settings
@given(source=html_ish, html=st.booleans())
def test_no_whitespace_is_added_inside_an_element(source: str, html: bool) -> None:
    assume("\x00" not in source)
    masked = mask(source, html=html)
    roles = {node.token: node.role for node in masked.markup}
    # Each span restores as a marker of its own, to find the tags in the result.
    marked = dataclasses.replace(
        masked, spans=tuple(f"\x00{n}\x01" for n in range(len(masked.spans)))
    )
    padded = re.sub("(⟦\\d+⟧)", " \\1 ", masked.text)  # a model that spaces every token
    restored = unmask(padded, marked)
    assert "".join(restored.split()) == "".join(marked_source(masked).split())
    for number, role in roles.items():
        token, marker = token_text(number), f"\x00{number}\x01"
        if role is Role.OPEN and not masked.text.partition(token)[2][:1].isspace():
            assert not restored.partition(marker)[2][:1].isspace(), restored
        if role is Role.CLOSE and not masked.text.partition(token)[0][-1:].isspace():
            assert not restored.partition(marker)[0][-1:].isspace(), restored


def marked_source(masked: Masked) -> str:
    return re.sub("⟦(\\d+)⟧", lambda m: f"\x00{m[1]}\x01", masked.text)


def test_masked_is_frozen() -> None:
    masked = mask("{x}", html=False)
    assert isinstance(masked, Masked)
    with pytest.raises(dataclasses.FrozenInstanceError):
        masked.text = "y"  # type: ignore[misc]
