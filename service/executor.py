"""A bounded thread pool for blocking work: models, embedding, FAISS.

The event loop must never block, and an unbounded queue would let a burst of
requests pile up memory and latency. Jobs beyond ``workers + queue_size``
waiting are refused at once with RESOURCE_EXHAUSTED so callers can back off.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import ParamSpec, TypeVar

from xling.service import tracing
from xling.service.errors import ResourceExhausted

P = ParamSpec("P")
T = TypeVar("T")


class BlockingExecutor:
    """Runs blocking callables off the event loop, at most ``workers`` at once.

    Usage::

        executor = BlockingExecutor(workers=2, queue_size=64)
        vectors = await executor.run(model.encode, texts)
    """

    def __init__(self, *, workers: int, queue_size: int, retry_after_s: float = 1.0) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="xling-blocking")
        self._slots = threading.BoundedSemaphore(workers + queue_size)
        self._retry_after_s = retry_after_s
        self.workers = workers
        self.capacity = workers + queue_size

    @property
    def pending(self) -> int:
        """Jobs running or waiting."""
        return self.capacity - self._slots._value

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        if not self._slots.acquire(blocking=False):
            raise ResourceExhausted(
                "server busy: too many blocking jobs queued",
                retry_after_s=self._retry_after_s,
                reason="QUEUE_FULL",
            )
        with tracing.span(f"blocking {_job_name(fn)}"):
            try:
                future = self._pool.submit(partial(fn, *args, **kwargs))
            except BaseException:
                self._slots.release()
                raise
            future.add_done_callback(lambda _: self._slots.release())
            return await asyncio.wrap_future(future)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _job_name(fn: Callable[..., object]) -> str:
    """Like "Collection.dense_search"; a lambda is named after the function that made it."""
    name = getattr(fn, "__qualname__", type(fn).__name__)
    return name.removesuffix(".<locals>.<lambda>")
