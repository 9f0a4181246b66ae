"""OpenTelemetry tracing: off unless ``otel_exporter`` names an exporter.

Each server has its own ``TracerProvider``, given to the gRPC
instrumentation's server interceptor, which opens a span per call (and
continues the caller's trace from ``traceparent``). Within a call, ``span``
opens child spans (blocking jobs, model calls) with the tracer that the request
interceptor names in a context variable; without one it does nothing. A
provider per server rather than the global one keeps several servers in one
process (tests) apart; the SDK still reads the standard ``OTEL_*`` variables
(``OTEL_SERVICE_NAME``, ``OTEL_EXPORTER_OTLP_HEADERS``, ...).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.util.types import AttributeValue

from xling.service.config import Settings

TRACER_NAME = "xling"

current: ContextVar[trace.Tracer | None] = ContextVar("xling_tracer", default=None)


def create_provider(settings: Settings) -> TracerProvider | None:
    """The provider ``settings`` ask for; None when tracing is off."""
    if settings.otel_exporter == "none":
        return None
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", "xling")})
    provider = TracerProvider(resource=resource)
    if settings.otel_exporter == "console":
        # Spans print as they end, for a developer watching the server.
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    else:
        provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(settings.otel_endpoint)))
    return provider


def _otlp_exporter(endpoint: str | None) -> SpanExporter:
    # Imported only when used: it loads grpc channels and protobufs of its own.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint)


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, AttributeValue] | None = None) -> Iterator[trace.Span]:
    """A child span of the current call's span; a no-op span when tracing is off."""
    tracer = current.get()
    if tracer is None:
        yield trace.INVALID_SPAN
        return
    with tracer.start_as_current_span(name, attributes=attributes) as opened:
        yield opened
