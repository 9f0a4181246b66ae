"""The chat model as judge of search hits: the cited summary, and what the
rerankers (``rerankers/``) share with it.

Every judge call sends the query and passages as JSON data in the user
message, never inside the instructions, and validates what comes back:
citations only of given ids, scores only for given ids.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import langcodes

from xling.service.errors import XlingError
from xling.service.models.base import ChatMessage, ChatModel
from xling.service.prompts import json_data
from xling.service.prompts import load as load_prompt

# Long passages are cut for the judge; the first part carries most of the signal.
PASSAGE_CHARS = 600
MIN_ANSWER_CHARS = 12
# Ends a reply that loops before max_tokens cuts it into invalid JSON.
MAX_ANSWER_CHARS = 500
SUMMARY_FREQUENCY_PENALTY = 0.3


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
            # A bare "30 días" or "14:00" says too little, and too little for the
            # language check that follows; the prompt asks for a sentence.
            "answer": {
                "type": "string",
                "minLength": MIN_ANSWER_CHARS,
                "maxLength": MAX_ANSWER_CHARS,
            },
            "citations": {"type": "array", "items": {"enum": ids}},
        },
        "required": ["answer", "citations"],
    }
    language = langcodes.Language.get(language_code).display_name("en")
    reply = await model.complete(
        messages("summarize", payload, language=language),
        json_schema=schema,
        # Greedy: a summary restates a fact, and sampling let the local model pick
        # the wrong one of two close numbers on some runs and not others.
        temperature=0.0,
        # Greedy decoding let the 1.5B model loop ("Salmon, salmon, ...") until the
        # length cap; 0.3 stopped that and left other summaries word for word.
        frequency_penalty=SUMMARY_FREQUENCY_PENALTY,
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


def messages(prompt_name: str, payload: dict[str, object], **values: str) -> list[ChatMessage]:
    """The instructions of prompt ``prompt_name``, then ``payload`` as the JSON user message."""
    prompt = load_prompt(prompt_name)
    return [
        ChatMessage("system", prompt.render(**values)),
        ChatMessage("user", json_data(payload)),
    ]
