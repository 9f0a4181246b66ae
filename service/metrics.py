"""Prometheus metrics of one server, served on an HTTP port of their own.

Every server has its own ``CollectorRegistry``, so that several servers in one
process (tests, a server sharing its runtime) keep separate counts. Code deep
in a call (model calls, the translation memory, rate limits) records through
the ``count_*`` helpers into the registry of the server handling the call,
which the request interceptor names in a context variable; outside any call
(pipelines driven directly, as the benchmarks do) the helpers do nothing.
The blocking queue and the index sizes are read from the runtime when scraped.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from xling.service.errors import ConfigurationError

if TYPE_CHECKING:
    from xling.service.runtime import Runtime


# From a cached detection to a long local-model summary.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


def backend_of(model_name: str) -> str:
    """The backend of a model name, such as "mistral": a label with few values."""
    return model_name.split(":", 1)[0]


class Metrics:
    """The metrics of one server. ``serve`` exposes them at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.rpcs = Counter(
            "xling_rpcs", "Finished RPCs.", ["method", "code", "key"], registry=registry
        )
        self.rpc_seconds = Histogram(
            "xling_rpc_duration_seconds",
            "RPC latency.",
            ["method", "code"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.rpcs_in_flight = Gauge(
            "xling_rpcs_in_flight", "RPCs being served.", ["method"], registry=registry
        )
        self.rate_limited = Counter(
            "xling_rate_limited",
            "Calls refused by a rate limit (requests or characters).",
            ["key", "limit"],
            registry=registry,
        )
        self.model_calls = Counter(
            "xling_model_calls", "Chat model calls started.", ["backend"], registry=registry
        )
        self.model_errors = Counter(
            "xling_model_errors",
            "Chat model calls failed, by exception class (ResourceExhausted, Unavailable, ...).",
            ["backend", "error"],
            registry=registry,
        )
        self.model_retries = Counter(
            "xling_model_retries",
            "Chat model attempts retried after a rate limit, a 5xx or a lost connection.",
            ["backend"],
            registry=registry,
        )
        self.model_tokens = Counter(
            "xling_model_tokens",
            "Tokens of chat model calls: prompt, completion, or cached_prompt (the prompt "
            "tokens a backend resumed instead of evaluating).",
            ["backend", "kind"],
            registry=registry,
        )
        self.model_seconds = Histogram(
            "xling_model_call_duration_seconds",
            "Chat model call latency, retries included.",
            ["backend"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.model_queue = Gauge(
            "xling_model_queue_depth",
            "Chat model calls waiting for a slot (model_concurrency).",
            ["backend"],
            registry=registry,
        )
        self.translation_cache = Counter(
            "xling_translation_cache_lookups",
            "Translation memory lookups of distinct segments, hit or miss.",
            ["result"],
            registry=registry,
        )
        self.query_cache = Counter(
            "xling_query_cache_lookups",
            "Query vector cache lookups, one per query text, hit or miss.",
            ["result"],
            registry=registry,
        )
        self._http: WSGIServer | None = None

    def watch(self, runtime: Runtime) -> None:
        """Adds the gauges read from ``runtime`` at each scrape."""
        self.registry.register(_RuntimeCollector(runtime))

    def serve(self, host: str, port: int) -> int:
        """Starts the HTTP endpoint in a daemon thread; returns its port."""
        try:
            self._http, _ = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise ConfigurationError(
                "metrics_port", f"cannot serve metrics on {host}:{port}: {exc}"
            ) from exc
        return int(self._http.server_port)

    def stop(self) -> None:
        """Stops the HTTP endpoint (blocking: up to half a second)."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()


class _RuntimeCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def collect(self) -> Iterable[Metric]:
        executor = self._runtime.executor
        yield GaugeMetricFamily(
            "xling_blocking_queue_depth",
            "Blocking jobs (models, embedding, FAISS) waiting for a worker thread.",
            value=max(0, executor.pending - executor.workers),
        )
        chunks = GaugeMetricFamily(
            "xling_index_chunks", "Chunks (vectors) per search collection.", labels=["collection"]
        )
        for name, size in self._runtime.search.collections.chunk_counts().items():
            chunks.add_metric([name], size)
        yield chunks


current: ContextVar[Metrics | None] = ContextVar("xling_metrics", default=None)


def count_rate_limited(key: str, limit: str) -> None:
    if (metrics := current.get()) is not None:
        metrics.rate_limited.labels(key, limit).inc()


def count_model_retry(backend: str) -> None:
    if (metrics := current.get()) is not None:
        metrics.model_retries.labels(backend).inc()


def count_translation_cache(*, hits: int, misses: int) -> None:
    if (metrics := current.get()) is not None:
        metrics.translation_cache.labels("hit").inc(hits)
        metrics.translation_cache.labels("miss").inc(misses)


def count_query_cache(*, hits: int, misses: int) -> None:
    if (metrics := current.get()) is not None:
        metrics.query_cache.labels("hit").inc(hits)
        metrics.query_cache.labels("miss").inc(misses)


@contextlib.contextmanager
def model_waiting(backend: str) -> Iterator[None]:
    """Counts a model call in the queue while the block runs."""
    metrics = current.get()
    if metrics is None:
        yield
        return
    gauge = metrics.model_queue.labels(backend)
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


def count_model_tokens(
    backend: str, prompt_tokens: int, completion_tokens: int, cached_prompt_tokens: int = 0
) -> None:
    if (metrics := current.get()) is not None:
        metrics.model_tokens.labels(backend, "prompt").inc(prompt_tokens)
        metrics.model_tokens.labels(backend, "completion").inc(completion_tokens)
        metrics.model_tokens.labels(backend, "cached_prompt").inc(cached_prompt_tokens)


@contextlib.contextmanager
def model_call(backend: str) -> Iterator[None]:
    """Counts and times one model call, and its failure by status code."""
    metrics = current.get()
    if metrics is None:
        yield
        return
    metrics.model_calls.labels(backend).inc()
    started = time.perf_counter()
    try:
        yield
    except BaseException as exc:
        metrics.model_errors.labels(backend, type(exc).__name__).inc()
        raise
    finally:
        metrics.model_seconds.labels(backend).observe(time.perf_counter() - started)
