"""TranslateText's work: detect, protect, reuse, pack, call, verify, restore.

For each content: split off surrounding whitespace; mask markup,
placeholders and do-not-translate terms; detect the source language if none
was given; pass through unchanged when it already is in the target language
or has nothing to translate; look the masked text up in the translation
memory; translate the misses, identical ones once, many per model call;
verify each reply (every token back once, every digit kept) and repair
failures by retrying smaller packs, then single segments; restore and store.

Glossary source terms are masked like placeholders and restored as their
target terms, so a glossary is enforced by construction; the model sees each
such token's meaning in the request so the sentence around it still agrees.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import langcodes

from xling.service import languages, metrics
from xling.service.detection import Detector, LanguageScore
from xling.service.errors import DeadlineExceeded
from xling.service.executor import BlockingExecutor
from xling.service.models.base import ChatMessage, ChatModel
from xling.service.prompts import json_data
from xling.service.prompts import load as load_prompt
from xling.service.translation.masking import Masked, MaskError, mask, token_text, unmask
from xling.service.translation.memory import TranslationMemory, memory_key
from xling.service.translation.numbers import missing_numbers
from xling.service.translation.packing import PackLimits, pack

log = logging.getLogger(__name__)


FORMALITY_INSTRUCTIONS = {
    "": "Use the register that fits the text.",
    "more": "Use the formal register (for example vous, Sie, usted, Lei).",
    "less": "Use the informal register (for example tu, du, tú, tu).",
}
# A segment that fails verification this many times alone is answered with an error.
SINGLE_SEGMENT_ATTEMPTS = 2


@dataclass(frozen=True, slots=True)
class TranslateOptions:
    target_language_code: str
    source_language_code: str = ""  # empty: detect per content
    mime_type: str = "text/plain"
    glossary: tuple[tuple[str, str], ...] = ()
    do_not_translate: tuple[str, ...] = ()
    formality: str = ""  # "", "more" or "less"
    context: str = ""
    # Off, numbers reach the model as written, not as tokens, and are still
    # checked in its reply: a small model drops a token more often than a number.
    protect_numbers: bool = True

    @property
    def html(self) -> bool:
        return self.mime_type == "text/html"


@dataclass(slots=True)
class SegmentResult:
    translated_text: str
    detected_language_code: str = ""
    detected_language_confidence: float = 0.0
    model: str = ""
    cached: bool = False
    error: str = ""


@dataclass(slots=True)
class _Unit:
    """One distinct masked text to translate; contents that share it point here."""

    key: str
    source: str
    masked: Masked
    translation: str = ""  # masked translation, tokens still in
    error: str = ""
    cached: bool = False
    content_indexes: list[int] = field(default_factory=list)


class TranslationPipeline:
    def __init__(
        self,
        *,
        model: ChatModel,
        pack_limits: PackLimits,
        detector: Detector,
        executor: BlockingExecutor,
        memory: TranslationMemory,
        temperature: float = 0.2,
    ) -> None:
        self.model = model
        self._pack_limits = pack_limits
        self._detector = detector
        self._executor = executor
        self._memory = memory
        self._temperature = temperature
        self._prompt = load_prompt("translate")
        # Concurrent requests for the same unit share one model call.
        self._in_flight: dict[str, asyncio.Future[_Unit]] = {}

    async def translate(
        self, contents: Sequence[str], options: TranslateOptions, *, deadline: float | None
    ) -> list[SegmentResult]:
        """One result per content, in order. ``deadline`` is a ``time.monotonic()`` value."""
        masked = await self._executor.run(self._mask_all, contents, options)
        detections = await self._detect(masked, options)
        results: list[SegmentResult] = []
        units: dict[str, _Unit] = {}
        cache_options = self._cache_options(options)
        for index, (item, detection) in enumerate(zip(masked, detections, strict=True)):
            source = options.source_language_code or detection.language_code
            result = SegmentResult("", model=self.model.name)
            if not options.source_language_code:
                result.detected_language_code = detection.language_code
                result.detected_language_confidence = detection.confidence
            results.append(result)
            if not _has_words(item.masked) or _same_language(source, options.target_language_code):
                result.translated_text = contents[index]
                result.model = ""
                continue
            key = memory_key(
                item.masked.text,
                source=languages.base(source),
                target=options.target_language_code,
                options=cache_options,
            )
            unit = units.get(key)
            if unit is None:
                unit = units[key] = _Unit(key, source, item.masked)
            unit.content_indexes.append(index)
        await self._resolve(list(units.values()), options, deadline)
        for unit in units.values():
            for index in unit.content_indexes:
                result = results[index]
                result.cached = unit.cached
                if unit.error:
                    result.error = unit.error
                    continue
                item = masked[index]
                # Units share masked text; each content restores its own spans.
                body = unmask(unit.translation, item.restorable)
                result.translated_text = f"{item.lead}{body}{item.trail}"
        return results

    def _cache_options(self, options: TranslateOptions) -> dict[str, Any]:
        return {
            "mime": options.mime_type,
            "glossary": sorted(options.glossary),
            "keep": sorted(options.do_not_translate),
            "formality": options.formality,
            "context": options.context,
            "model": self.model.name,
            "prompt": self._prompt.id,
        }

    @staticmethod
    def _mask_all(contents: Sequence[str], options: TranslateOptions) -> list[_MaskedContent]:
        return [_MaskedContent.of(text, options) for text in contents]

    async def _detect(
        self, masked: list[_MaskedContent], options: TranslateOptions
    ) -> list[LanguageScore]:
        if options.source_language_code:
            return [LanguageScore(options.source_language_code, 1.0)] * len(masked)
        texts = [item.plain_text for item in masked]
        ranked = await self._executor.run(lambda: [self._detector.detect(t, 1) for t in texts])
        return [scores[0] for scores in ranked]

    async def _resolve(
        self, units: list[_Unit], options: TranslateOptions, deadline: float | None
    ) -> None:
        """Fills each unit's translation or error: memory, shared calls, then the model."""
        cached = await self._executor.run(self._memory.get_many, [u.key for u in units])
        metrics.count_translation_cache(hits=len(cached), misses=len(units) - len(cached))
        waits: list[tuple[_Unit, asyncio.Future[_Unit]]] = []
        mine: list[_Unit] = []
        for unit in units:
            if unit.key in cached:
                unit.translation, unit.cached = cached[unit.key], True
            elif unit.key in self._in_flight:
                waits.append((unit, self._in_flight[unit.key]))
            else:
                self._in_flight[unit.key] = asyncio.get_running_loop().create_future()
                mine.append(unit)
        try:
            await self._translate_units(mine, options, deadline)
        except BaseException as exc:
            for unit in mine:
                future = self._in_flight.pop(unit.key)
                future.set_exception(exc)
                future.exception()  # mark retrieved: waiters may be gone
            raise
        for unit in mine:
            self._in_flight.pop(unit.key).set_result(unit)
        for unit, future in waits:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0)
            try:
                shared = await asyncio.wait_for(asyncio.shield(future), remaining)
            except TimeoutError as exc:
                raise DeadlineExceeded(
                    "deadline exceeded waiting for a shared translation"
                ) from exc
            unit.translation, unit.error = shared.translation, shared.error

    async def _translate_units(
        self, units: list[_Unit], options: TranslateOptions, deadline: float | None
    ) -> None:
        by_source: dict[str, list[_Unit]] = {}
        for unit in units:
            by_source.setdefault(unit.source, []).append(unit)
        calls = []
        for group in by_source.values():
            for indexes in pack([u.masked.text for u in group], self._pack_limits):
                calls.append(self._translate_pack([group[i] for i in indexes], options, deadline))
        await asyncio.gather(*calls)

    async def _translate_pack(
        self,
        units: list[_Unit],
        options: TranslateOptions,
        deadline: float | None,
        attempt: int = 1,
    ) -> None:
        """Translates a pack; failures are split and retried, down to single segments."""
        failures = await self._call_model(units, options, deadline)
        if not failures:
            return
        if len(units) > 1:
            if len(failures) == len(units):
                halves = [failures[: len(failures) // 2], failures[len(failures) // 2 :]]
            else:
                halves = [failures]
            await asyncio.gather(*(self._translate_pack(h, options, deadline) for h in halves))
        elif attempt < SINGLE_SEGMENT_ATTEMPTS:
            await self._translate_pack(units, options, deadline, attempt + 1)

    async def _call_model(
        self, units: list[_Unit], options: TranslateOptions, deadline: float | None
    ) -> list[_Unit]:
        """One model call for ``units``; returns those whose reply failed verification."""
        timeout_s = None
        if deadline is not None:
            timeout_s = deadline - time.monotonic()
            if timeout_s <= 0:
                raise DeadlineExceeded("deadline exceeded before the model call")
        ids = [f"s{i}" for i in range(len(units))]
        payload: dict[str, Any] = {
            "source_language": _language_name(units[0].source),
            "target_language": _language_name(options.target_language_code),
            "segments": [{"id": i, "text": u.masked.text} for i, u in zip(ids, units, strict=True)],
        }
        glossary = _glossary_tokens(units, options)
        if glossary:
            payload["glossary"] = glossary
        if options.context:
            payload["context"] = options.context
        system = self._prompt.render(
            target_language=_language_name(options.target_language_code),
            formality=FORMALITY_INSTRUCTIONS[options.formality],
        )
        messages = [
            ChatMessage("system", system),
            ChatMessage("user", json_data(payload)),
        ]
        reply = await self.model.complete(
            messages,
            json_schema=_reply_schema(ids),
            temperature=self._temperature,
            max_tokens=_max_reply_tokens(units),
            timeout_s=timeout_s,
        )
        texts = _parse_reply(reply.content, ids)
        failures = []
        for segment_id, unit in zip(ids, units, strict=True):
            unit.error = _verify(texts.get(segment_id), unit.masked)
            if unit.error:
                log.debug("segment failed verification: %s", unit.error)
                failures.append(unit)
            else:
                unit.translation = texts[segment_id]
        # Stored per call, not per request: a request that runs out of time later
        # (a client then retries smaller parts) keeps what its finished calls did.
        await self._executor.run(
            self._memory.put_many, {u.key: u.translation for u in units if not u.error}
        )
        return failures


@dataclass(frozen=True, slots=True)
class _MaskedContent:
    lead: str
    masked: Masked  # what the model sees
    restorable: Masked  # the same tokens, glossary spans replaced by their targets
    trail: str

    @classmethod
    def of(cls, text: str, options: TranslateOptions) -> _MaskedContent:
        core = text.strip()
        start = text.find(core) if core else len(text)
        glossary = dict(options.glossary)
        masked = mask(
            core,
            html=options.html,
            keep_terms=(*options.do_not_translate, *glossary),
            numbers=options.protect_numbers,
        )
        targets = tuple(glossary.get(span, span) for span in masked.spans)
        return cls(text[:start], masked, replace(masked, spans=targets), text[start + len(core) :])

    @property
    def plain_text(self) -> str:
        """The words alone, for language detection."""
        return self.masked.text_without_tokens()


def _has_words(masked: Masked) -> bool:
    return any(ch.isalpha() for ch in masked.text_without_tokens())


def _same_language(source: str, target: str) -> bool:
    if source == "und":
        return False
    if languages.base(source) != languages.base(target):
        return False
    # zh-Hant into zh-Hans is a translation; plain "zh" is taken as either.
    return "-" not in source or source == target


def _language_name(code: str) -> str:
    if code in ("", "und"):
        return "the source language (detect it)"
    return langcodes.Language.get(code).display_name("en")


def _reply_schema(ids: list[str]) -> dict[str, Any]:
    # prefixItems with const ids makes constrained decoders emit every id in order.
    return {
        "type": "object",
        "properties": {
            "translations": {
                "type": "array",
                "prefixItems": [
                    {
                        "type": "object",
                        "properties": {"id": {"const": i}, "text": {"type": "string"}},
                        "required": ["id", "text"],
                    }
                    for i in ids
                ],
                "minItems": len(ids),
                "maxItems": len(ids),
            }
        },
        "required": ["translations"],
    }


def _max_reply_tokens(units: list[_Unit]) -> int:
    # Translations can run longer than their source (en -> de, fr); allow three times.
    return 64 + sum(3 * len(u.masked.text) // 2 + 16 for u in units)


def _parse_reply(content: str, ids: list[str]) -> dict[str, str]:
    """Texts by segment id; ids that are missing, unknown or repeated are dropped."""
    try:
        items = json.loads(content)["translations"]
    except (ValueError, KeyError, TypeError):
        return {}
    texts: dict[str, str] = {}
    repeated: set[str] = set()
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        segment_id, text = item.get("id"), item.get("text")
        if segment_id in ids and isinstance(text, str):
            if segment_id in texts:
                repeated.add(segment_id)
            texts[segment_id] = text
    return {k: v for k, v in texts.items() if k not in repeated}


def _verify(text: str | None, masked: Masked) -> str:
    """What is wrong with one translated segment, or "" when it is fine."""
    if text is None:
        return "the model's reply had no translation for this segment"
    if not text.strip():
        return "the model returned an empty translation"
    try:
        unmask(text, masked)
    except MaskError as exc:
        return f"markup, placeholders or glossary terms were not kept: {exc}"
    missing = missing_numbers(masked.text, text)
    if missing:
        return f"numbers of the source were not kept: {', '.join(missing)}"
    return ""


def _glossary_tokens(units: list[_Unit], options: TranslateOptions) -> list[dict[str, str]]:
    """The glossary entries in these units, keyed by the token that stands for each."""
    glossary = dict(options.glossary)
    entries: dict[str, dict[str, str]] = {}
    for unit in units:
        for number, span in enumerate(unit.masked.spans):
            if span in glossary:
                token = token_text(number)
                entries[f"{token}={span}"] = {
                    "token": token,
                    "source": span,
                    "target": glossary[span],
                }
    return list(entries.values())
