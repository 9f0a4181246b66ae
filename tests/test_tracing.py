"""OpenTelemetry tracing: a server span per call, child spans for blocking jobs
and model calls, collected with the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from xling.clients import AsyncClient, InvalidArgument
from xling.service import tracing
from xling.service.config import load_settings
from xling.service.server import XlingServer, create_server
from xling.v1 import translation_pb2, translation_pb2_grpc

from .conftest import MISTRAL_TEST_KEY, french
from .fakes.mistral_server import FakeMistralServer, chat, translator

SEARCH = "/xling.v1.SearchService/Search"
TRANSLATE = "/xling.v1.TranslationService/TranslateText"
DETECT = "/xling.v1.TranslationService/DetectLanguage"


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
async def traced(
    fake: FakeMistralServer,
    exporter: InMemorySpanExporter,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[XlingServer]:
    fake.set_default(chat(translator(french)))
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = load_settings(
        host="127.0.0.1", port=0, data_dir=tmp_path_factory.mktemp("data"),
        chat_backend="mistral", mistral_server_url=fake.url, mistral_api_key=MISTRAL_TEST_KEY,
    )  # fmt: skip
    server = await create_server(settings, tracer_provider=provider)
    yield server
    await server.stop(grace_s=5)


async def call_spans(exporter: InMemorySpanExporter, method: str) -> tuple[ReadableSpan, list[str]]:
    """The server span of the one call to ``method``, and the names of its descendants."""
    # OpenTelemetry's interceptor ends the call's span after grpc has sent the
    # status, so the caller can hold the answer a moment before the span exists.
    for _ in range(100):
        spans = exporter.get_finished_spans()
        if any(s.name == method for s in spans):
            break
        await asyncio.sleep(0.05)
    (root,) = [s for s in spans if s.name == method]
    children: dict[int, list[ReadableSpan]] = {}
    for span in spans:
        if span.parent is not None:
            children.setdefault(span.parent.span_id, []).append(span)
    names, todo = [], [root]
    while todo:
        for child in children.get(todo.pop().context.span_id, []):
            names.append(child.name)
            todo.append(child)
    return root, names


async def test_search_has_detection_embedding_and_faiss_spans(
    traced: XlingServer, exporter: InMemorySpanExporter
) -> None:
    async with AsyncClient(f"127.0.0.1:{traced.port}", timeout=60) as client:
        await client.index_documents(
            "pets", [{"id": "a", "text": "Le chat dort sur le canapé.", "language_code": "fr"}]
        )
        exporter.clear()
        reply = await client.search("pets", "Where does the cat sleep?")
    assert reply.hits
    root, names = await call_spans(exporter, SEARCH)
    assert root.kind == SpanKind.SERVER
    assert root.status.status_code != StatusCode.ERROR
    assert any(name.startswith("blocking ") and name.endswith(".detect") for name in names)
    assert any(name.startswith("blocking ") and "Embedder" in name for name in names), names
    assert "blocking Collection.dense_search" in names


async def test_translation_has_a_model_span_in_the_callers_trace(
    traced: XlingServer, exporter: InMemorySpanExporter
) -> None:
    exporter.clear()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{traced.port}") as channel:
        stub = translation_pb2_grpc.TranslationServiceStub(channel)
        reply = await stub.TranslateText(
            translation_pb2.TranslateTextRequest(
                contents=["Good evening"], target_language_code="fr", source_language_code="en"
            ),
            metadata=[("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01")],
            timeout=60,
        )
    assert reply.translations[0].translated_text == "FR:Good evening"
    root, names = await call_spans(exporter, TRANSLATE)
    assert format(root.context.trace_id, "032x") == trace_id
    assert "model complete" in names
    (model,) = [s for s in exporter.get_finished_spans() if s.name == "model complete"]
    assert model.attributes["xling.model"] == "mistral:mistral-large-latest"
    assert model.attributes["xling.model.completion_tokens"] > 0


async def test_failed_call_span_carries_its_code(
    traced: XlingServer, exporter: InMemorySpanExporter
) -> None:
    exporter.clear()
    async with AsyncClient(f"127.0.0.1:{traced.port}", timeout=60) as client:
        with pytest.raises(InvalidArgument):
            await client.detect_language([" "])
    root, _ = await call_spans(exporter, DETECT)
    assert root.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    # OpenTelemetry's conventions: a caller's mistake is no error of the server.
    assert root.status.status_code == StatusCode.UNSET


def test_tracing_is_off_unless_configured(tmp_path: Path) -> None:
    assert tracing.create_provider(load_settings(data_dir=tmp_path)) is None
    with tracing.span("outside any call") as span:
        assert not span.is_recording()
    provider = tracing.create_provider(load_settings(otel_exporter="console"))
    assert provider is not None
    provider.shutdown()
