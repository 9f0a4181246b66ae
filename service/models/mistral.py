"""The Mistral chat backend: La Plateforme, or a self-hosted endpoint of the same API.

Requests go through ``MistralApi``, whose retries fit in the caller's deadline
(``mistral_api.py`` says why they are not the SDK's).
"""

from __future__ import annotations

from typing import Any

from mistralai.client import models

from xling.service.config import Settings
from xling.service.errors import XlingError
from xling.service.models.base import ChatMessage, ChatResult
from xling.service.models.mistral_api import MistralApi

MAX_TEMPERATURE = 0.3  # translation wants faithful, repeatable wording


class MistralChatModel:
    """``ChatModel`` over the ``mistralai`` SDK's async chat completion.

    ``timeout_s`` bounds each HTTP attempt, and the whole call when the caller
    gives no ``timeout_s`` of its own; the retry options are ``MistralApi``'s.
    """

    def __init__(
        self,
        *,
        api_key: str | None,
        server_url: str | None = None,
        model: str = "mistral-large-latest",
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
    ) -> None:
        self.name = f"mistral:{model}"
        self.model = model
        self._api = MistralApi(
            api_key=api_key,
            server_url=server_url,
            model=model,
            purpose="chat backend",
            timeout_s=timeout_s,
            max_retries=max_retries,
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> MistralChatModel:
        key = settings.mistral_api_key
        return cls(
            api_key=key.get_secret_value() if key is not None else None,
            server_url=settings.mistral_server_url,
            model=settings.mistral_model,
            timeout_s=settings.mistral_timeout_s,
            max_retries=settings.mistral_max_retries,
        )

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
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "temperature": min(temperature, MAX_TEMPERATURE),
            "max_tokens": max_tokens,
        }
        if json_schema is not None:
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "reply", "schema": json_schema, "strict": True},
            }
        if frequency_penalty:
            request["frequency_penalty"] = frequency_penalty
        if top_logprobs:
            request["logprobs"] = True
            request["top_logprobs"] = top_logprobs

        async def send(timeout_ms: int) -> models.ChatCompletionResponse:
            return await self._api.client.chat.complete_async(**request, timeout_ms=timeout_ms)

        response = await self._api.call(send, what="chat completion", timeout_s=timeout_s)
        return self._result(response)

    async def aclose(self) -> None:
        await self._api.aclose()

    def _result(self, response: models.ChatCompletionResponse) -> ChatResult:
        choice = response.choices[0] if response.choices else None
        content = _text(choice.message.content) if choice and choice.message else None
        if content is None:
            finish_reason = choice.finish_reason if choice else None
            raise XlingError(
                f"Mistral's reply has no message content (finish_reason: {finish_reason})"
            )
        usage = response.usage
        tokens = choice.logprobs.content if choice and choice.logprobs else []
        return ChatResult(
            content=content,
            model=response.model or self.model,
            prompt_tokens=usage.prompt_tokens or 0,
            completion_tokens=usage.completion_tokens or 0,
            top_logprobs=tuple(
                {alt.token: alt.logprob for alt in token.top_logprobs or ()} for token in tokens
            ),
        )


def _text(content: object) -> str | None:
    """The reply text; of a chunked reply, its text chunks (thinking chunks are not the answer)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(chunk.text for chunk in content if isinstance(chunk, models.TextChunk))
    return None
