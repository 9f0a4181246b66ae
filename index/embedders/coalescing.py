"""Joins concurrent embedding calls into one forward pass.

A transformer on a CPU embeds a batch of short queries for much less time
each than one at a time, since each forward pass reads the weights once:
EmbeddingGemma on one thread took 49 ms a query in batches of 16 against
128 ms alone. Calls that arrive while a batch runs wait and go together into
the next one; a call that finds nothing running starts at once, so light
traffic pays no wait. With ``concurrency`` above one, that many batches run
at once on the blocking pool (a model that runs each call on one thread uses
one worker per batch), and calls wait only when every one is busy.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from xling.service.executor import BlockingExecutor

Vectors = npt.NDArray[np.float32]


@dataclass(slots=True)
class _Call:
    texts: list[str]
    future: asyncio.Future[Vectors]


class Coalescer:
    """Runs ``encode`` in the executor on the texts of every waiting call, at
    most ``max_texts`` a batch (a larger call goes alone), at most
    ``concurrency`` batches at a time."""

    def __init__(
        self,
        encode: Callable[[list[str]], Vectors],
        executor: BlockingExecutor,
        *,
        max_texts: int,
        concurrency: int = 1,
    ) -> None:
        self._encode = encode
        self._executor = executor
        self._max_texts = max_texts
        self._concurrency = concurrency
        self._waiting: deque[_Call] = deque()
        self._running = 0
        # asyncio keeps only weak references to tasks.
        self._drains: set[asyncio.Task[None]] = set()

    async def embed(self, texts: list[str]) -> Vectors:
        call = _Call(texts, asyncio.get_running_loop().create_future())
        self._waiting.append(call)
        if self._running < self._concurrency:
            # A task of its own: a caller that is cancelled must not stop
            # the batch that other callers wait for.
            self._running += 1
            drain = asyncio.create_task(self._run())
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        return await call.future

    async def _run(self) -> None:
        try:
            await self._drain()
        finally:
            # No await between the last empty _take and here: a call that
            # arrives after it sees the count already lowered.
            self._running -= 1

    async def _drain(self) -> None:
        while calls := self._take():
            texts = [text for call in calls for text in call.texts]
            try:
                vectors = await self._executor.run(self._encode, texts)
            except Exception as exc:  # a full queue or a model error: each caller gets it
                for call in calls:
                    if not call.future.done():
                        call.future.set_exception(exc)
                continue
            start = 0
            for call in calls:
                end = start + len(call.texts)
                if not call.future.done():  # cancelled callers are skipped
                    call.future.set_result(vectors[start:end])
                start = end

    def _take(self) -> list[_Call]:
        calls: list[_Call] = []
        count = 0
        while self._waiting:
            call = self._waiting[0]
            if call.future.done():
                self._waiting.popleft()
                continue
            if calls and count + len(call.texts) > self._max_texts:
                break
            calls.append(self._waiting.popleft())
            count += len(call.texts)
        return calls
