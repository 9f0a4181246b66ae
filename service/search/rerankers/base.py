"""The reranker protocol: a query and passages in, a relevance per passage out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from xling.service.search.judge import Passage


class Reranker(Protocol):
    """Scores how well each passage answers a query, across languages.

    Scores lie in [0, 1] and cover every given passage id; the search sorts
    its top candidates by them, keeping retrieval order among equal scores.
    """

    name: str

    async def score(
        self, query: str, passages: Sequence[Passage], *, timeout_s: float | None
    ) -> dict[str, float]: ...
