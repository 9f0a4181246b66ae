"""The reranked order: the judge's relevance blended with the retrieval score.

A judge alone can be weaker than the embedder that found the candidates (the
local 1.5B model lowered EmbeddingGemma's R@1 from 0.905 to 0.857), so the
order follows ``weight * judge + (1 - weight) * retrieval``, with retrieval
scores min-max scaled over the candidates: the best candidate scores 1, the
last 0, so the weight means the same whatever the embedder's cosine range.
``weight`` 1 is the judge's order (retrieval breaks ties), 0 retrieval's.
docs/search.md gives the fit on the development split and the held-out figures.
"""

from __future__ import annotations

from collections.abc import Sequence


def blend(retrieval: Sequence[float], judged: Sequence[float], weight: float) -> list[float]:
    """One score in [0, 1] per candidate; ``judged`` scores lie in [0, 1]."""
    if len(retrieval) != len(judged):
        raise ValueError("one retrieval score and one judged score per candidate")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must lie in [0, 1], not {weight}")
    low, high = min(retrieval, default=0.0), max(retrieval, default=0.0)
    spread = high - low
    scaled = [(r - low) / spread if spread > 0 else 1.0 for r in retrieval]
    return [weight * j + (1.0 - weight) * s for s, j in zip(scaled, judged, strict=True)]
