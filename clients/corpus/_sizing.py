"""How many segments a request carries: fitted to what the server achieves.

A request must finish within the client's deadline, and servers differ by
three orders of magnitude: the fake or a hosted model translates hundreds of
segments a second, the embedded model on two cores one every second or
three. So the size starts small and follows the time requests take:

- after a request that finished, the next size aims at ``TARGET_SHARE`` of the
  deadline at the rate that request showed (its time includes waiting behind
  the other requests in flight, which is the time the deadline counts), and
  at most doubles at a step;
- a request that ran out of time halves the size at once (the runner also
  splits that request and retries its halves).

``--batch-size`` is the ceiling.
"""

from __future__ import annotations

import math

INITIAL_SIZE = 4
TARGET_SHARE = 0.25  # of the deadline: well under it, so a slow moment still fits
GROWTH = 2


class RequestSizer:
    """The number of segments the next request should carry.

    Usage::

        sizer = RequestSizer(deadline_s=60, max_size=128)
        sizer.size  # 4 at first
        sizer.finished(segments=4, elapsed_s=0.2)  # fast: grows to 8
        sizer.timed_out(segments=8)  # halves: 4
    """

    def __init__(self, *, deadline_s: float, max_size: int, initial: int = INITIAL_SIZE) -> None:
        if deadline_s <= 0 or max_size < 1:
            raise ValueError("the deadline and the largest size must be positive")
        self._deadline_s = deadline_s
        self._max = max_size
        self.size = max(1, min(initial, max_size))

    def finished(self, *, segments: int, elapsed_s: float) -> None:
        """A request of ``segments`` came back after ``elapsed_s`` seconds."""
        if segments < 1:
            return
        per_segment = max(elapsed_s, 1e-6) / segments
        fitting = math.floor(TARGET_SHARE * self._deadline_s / per_segment)
        # Growth is bounded by the request's own size: a small remainder that
        # came back fast says little about a request eight times its size.
        ceiling = max(self.size, GROWTH * segments)
        self.size = max(1, min(fitting, ceiling, self._max))

    def timed_out(self, *, segments: int) -> None:
        """A request of ``segments`` ran past the deadline."""
        self.size = max(1, min(self.size, segments // 2))
