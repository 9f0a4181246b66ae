"""Rate limits per API key name: token buckets on requests and on characters.

Each key name gets a bucket per limit (callers share the ``anonymous`` one
when no keys are configured). A call that finds a bucket short is refused with
RESOURCE_EXHAUSTED and RetryInfo saying when the bucket will hold enough, and
takes nothing from any bucket. The interceptor checks before the servicer
runs, so before any model call. Buckets live on the event loop: no locks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from xling.service import metrics
from xling.service.config import Settings
from xling.service.errors import ResourceExhausted


class TokenBucket:
    """``burst`` tokens at most, refilled at ``rate`` tokens a second."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def delay(self, amount: int) -> float:
        """Seconds until ``amount`` tokens are available; 0 when they are now."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        return max(0.0, (amount - self._tokens) / self.rate)

    def take(self, amount: int) -> None:
        self._tokens -= amount


def request_chars(message: Message) -> int:
    """Characters in every string field of a request, nested messages included."""
    total = 0
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING:
            values = value if field.is_repeated else [value]
            total += sum(len(v) for v in values)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                total += sum(len(k) + len(str(v)) for k, v in value.items())
            elif field.is_repeated:
                total += sum(request_chars(item) for item in value)
            else:
                total += request_chars(value)
    return total


class RateLimiter:
    """The request and character limits of ``settings``, per key name.

    Usage::

        limiter = RateLimiter.from_settings(settings)  # None when both are off
        limiter.check("team-a", request)  # raises ResourceExhausted
    """

    def __init__(
        self, *, requests_per_s: float, requests_burst: int, chars_per_s: float, chars_burst: int
    ) -> None:
        # limit -> (rate, burst) of the limits that are on; burst 0: one second's worth.
        self._limits = {
            limit: (rate, burst or max(1, math.ceil(rate)))
            for limit, rate, burst in (
                ("requests", requests_per_s, requests_burst),
                ("characters", chars_per_s, chars_burst),
            )
            if rate > 0
        }
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter | None:
        if settings.rate_limit_requests_per_s <= 0 and settings.rate_limit_chars_per_s <= 0:
            return None
        return cls(
            requests_per_s=settings.rate_limit_requests_per_s,
            requests_burst=settings.rate_limit_requests_burst,
            chars_per_s=settings.rate_limit_chars_per_s,
            chars_burst=settings.rate_limit_chars_burst,
        )

    def _bucket(self, key: str, limit: str) -> TokenBucket:
        bucket = self._buckets.get((key, limit))
        if bucket is None:
            rate, burst = self._limits[limit]
            bucket = self._buckets[key, limit] = TokenBucket(rate, burst)
        return bucket

    def check(self, key: str, request: Message) -> None:
        """Takes one request and the request's characters from ``key``'s buckets."""
        costs = {"requests": 1}
        if "characters" in self._limits:
            costs["characters"] = request_chars(request)
        wanted = [(limit, self._bucket(key, limit), costs[limit]) for limit in self._limits]
        for limit, bucket, cost in wanted:
            if cost > bucket.burst:
                metrics.count_rate_limited(key, limit)
                # No RetryInfo: waiting would not help.
                raise ResourceExhausted(
                    f"the request has {cost} {limit}; a key may send at most "
                    f"{bucket.burst} at once: split it",
                    reason="RATE_LIMITED",
                )
        delays = {limit: bucket.delay(cost) for limit, bucket, cost in wanted}
        refused = [limit for limit, delay_s in delays.items() if delay_s > 0]
        if refused:
            for limit in refused:
                metrics.count_rate_limited(key, limit)
            retry_after_s = max(delays.values())
            raise ResourceExhausted(
                f"rate limit of key {key!r} reached ({', '.join(refused)}); "
                f"retry in {retry_after_s:.2f} s",
                retry_after_s=retry_after_s,
                reason="RATE_LIMITED",
            )
        for _, bucket, cost in wanted:
            bucket.take(cost)
