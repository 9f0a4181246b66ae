"""One client of Mistral's API with our retry policy, for chat and embeddings.

La Plateforme, or a self-hosted endpoint of the same API, through the
``mistralai`` SDK. Retries are ours, not the SDK's. The SDK's backoff honours
Retry-After, but it is bounded only by elapsed time, gives every attempt the
full timeout and sleeps past the caller's deadline. Here every attempt and
every wait fits in the time given, and a Retry-After that does not fit ends
the call at once with RESOURCE_EXHAUSTED carrying that delay, for the caller
to honour.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar
from urllib.parse import urlsplit

import httpx2
from mistralai.client import Mistral, errors
from mistralai.client.utils.logger import NoOpLogger

from xling.service import metrics
from xling.service.errors import (
    ConfigurationError,
    DeadlineExceeded,
    ResourceExhausted,
    Unavailable,
    XlingError,
)
from xling.service.models.openai_compat import OpenAILogprobsTransport

log = logging.getLogger(__name__)

LA_PLATEFORME_URL = "https://api.mistral.ai"
BODY_SNIPPET_CHARS = 300
_TIMEOUT_REASON = "MISTRAL_TIMEOUT"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Failure:
    """A retryable failure of one attempt, and the error it becomes if retries run out."""

    kind: type[ResourceExhausted] | type[Unavailable]
    description: str
    retry_after_s: float | None
    reason: str


class MistralApi:
    """The SDK client of one model, and ``call``, which retries a request.

    ``timeout_s`` bounds each HTTP attempt, and a whole call when the caller
    gives no time of its own. ``max_retries`` counts attempts after the first;
    waits between them grow from ``backoff_s`` to ``max_backoff_s`` unless the
    server sends Retry-After. Without ``api_key`` the SDK falls back to
    ``MISTRAL_API_KEY`` from the environment, as the settings do.
    """

    def __init__(
        self,
        *,
        api_key: str | None,
        server_url: str | None,
        model: str,
        purpose: str,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
    ) -> None:
        host = urlsplit(server_url or LA_PLATEFORME_URL).hostname or ""
        if not api_key and (host == "mistral.ai" or host.endswith(".mistral.ai")):
            raise ConfigurationError(
                "mistral_api_key",
                f"{host} needs a Mistral API key for the {purpose}; set one, or point "
                "mistral_server_url at a self-hosted endpoint",
            )
        self.model = model
        self.timeout_s = timeout_s
        self._max_retries = max_retries
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._http = httpx2.AsyncClient(follow_redirects=True, transport=OpenAILogprobsTransport())
        self.client = Mistral(
            api_key=api_key or None,
            server_url=server_url,
            async_client=self._http,
            retry_config=None,  # one attempt per SDK call; see the module docstring
            debug_logger=NoOpLogger(),  # its debug log (MISTRAL_DEBUG) prints the key
        )

    async def call(
        self, send: Callable[[int], Awaitable[T]], *, what: str, timeout_s: float | None = None
    ) -> T:
        """``send(timeout_ms)`` until it succeeds, within ``timeout_s`` (default: the
        configured timeout). ``what`` names the reply in errors ("chat completion")."""
        loop = asyncio.get_running_loop()
        budget_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = loop.time() + budget_s
        attempt = 0
        while True:
            attempt += 1
            remaining_s = deadline - loop.time()
            if remaining_s <= 0:
                raise self._deadline_exceeded(what, budget_s, timeout_s)
            outcome = await self._attempt(send, min(self.timeout_s, remaining_s), what)
            if not isinstance(outcome, _Failure):
                return outcome
            if outcome.reason == _TIMEOUT_REASON and remaining_s <= self.timeout_s:
                # The attempt had all the time that was left.
                raise self._deadline_exceeded(what, budget_s, timeout_s)
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
                "Mistral %s %s: %s; retry %d of %d in %.2f s",
                self.model,
                what,
                outcome.description,
                attempt,
                self._max_retries,
                delay_s,
            )
            await asyncio.sleep(delay_s)

    async def _attempt(
        self, send: Callable[[int], Awaitable[T]], timeout_s: float, what: str
    ) -> T | _Failure:
        """One HTTP call: the response, or the failure to retry; raises for the others."""
        try:
            # The SDK's timeout applies per connect and per read; asyncio.timeout
            # also ends a reply that trickles in slower than that.
            async with asyncio.timeout(timeout_s):
                return await send(math.ceil(timeout_s * 1000))
        except errors.ResponseValidationError as exc:
            raise XlingError(
                f"Mistral's reply is not a valid {what}: {snippet(str(exc.cause))}"
            ) from None
        except errors.MistralError as exc:
            return _http_failure(exc, what)
        except (TimeoutError, httpx2.TimeoutException):
            description = f"no reply within {timeout_s:.1f} s"
            return _Failure(Unavailable, description, None, _TIMEOUT_REASON)
        except (httpx2.TransportError, errors.NoResponseError) as exc:
            description = f"connection failed ({type(exc).__name__})"
            return _Failure(Unavailable, description, None, "MISTRAL_UNAVAILABLE")

    def _deadline_exceeded(
        self, what: str, budget_s: float, timeout_s: float | None
    ) -> DeadlineExceeded:
        limit = "deadline" if timeout_s is not None else "mistral_timeout_s"
        return DeadlineExceeded(
            f"Mistral {self.model} gave no {what} within the {budget_s:.1f} s {limit}"
        )

    async def aclose(self) -> None:
        await self._http.aclose()


def _http_failure(exc: errors.MistralError, what: str) -> _Failure:
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
            f"Mistral's reply is not a JSON {what} (HTTP {status}): {snippet(exc.body)}"
        )
    if status in (401, 403):
        raise XlingError(f"Mistral refused the API key (HTTP {status}); check mistral_api_key")
    raise XlingError(f"Mistral rejected the request (HTTP {status}): {snippet(exc.body)}")


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


def snippet(text: str) -> str:
    """``text`` on one line, cut for an error message."""
    text = " ".join(text.split())
    return text if len(text) <= BODY_SNIPPET_CHARS else text[:BODY_SNIPPET_CHARS] + "…"
