"""A bound on in-flight model calls, with a bounded queue in front of it.

Providers throttle, local models serialize, and an unbounded backlog only
turns into timeouts. Calls beyond ``max_active`` wait; calls beyond
``max_waiting`` are refused at once with RESOURCE_EXHAUSTED and RetryInfo.
"""

from __future__ import annotations

import asyncio
from typing import Any

from xling.service import metrics, tracing
from xling.service.errors import ResourceExhausted
from xling.service.models.base import ChatMessage, ChatModel, ChatResult


class GatedChatModel:
    """Wraps any ``ChatModel`` with the bound; same protocol."""

    def __init__(
        self, inner: ChatModel, *, max_active: int, max_waiting: int, retry_after_s: float = 1.0
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self._backend = metrics.backend_of(inner.name)
        self._active = asyncio.Semaphore(max_active)
        self._max_waiting = max_waiting
        self._waiting = 0
        self._retry_after_s = retry_after_s

    @property
    def waiting(self) -> int:
        return self._waiting

    async def complete(self, messages: list[ChatMessage], **options: Any) -> ChatResult:
        if self._active.locked() and self._waiting >= self._max_waiting:
            raise ResourceExhausted(
                f"too many model calls waiting for {self.name}",
                retry_after_s=self._retry_after_s,
                reason="MODEL_QUEUE_FULL",
            )
        with metrics.model_waiting(self._backend):
            self._waiting += 1
            try:
                await self._active.acquire()
            finally:
                self._waiting -= 1
        try:
            with (
                tracing.span("model complete", {"xling.model": self.name}) as span,
                metrics.model_call(self._backend),
            ):
                result = await self.inner.complete(messages, **options)
                span.set_attributes(
                    {
                        "xling.model.prompt_tokens": result.prompt_tokens,
                        "xling.model.completion_tokens": result.completion_tokens,
                    }
                )
        finally:
            self._active.release()
        metrics.count_model_tokens(
            self._backend,
            result.prompt_tokens,
            result.completion_tokens,
            result.cached_prompt_tokens,
        )
        return result

    async def aclose(self) -> None:
        await self.inner.aclose()
