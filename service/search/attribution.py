"""Which passage a summary rests on, decided by the embedder rather than the model.

A small model writes the right fact and then cites the first passage out of
habit (the demo: "two years" from the English warranty, cited to the Italian
one-year extension above it). The answer and the passages it was written from
are embedded together; when the passage nearest to the answer is not among
the model's citations, it replaces them. Citations that include it stand, so
a strong model's multi-passage citations are kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xling.index.embedders.base import Embedder
from xling.service.search.judge import Answer, Passage


async def attribute(embedder: Embedder, answer: Answer, passages: Sequence[Passage]) -> Answer:
    """``answer`` with its citations checked against the passage nearest to it."""
    # No citation means no passage answers; one passage leaves nothing to choose.
    if not answer.citations or len(passages) < 2:
        return answer
    vectors = await embedder.embed_passages([answer.text, *(p.text for p in passages)])
    nearest = passages[int(np.argmax(vectors[1:] @ vectors[0]))].id
    if nearest in answer.citations:
        return answer
    return Answer(answer.text, [nearest])
