"""The Mistral chat backend: La Plateforme, or a self-hosted endpoint of the same API.

Retries are ours, not the SDK's. The SDK's backoff honours Retry-After, but it
is bounded only by elapsed time, gives every attempt the full timeout and
sleeps past the caller's deadline. Here every attempt and every wait fits in
the deadline, and a Retry-After that does not fit ends the call at once with
RESOURCE_EXHAUSTED carrying that delay, for the caller to honour.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx2
from mistralai.client import Mistral, errors, models
from mistralai.client.utils.logger import NoOpLogger

from xling.service import metrics
from xling.service.config import Settings
from xling.service.errors import (
    ConfigurationError,
    DeadlineExceeded,
    ResourceExhausted,
    Unavailable,
    XlingError,
)
from xling.service.models.base import ChatMessage, ChatResult

log = logging.getLogger(__name__)

LA_PLATEFORME_URL = "https://api.mistral.ai"
MAX_TEMPERATURE = 0.3  # translation wants faithful, repeatable wording
BODY_SNIPPET_CHARS = 300
TIMEOUT_REASON = "MISTRAL_TIMEOUT"


@dataclass(frozen=True, slots=True)
class _Failure:
    """A retryable failure of one attempt, and the error it becomes if retries run out."""

    kind: type[ResourceExhausted] | type[Unavailable]
    description: str
    retry_after_s: float | None
    reason: str


class MistralChatModel:
    """``ChatModel`` over the ``mistralai`` SDK's async chat completion.

    ``timeout_s`` bounds each HTTP attempt, and the whole call when the caller
    gives no ``timeout_s`` of its own. ``max_retries`` counts attempts after
    the first; waits between them grow from ``backoff_s`` to ``max_backoff_s``
    unless the server sends Retry-After. Without ``api_key`` the SDK falls back
    to ``MISTRAL_API_KEY`` from the environment, as the settings do.
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
        host = urlsplit(server_url or LA_PLATEFORME_URL).hostname or ""
        if not api_key and (host == "mistral.ai" or host.endswith(".mistral.ai")):
            raise ConfigurationError(
                "mistral_api_key",
                f"{host} needs a Mistral API key; set one, or point mistral_server_url "
                "at a self-hosted endpoint",
            )
        self.name = f"mistral:{model}"
        self.model = model
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._http = httpx2.AsyncClient(follow_redirects=True)
        self._client = Mistral(
            api_key=api_key or None,
            server_url=server_url,
            async_client=self._http,
            retry_config=None,  # one attempt per SDK call; see the module docstring
            debug_logger=NoOpLogger(),  # its debug log (MISTRAL_DEBUG) prints the key
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
        if top_logprobs:
            request["logprobs"] = True
            request["top_logprobs"] = top_logprobs
        loop = asyncio.get_running_loop()
        budget_s = self._timeout_s if timeout_s is None else timeout_s
        deadline = loop.time() + budget_s
        attempt = 0
        while True:
            attempt += 1
            remaining_s = deadline - loop.time()
            if remaining_s <= 0:
                raise self._deadline_exceeded(budget_s, timeout_s)
            outcome = await self._attempt(request, min(self._timeout_s, remaining_s))
            if not isinstance(outcome, _Failure):
                return self._result(outcome)
            if outcome.reason == TIMEOUT_REASON and remaining_s <= self._timeout_s:
                raise self._deadline_exceeded(budget_s, timeout_s)
            delay_s = outcome.retry_after_s
            if delay_s is None:
                backoff = min(self._max_backoff_s, self._backoff_s * 2 ** (attempt - 1))
                delay_s = backoff * random.uniform(0.5, 1.0)  # noqa: S311  # jitter, not crypto
            if attempt > self._max_retries or loop.time() + delay_s >= deadline:
                raise outcome.kind(
                    f"Mistral {self.model}: {outcome.description} after {attempt} attempt(s)",
                    retry_after_s=outcome.retry_after_s,
                    reason=outcome.reason,
                )
            metrics.count_model_retry("mistral")
            log.info(
                "Mistral %s: %s; retry %d of %d in %.2f s",
                self.model,
                outcome.description,
                attempt,
                self._max_retries,
                delay_s,
            )
            await asyncio.sleep(delay_s)

    async def _attempt(
        self, request: dict[str, Any], timeout_s: float
    ) -> models.ChatCompletionResponse | _Failure:
        """One HTTP call: the response, or the failure to retry; raises for the others."""
        try:
            # The SDK's timeout applies per connect and per read; asyncio.timeout
            # also ends a reply that trickles in slower than that.
            async with asyncio.timeout(timeout_s):
                return await self._client.chat.complete_async(
                    **request, timeout_ms=math.ceil(timeout_s * 1000)
                )
        except errors.ResponseValidationError as exc:
            raise XlingError(
                f"Mistral's reply is not a valid chat completion: {_snippet(str(exc.cause))}"
            ) from None
        except errors.MistralError as exc:
            return _http_failure(exc)
        except (TimeoutError, httpx2.TimeoutException):
            return _Failure(Unavailable, f"no reply within {timeout_s:.1f} s", None, TIMEOUT_REASON)
        except (httpx2.TransportError, errors.NoResponseError) as exc:
            description = f"connection failed ({type(exc).__name__})"
            return _Failure(Unavailable, description, None, "MISTRAL_UNAVAILABLE")

    async def aclose(self) -> None:
        await self._http.aclose()

    def _deadline_exceeded(self, budget_s: float, timeout_s: float | None) -> DeadlineExceeded:
        limit = "deadline" if timeout_s is not None else "mistral_timeout_s"
        return DeadlineExceeded(
            f"Mistral {self.model} did not answer within the {budget_s:.1f} s {limit}"
        )

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


def _http_failure(exc: errors.MistralError) -> _Failure:
    """The retryable failure for an HTTP error status; raises for the others."""
    status = exc.status_code
    if status == 429:
        return _Failure(
            ResourceExhausted,
            "rate limited (HTTP 429)",
            _retry_after_s(exc.headers),
            "MISTRAL_RATE_LIMITED",
        )
    if status >= 500:
        return _Failure(
            Unavailable,
            f"server error (HTTP {status})",
            _retry_after_s(exc.headers),
            "MISTRAL_UNAVAILABLE",
        )
    if status < 400:
        raise XlingError(
            f"Mistral's reply is not a JSON chat completion (HTTP {status}): {_snippet(exc.body)}"
        )
    if status in (401, 403):
        raise XlingError(f"Mistral refused the API key (HTTP {status}); check mistral_api_key")
    raise XlingError(f"Mistral rejected the request (HTTP {status}): {_snippet(exc.body)}")


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds, given as seconds or as an HTTP date; None when absent or bad."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _text(content: object) -> str | None:
    """The reply text; of a chunked reply, its text chunks (thinking chunks are not the answer)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(chunk.text for chunk in content if isinstance(chunk, models.TextChunk))
    return None


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= BODY_SNIPPET_CHARS else text[:BODY_SNIPPET_CHARS] + "…"
