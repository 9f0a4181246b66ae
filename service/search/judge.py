"""The chat model as reranker and summarizer of search hits.

Both send the query and passages as JSON data in the user message, never
inside the instructions, and validate what comes back: scores for exactly the
given ids, citations only of given ids.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import langcodes

from xling.service.errors import XlingError
from xling.service.models.base import ChatMessage, ChatModel
from xling.service.prompts import load as load_prompt

log = logging.getLogger(__name__)

MAX_SCORE = 10.0
# Long passages are cut for the judge; the first part carries most of the signal.
PASSAGE_CHARS = 600


@dataclass(frozen=True, slots=True)
class Passage:
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    citations: list[str]


class ModelOutputError(XlingError):
    """The model's reply could not be used."""


async def rerank(
    model: ChatModel, query: str, passages: Sequence[Passage], *, timeout_s: float | None
) -> dict[str, float]:
    """Relevance in [0, 1] per passage id, from one listwise call."""
    ids = [p.id for p in passages]
    payload = {
        "query": query,
        "passages": [{"id": p.id, "text": p.text[:PASSAGE_CHARS]} for p in passages],
    }
    schema = {
        "type": "object",
        "properties": {
            "scores": {
                "type": "array",
                "prefixItems": [
                    {
                        "type": "object",
                        "properties": {"id": {"const": i}, "score": {"type": "number"}},
                        "required": ["id", "score"],
                    }
                    for i in ids
                ],
                "minItems": len(ids),
                "maxItems": len(ids),
            }
        },
        "required": ["scores"],
    }
    reply = await model.complete(
        _messages("rerank", payload),
        json_schema=schema,
        temperature=0.0,
        max_tokens=24 * len(ids) + 32,
        timeout_s=timeout_s,
    )
    try:
        items = json.loads(reply.content)["scores"]
        scores = {str(i["id"]): float(i["score"]) for i in items if str(i.get("id")) in ids}
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelOutputError(
            f"the model's rerank reply was not valid JSON scores: {exc}"
        ) from exc
    if set(scores) != set(ids):
        log.info("rerank reply covered %d of %d passages", len(scores), len(ids))
    # A passage the model skipped ranks last rather than failing the search.
    return {i: min(max(scores.get(i, 0.0) / MAX_SCORE, 0.0), 1.0) for i in ids}


async def summarize(
    model: ChatModel,
    question: str,
    passages: Sequence[Passage],
    *,
    language_code: str,
    timeout_s: float | None,
) -> Answer:
    """An answer in ``language_code`` that cites only the given passage ids."""
    ids = [p.id for p in passages]
    payload = {
        "question": question,
        "passages": [{"id": p.id, "text": p.text[:PASSAGE_CHARS]} for p in passages],
    }
    schema = {
        "type": "object",
        "properties": {
            "answer": {"type": "string"},
            "citations": {"type": "array", "items": {"enum": ids}},
        },
        "required": ["answer", "citations"],
    }
    language = langcodes.Language.get(language_code).display_name("en")
    reply = await model.complete(
        _messages("summarize", payload, language=language),
        json_schema=schema,
        temperature=0.2,
        max_tokens=400,
        timeout_s=timeout_s,
    )
    try:
        body = json.loads(reply.content)
        text = str(body["answer"]).strip()
        cited = [str(c) for c in body.get("citations", [])]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelOutputError(f"the model's summary reply was not valid JSON: {exc}") from exc
    if not text:
        raise ModelOutputError("the model returned an empty summary")
    return Answer(text, [c for c in dict.fromkeys(cited) if c in ids])


def _messages(prompt_name: str, payload: dict[str, object], **values: str) -> list[ChatMessage]:
    prompt = load_prompt(prompt_name)
    return [
        ChatMessage("system", prompt.render(**values)),
        ChatMessage("user", json.dumps(payload, ensure_ascii=False)),
    ]
