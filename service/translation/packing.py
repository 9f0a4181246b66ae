"""Packing segments into model calls under a token budget.

Remote models charge per request and repeat the instructions in each, so many
short segments share one call; a small local model translates best one
segment at a time. Both are the same packer with different limits.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from xling.service.batching import bounded_batches

# Rough tokens per character across scripts; CJK runs nearer 1, Latin nearer 0.25.
# Erring high keeps packed replies inside the model's output limit.
TOKENS_PER_CHAR = 0.5
PER_SEGMENT_OVERHEAD_TOKENS = 12  # the id and JSON punctuation around each segment


@dataclass(frozen=True, slots=True)
class PackLimits:
    max_segments: int
    max_tokens: int  # input tokens per call; the reply needs about as many again


def estimate_tokens(text: str) -> int:
    return int(len(text) * TOKENS_PER_CHAR) + PER_SEGMENT_OVERHEAD_TOKENS


def pack(segments: Sequence[str], limits: PackLimits) -> Iterator[list[int]]:
    """Indexes of ``segments``, grouped into calls, in order.

    A segment larger than the budget goes alone into its own call.

    >>> list(pack(["a", "b", "c"], PackLimits(max_segments=2, max_tokens=1000)))
    [[0, 1], [2]]
    """
    return bounded_batches(
        range(len(segments)),
        cost=lambda index: estimate_tokens(segments[index]),
        max_items=limits.max_segments,
        max_cost=limits.max_tokens,
    )
