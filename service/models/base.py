"""The chat-model protocol that translation, rerank and summary call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A model reply. ``content`` is the raw text (JSON when a schema was given)."""

    content: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Of ``prompt_tokens``, those the backend resumed instead of evaluating.
    cached_prompt_tokens: int = 0
    # With ``top_logprobs=n``: per generated token, the n likeliest tokens at
    # that position and their natural-log probabilities.
    top_logprobs: tuple[dict[str, float], ...] = ()


class ChatModel(Protocol):
    """A chat-completion backend with structured output.

    ``name`` reads "backend:model-id", such as "local:qwen2.5-coder-1.5b-instruct-q4_k_m"
    or "mistral:mistral-large-latest". ``complete`` raises only errors of
    ``xling.service.errors``: ResourceExhausted (rate limit after retries),
    Unavailable (backend down after retries), DeadlineExceeded (``timeout_s``
    ran out), XlingError (anything else the backend did wrong).
    """

    name: str

    async def complete(
        self,
        messages: list[ChatMessage],
        *,
        json_schema: dict[str, Any] | None = None,
        temperature: float = 0.2,
        max_tokens: int = 1024,
        timeout_s: float | None = None,
        top_logprobs: int = 0,
        frequency_penalty: float = 0.0,
    ) -> ChatResult:
        """One completion. With ``json_schema`` the reply is JSON that the
        backend constrains to the schema where it can (the caller still validates).
        With ``top_logprobs`` > 0 the result carries token probabilities. A
        ``frequency_penalty`` > 0 lowers the odds of tokens the reply has already
        used, in proportion to how often."""
        ...

    async def aclose(self) -> None:
        """Releases connections and model memory."""
        ...
