"""Reciprocal rank fusion of ranked candidate lists."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

# Cormack et al.'s constant: damps the head of each list so one retriever's
# first place does not decide alone.
RRF_K = 60


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[K]],
    *,
    weights: Sequence[float] | None = None,
    k: int = RRF_K,
) -> list[tuple[K, float]]:
    """Items of all rankings by fused score ``sum(weight / (k + rank))``, best first.

    >>> reciprocal_rank_fusion([["a", "b"], ["b", "c"]])[0][0]
    'b'
    >>> reciprocal_rank_fusion([["a", "b"], ["b", "c"]], weights=[1.0, 0.0])[0][0]
    'a'
    """
    weights = [1.0] * len(rankings) if weights is None else weights
    scores: dict[K, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda pair: pair[1], reverse=True)
