"""Joins concurrent embedding calls into one forward pass.

A transformer on a CPU embeds a batch of short queries for much less time
each than one at a time, since each forward pass reads the weights once:
EmbeddingGemma on one thread took 49 ms a query in batches of 16 against
128 ms alone. Calls that arrive while a batch runs wait and go together into
the next one; a call that finds nothing running starts at once, so light
traffic pays no wait.
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
    most ``max_texts`` a batch (a larger call goes alone), one batch at a time."""

    def __init__(
        self,
        encode: Callable[[list[str]], Vectors],
        executor: BlockingExecutor,
        *,
        max_texts: int,
    ) -> None:
        self._encode = encode
        self._executor = executor
        self._max_texts = max_texts
        self._waiting: deque[_Call] = deque()
        self._drain: asyncio.Task[None] | None = None

    async def embed(self, texts: list[str]) -> Vectors:
        call = _Call(texts, asyncio.get_running_loop().create_future())
        self._waiting.append(call)
        if self._drain is None or self._drain.done():
            # A task of its own: a caller that is cancelled must not stop
            # the batch that other callers wait for.
            self._drain = asyncio.create_task(self._run())
        return await call.future

    async def _run(self) -> None:
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
