"""How many segments a request carries, and how many requests are in flight:
fitted to what the server achieves.

A request must finish within the client's deadline, and servers differ by
three orders of magnitude: the fake or a hosted model translates hundreds of
segments a second, the embedded model on two cores one every second or
three (and queues concurrent requests behind each other). So the size starts
small and follows the time requests take:

- after a request that finished, the next size aims at ``TARGET_SHARE`` of the
  deadline at the rate that request showed (its time includes waiting behind
  the other requests in flight, which is the time the deadline counts), and
  at most doubles at a step;
- a request that ran out of time halves the size at once (the runner also
  splits that request and retries its halves).

A single segment that runs out of time while other requests are in flight
may only have waited behind them: one request fewer goes in flight from then
on (down to one), and the segment is retried. Only a segment that runs out of
time alone has no smaller request to try. A request that finishes within
``TARGET_SHARE`` of the deadline lets one more request in again.

``--batch-size`` and ``--concurrency`` are the ceilings.
"""

from __future__ import annotations

import asyncio
import math
from types import TracebackType

INITIAL_SIZE = 4
TARGET_SHARE = 0.25  # of the deadline: well under it, so a slow moment still fits
GROWTH = 2


class RequestSizer:
    """The number of segments the next request should carry, and the requests in flight.

    Usage::

        sizer = RequestSizer(deadline_s=60, max_size=128, max_in_flight=4)
        async with sizer.slot() as alone:  # waits while ``in_flight`` requests run
            ...  # send a request of sizer.size segments
            sizer.finished(segments=4, elapsed_s=0.2)  # fast: grows to 8
        sizer.timed_out(segments=8)  # halves: 4
    """

    def __init__(
        self,
        *,
        deadline_s: float,
        max_size: int,
        max_in_flight: int = 1,
        initial: int = INITIAL_SIZE,
    ) -> None:
        if deadline_s <= 0 or max_size < 1 or max_in_flight < 1:
            raise ValueError("the deadline, the largest size and the width must be positive")
        self._deadline_s = deadline_s
        self._max = max_size
        self._max_in_flight = max_in_flight
        self.size = max(1, min(initial, max_size))
        self.in_flight = max_in_flight  # the limit; ``_busy`` is the count
        self._busy = 0
        self._changed = asyncio.Condition()

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
        if elapsed_s < TARGET_SHARE * self._deadline_s and self.in_flight < self._max_in_flight:
            self.in_flight += 1  # waiters see it when this request's slot is given back

    def timed_out(self, *, segments: int) -> None:
        """A request of ``segments`` ran past the deadline."""
        self.size = max(1, min(self.size, segments // 2))

    def narrow(self) -> None:
        """One request fewer in flight from now on (at least one)."""
        self.in_flight = max(1, self.in_flight - 1)

    def slot(self) -> _Slot:
        """A place for one request; entering it says whether the request runs alone
        (the only one in flight, and no other may start until it ends)."""
        return _Slot(self)


class _Slot:
    def __init__(self, sizer: RequestSizer) -> None:
        self._sizer = sizer

    async def __aenter__(self) -> bool:
        sizer = self._sizer
        async with sizer._changed:
            await sizer._changed.wait_for(lambda: sizer._busy < sizer.in_flight)
            sizer._busy += 1
            # With a limit of one, no other request can start before this one ends.
            return sizer._busy == 1 and sizer.in_flight == 1

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        sizer = self._sizer
        async with sizer._changed:
            sizer._busy -= 1
            sizer._changed.notify_all()
