"""MistralChatModel through the real mistralai SDK against the fake Mistral server."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import time
from collections.abc import AsyncIterator, Callable
from email.utils import formatdate
from typing import Any

import pytest

from xling.service.config import load_settings
from xling.service.errors import (
    ConfigurationError,
    DeadlineExceeded,
    ResourceExhausted,
    Unavailable,
    XlingError,
)
from xling.service.models.base import ChatMessage
from xling.service.models.mistral import MistralChatModel

from .fakes.mistral_server import (
    CHAT_PATH,
    LOGPROB_SHAPES,
    FakeMistralServer,
    chat,
    error,
    hang,
    raw,
    slow,
    translator,
    yes_no,
)

API_KEY = "sk-test-5e1f0c9a7d"
MODEL_ID = "mistral-large-2407"
SCHEMA = {
    "type": "object",
    "properties": {"translations": {"type": "array"}},
    "required": ["translations"],
}
SEGMENTS = {"segments": [{"id": "s0", "text": "Guten Morgen"}, {"id": "s1", "text": "⟦0⟧ Welt"}]}
MESSAGES = [
    ChatMessage("system", "Translate each segment into English."),
    ChatMessage("user", json.dumps(SEGMENTS, ensure_ascii=False)),
]

MakeModel = Callable[..., MistralChatModel]


@pytest.fixture
async def make_model(mistral_server: FakeMistralServer) -> AsyncIterator[MakeModel]:
    """Models on the fake server with test-sized backoff; closed after the test."""
    made: list[MistralChatModel] = []

    def make(**overrides: Any) -> MistralChatModel:
        options: dict[str, Any] = {
            "api_key": API_KEY,
            "server_url": mistral_server.url,
            "model": MODEL_ID,
            "timeout_s": 5.0,
            "max_retries": 2,
            "backoff_s": 0.01,
            "max_backoff_s": 0.05,
        }
        made.append(MistralChatModel(**(options | overrides)))
        return made[-1]

    yield make
    for model in made:
        await model.aclose()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_completion_on_the_wire(
    mistral_server: FakeMistralServer, make_model: MakeModel
) -> None:
    mistral_server.script(chat(translator(str.upper)))
    model = make_model()

    result = await model.complete(MESSAGES, json_schema=SCHEMA, temperature=0.9, max_tokens=256)

    assert model.name == f"mistral:{MODEL_ID}"
    assert json.loads(result.content) == {
        "translations": [{"id": "s0", "text": "GUTEN MORGEN"}, {"id": "s1", "text": "⟦0⟧ WELT"}]
    }
    assert result.model == MODEL_ID
    assert result.prompt_tokens > 0 and result.completion_tokens > 0
    [request] = mistral_server.requests
    assert request.method == "POST" and request.path == CHAT_PATH
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    body = request.json
    assert body["model"] == MODEL_ID
    assert body["temperature"] <= 0.3
    assert body["max_tokens"] == 256
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "reply", "schema": SCHEMA, "strict": True},
    }
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert json.loads(request.user_text) == SEGMENTS


async def test_garbled_content_is_returned_for_the_caller_to_validate(
    mistral_server: FakeMistralServer, make_model: MakeModel
) -> None:
    mistral_server.script(chat("Sure! Here is your translation: Good morning"))
    result = await make_model().complete(MESSAGES, json_schema=SCHEMA)
    assert result.content == "Sure! Here is your translation: Good morning"


@pytest.mark.parametrize("shape", LOGPROB_SHAPES)
async def test_logprobs_are_read_in_every_servers_shape(
    mistral_server: FakeMistralServer, make_model: MakeModel, shape: str
) -> None:
    # The SDK drops logprobs without Mistral's token_id; vLLM and llama.cpp send none.
    mistral_server.script(yes_no(lambda _: 0.8, shape=shape))
    result = await make_model().complete(MESSAGES, max_tokens=1, top_logprobs=2)
    assert result.content == "yes"
    [alternatives] = result.top_logprobs
    assert alternatives == pytest.approx({"yes": math.log(0.8), "no": math.log(0.2)})
    assert mistral_server.requests[0].json["top_logprobs"] == 2


async def test_429_is_retried_after_retry_after(
    mistral_server: FakeMistralServer, make_model: MakeModel
) -> None:
    mistral_server.script(error(429, retry_after=0.5), chat("ok"))
    started = time.monotonic()

    result = await make_model().complete(MESSAGES, timeout_s=5)

    elapsed = time.monotonic() - started
    assert result.content == "ok"
    assert len(mistral_server.requests) == 2
    assert 0.45 <= elapsed < 3


async def test_429_forever_is_resource_exhausted_with_retry_after(
    mistral_server: FakeMistralServer, make_model: MakeModel
) -> None:
    mistral_server.set_default(error(429, retry_after=0.05))

    with pytest.raises(ResourceExhausted) as caught:
        await make_model(max_retries=2).complete(MESSAGES, timeout_s=5)

    assert caught.value.retry_after_s == pytest.approx(0.05)
    assert caught.value.reason == "MISTRAL_RATE_LIMITED"
    assert "3 attempt" in caught.value.message
    assert len(mistral_server.requests) == 3


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_retry_after_beyond_the_deadline_ends_the_call_at_once(
    mistral_server: FakeMistralServer, make_model: MakeModel, form: str
) -> None:
    retry_after = "30" if form == "seconds" else formatdate(time.time() + 30, usegmt=True)
    mistral_server.set_default(error(429, retry_after=retry_after))
    started = time.monotonic()

    with pytest.raises(ResourceExhausted) as caught:
        await make_model().complete(MESSAGES, timeout_s=2)

    assert time.monotonic() - started < 1
    assert caught.value.retry_after_s == pytest.approx(30, abs=2)
    assert len(mistral_server.requests) == 1


async def test_500_is_retried(mistral_server: FakeMistralServer, make_model: MakeModel) -> None:
    mistral_server.script(error(500), chat("ok"))
    result = await make_model().complete(MESSAGES, timeout_s=5)
    assert result.content == "ok"
    assert len(mistral_server.requests) == 2


async def test_503_forever_is_unavailable_and_the_key_stays_secret(
    mistral_server: FakeMistralServer, make_model: MakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    mistral_server.set_default(error(503, message="upstream overloaded"))
    caplog.set_level(logging.DEBUG)

    with pytest.raises(Unavailable) as caught:
        await make_model(max_retries=2).complete(MESSAGES, timeout_s=5)

    assert "HTTP 503" in caught.value.message
    assert caught.value.reason == "MISTRAL_UNAVAILABLE"
    assert len(mistral_server.requests) == 3
    assert "retry 1 of 2" in caplog.text
    assert API_KEY not in caplog.text
    assert API_KEY not in str(caught.value)


async def test_hang_ends_at_the_deadline(
    mistral_server: FakeMistralServer, make_model: MakeModel
) -> None:
    mistral_server.script(hang(), slow(0.2, chat("late but fine")))
    model = make_model(timeout_s=60)
    started = time.monotonic()

    with pytest.raises(DeadlineExceeded):
        await model.complete(MESSAGES, timeout_s=1)

    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 3
    assert len(mistral_server.requests) == 1
    # The abandoned request leaves the connection pool usable.
    assert (await model.complete(MESSAGES, timeout_s=5)).content == "late but fine"


async def test_server_stops_while_a_request_hangs(make_model: MakeModel) -> None:
    fake = FakeMistralServer().start()
    fake.script(hang())
    call = asyncio.create_task(
        make_model(server_url=fake.url, max_retries=0).complete(MESSAGES, timeout_s=30)
    )
    while not fake.requests:
        await asyncio.sleep(0.01)
    started = time.monotonic()

    await asyncio.to_thread(fake.stop)

    assert time.monotonic() - started < 2
    with pytest.raises(Unavailable):
        await call


async def test_malformed_json_is_an_error_not_retried(
    mistral_server: FakeMistralServer, make_model: MakeModel
) -> None:
    mistral_server.script(raw('{"id": "cmpl-1", "object": "chat.completion", "choi'))

    with pytest.raises(XlingError) as caught:
        await make_model().complete(MESSAGES, timeout_s=5)

    assert type(caught.value) is XlingError
    assert "not a valid chat completion" in caught.value.message
    assert len(mistral_server.requests) == 1


async def test_reply_without_choices_is_an_error(
    mistral_server: FakeMistralServer, make_model: MakeModel
) -> None:
    reply = {
        "id": "cmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL_ID,
        "choices": [],
        "usage": {"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1},
    }
    mistral_server.script(raw(json.dumps(reply)))

    with pytest.raises(XlingError, match="no message content"):
        await make_model().complete(MESSAGES, timeout_s=5)


async def test_connection_refused_is_unavailable(make_model: MakeModel) -> None:
    model = make_model(server_url=f"http://127.0.0.1:{closed_port()}", max_retries=1)

    with pytest.raises(Unavailable) as caught:
        await model.complete(MESSAGES, timeout_s=5)

    assert "connection failed" in caught.value.message


def test_la_plateforme_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    for url in (None, "https://api.mistral.ai", "https://api.eu.mistral.ai/"):
        with pytest.raises(ConfigurationError) as caught:
            MistralChatModel(api_key=None, server_url=url)
        assert caught.value.setting == "mistral_api_key"


async def test_self_hosted_runs_without_a_key(
    mistral_server: FakeMistralServer, make_model: MakeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    result = await make_model(api_key=None).complete(MESSAGES, timeout_s=5)
    assert json.loads(result.content)["translations"][0]["id"] == "s0"
    assert "authorization" not in mistral_server.requests[0].headers


async def test_from_settings(mistral_server: FakeMistralServer) -> None:
    settings = load_settings(
        mistral_api_key=API_KEY, mistral_server_url=mistral_server.url, mistral_model=MODEL_ID
    )
    model = MistralChatModel.from_settings(settings)
    try:
        await model.complete(MESSAGES, timeout_s=5)
    finally:
        await model.aclose()
    assert model.name == f"mistral:{MODEL_ID}"
    assert mistral_server.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
