"""Listwise rerank: one model call scores all candidates as JSON.

One request per search suits a large remote model (Mistral Large), which
compares passages well side by side. Small local models give flat or
position-biased scores this way; they use the pointwise reranker.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence

from xling.service.models.base import ChatModel
from xling.service.search.judge import PASSAGE_CHARS, ModelOutputError, Passage, messages

log = logging.getLogger(__name__)

MAX_SCORE = 10.0


class ListwiseReranker:
    name = "listwise"

    def __init__(self, model: ChatModel) -> None:
        self._model = model

    async def score(
        self, query: str, passages: Sequence[Passage], *, timeout_s: float | None
    ) -> dict[str, float]:
        ids = [p.id for p in passages]
        payload = {
            "query": query,
            "passages": [{"id": p.id, "text": p.text[:PASSAGE_CHARS]} for p in passages],
        }
        reply = await self._model.complete(
            messages("rerank_listwise", payload),
            json_schema=_schema(ids),
            temperature=0.0,
            max_tokens=24 * len(ids) + 32,
            timeout_s=timeout_s,
        )
        try:
            items = json.loads(reply.content)["scores"]
            scores = {
                str(i["id"]): float(i["score"])
                for i in items
                if str(i.get("id")) in ids and math.isfinite(float(i["score"]))
            }
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelOutputError(
                f"the model's rerank reply was not valid JSON scores: {exc}"
            ) from exc
        if set(scores) != set(ids):
            log.info("rerank reply covered %d of %d passages", len(scores), len(ids))
        # A passage the model skipped ranks last rather than failing the search.
        return {i: min(max(scores.get(i, 0.0) / MAX_SCORE, 0.0), 1.0) for i in ids}


def _schema(ids: list[str]) -> dict[str, object]:
    # prefixItems with const ids makes constrained decoders emit every id, in order.
    return {
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
