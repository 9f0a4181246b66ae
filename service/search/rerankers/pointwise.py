"""Pointwise rerank: one yes/no question per passage, scored by probability.

The model reads the query and one passage and is asked whether the passage
states the answer; the score is P(yes) / (P(yes) + P(no)) from the first
reply token's log-probabilities. A small model cannot hold eight passages in
mind and compare them (listwise scores came back flat or favoured the first
passage), but it can answer one reading question at a time, and the
probability ranks passages even when every reply would be "no". The question
comes first in each request so the model's prompt cache reuses it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence

from xling.service.models.base import ChatModel
from xling.service.search.judge import PASSAGE_CHARS, ModelOutputError, Passage, messages

log = logging.getLogger(__name__)

# Enough alternatives that "yes" and "no" both appear in nearly every reply.
TOP_LOGPROBS = 20
_YES = {"yes"}
_NO = {"no"}


class PointwiseReranker:
    name = "pointwise"

    def __init__(self, model: ChatModel) -> None:
        self._model = model

    async def score(
        self, query: str, passages: Sequence[Passage], *, timeout_s: float | None
    ) -> dict[str, float]:
        # The model gate bounds concurrency; a local model runs them in turn.
        scores = await asyncio.gather(*(self._one(query, p, timeout_s) for p in passages))
        return {p.id: s for p, s in zip(passages, scores, strict=True)}

    async def _one(self, query: str, passage: Passage, timeout_s: float | None) -> float:
        payload = {"question": query, "passage": passage.text[:PASSAGE_CHARS]}
        reply = await self._model.complete(
            messages("rerank_pointwise", payload),
            temperature=0.0,
            max_tokens=1,
            timeout_s=timeout_s,
            top_logprobs=TOP_LOGPROBS,
        )
        if not reply.top_logprobs:
            raise ModelOutputError(
                f"{self._model.name} reported no token probabilities, which the pointwise "
                "reranker needs; set reranker to listwise"
            )
        alternatives = reply.top_logprobs[0]
        yes = _probability(alternatives, _YES)
        no = _probability(alternatives, _NO)
        if yes + no == 0.0:
            log.info("pointwise rerank: neither yes nor no among the likeliest replies")
            return 0.0
        return yes / (yes + no)


def _probability(alternatives: dict[str, float], words: set[str]) -> float:
    # "Yes", " yes" and "yes" are different tokens with one meaning.
    return sum(math.exp(lp) for token, lp in alternatives.items() if token.strip().lower() in words)
