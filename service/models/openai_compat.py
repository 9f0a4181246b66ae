"""Chat replies of OpenAI-compatible servers, made readable by the mistralai SDK.

A self-hosted "Mistral API" is often vLLM or llama.cpp's server, which answer
in OpenAI's shape. Their token log-probabilities differ from Mistral's in two
fields: OpenAI sends no ``token_id`` (llama.cpp calls it ``id``) and may send
``bytes: null``. The SDK requires both, and on a mismatch it silently drops the
whole ``logprobs`` object, which the pointwise reranker cannot do without. This
transport fills the two fields in before the SDK parses the reply; Mistral's
own replies pass through untouched.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2

CHAT_COMPLETIONS_PATH = "/chat/completions"
UNKNOWN_TOKEN_ID = -1
# Headers that describe the body as sent; a rewritten body is plain and of its own length.
_BODY_HEADERS = ("content-encoding", "content-length", "transfer-encoding")


class OpenAILogprobsTransport(httpx2.AsyncBaseTransport):
    """``httpx2.AsyncHTTPTransport`` whose chat completion replies carry logprobs in Mistral's
    shape."""

    def __init__(self, inner: httpx2.AsyncBaseTransport | None = None) -> None:
        self._inner = inner or httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        if not (
            request.method == "POST"
            and request.url.path.endswith(CHAT_COMPLETIONS_PATH)
            and response.status_code == 200
            and "json" in response.headers.get("content-type", "")
        ):
            return response
        body = await response.aread()
        await response.aclose()
        mended = mend_logprobs(body)
        headers = [(k, v) for k, v in response.headers.multi_items() if k not in _BODY_HEADERS]
        return httpx2.Response(
            response.status_code,
            headers=headers,
            content=body if mended is None else mended,
            extensions=response.extensions,
            request=request,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def mend_logprobs(body: bytes) -> bytes | None:
    """``body`` with Mistral's logprob fields filled in, or None when it needs no change
    (including a body that is not JSON: the SDK reports that one)."""
    try:
        reply = json.loads(body)
    except ValueError:
        return None
    if not isinstance(reply, dict):
        return None
    changed = False
    for choice in reply.get("choices") or ():
        logprobs = choice.get("logprobs") if isinstance(choice, dict) else None
        tokens = logprobs.get("content") if isinstance(logprobs, dict) else None
        for token in tokens or ():
            if not isinstance(token, dict):
                continue
            changed |= _mend_token(token)
            for alternative in token.get("top_logprobs") or ():
                if isinstance(alternative, dict):
                    changed |= _mend_token(alternative)
    return json.dumps(reply).encode() if changed else None


def _mend_token(token: dict[str, Any]) -> bool:
    changed = False
    if "token_id" not in token:
        token["token_id"] = token.get("id", UNKNOWN_TOKEN_ID)
        changed = True
    if token.get("bytes") is None:
        token["bytes"] = list(str(token.get("token", "")).encode())
        changed = True
    return changed
