"""The grpc.aio server: wiring of servicers, health, reflection and shutdown.

Usage in tests and embedding code::

    server = await create_server(load_settings(port=0))
    ...  # call 127.0.0.1:server.port
    await server.stop(grace_s=5)
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.sdk.trace import TracerProvider

from xling.service import tracing
from xling.service.auth import KeyRing
from xling.service.config import Settings
from xling.service.errors import ConfigurationError
from xling.service.interceptors import RequestContextInterceptor
from xling.service.logs import configure_logging
from xling.service.metrics import Metrics
from xling.service.ratelimit import RateLimiter
from xling.service.runtime import Runtime
from xling.service.servicers.search import SearchServicer
from xling.service.servicers.translation import TranslationServicer
from xling.v1 import search_pb2, search_pb2_grpc, translation_pb2, translation_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    translation_pb2.DESCRIPTOR.services_by_name["TranslationService"].full_name,
    search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name,
)


class CertificateFiles:
    """The server's TLS files, read again when they change on disk.

    gRPC asks ``fetch`` before each TLS handshake; when a file's modification
    time or size changed (a renewal by cert-manager, a rotated Secret), the
    next connections get the new certificate without a restart. A pair that
    does not load (a rotation half written) is skipped until the files change
    again. With ``client_ca`` every client must present a certificate that
    chains to it (mutual TLS).
    """

    def __init__(self, cert: Path, key: Path, client_ca: Path | None) -> None:
        self._cert, self._key, self._client_ca = cert, key, client_ca
        try:
            self._stamp = self._stat()
            self.initial = self._load()
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError("tls_cert_file", f"cannot load the TLS files: {exc}") from exc

    def _stat(self) -> tuple[tuple[int, int], ...]:
        paths = (self._cert, self._key, self._client_ca)
        return tuple((s.st_mtime_ns, s.st_size) for s in (os.stat(p) for p in paths if p))

    def _load(self) -> grpc.ServerCertificateConfiguration:
        # gRPC would only fail the handshakes later; ssl checks the pair now.
        check = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        check.load_cert_chain(self._cert, self._key)
        if self._client_ca is not None:
            check.load_verify_locations(self._client_ca)
        return grpc.ssl_server_certificate_configuration(
            [(self._key.read_bytes(), self._cert.read_bytes())],
            root_certificates=self._client_ca.read_bytes() if self._client_ca else None,
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """A new configuration when the files changed since the last load, else None."""
        try:
            stamp = self._stat()
            if stamp == self._stamp:
                return None
            configuration = self._load()
        except (OSError, ssl.SSLError) as exc:
            log.warning("keeping the current TLS certificate: %s", exc)
            return None
        self._stamp = stamp
        log.info("loaded a new TLS certificate from %s", self._cert)
        return configuration

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self.initial,
            self.fetch,
            require_client_authentication=self._client_ca is not None,
        )


@dataclass
class XlingServer:
    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer
    runtime: Runtime
    owns_runtime: bool
    metrics: Metrics
    metrics_port: int | None = None
    # The provider the settings asked for: flushed and closed on stop.
    owned_tracer_provider: TracerProvider | None = None

    async def stop(self, grace_s: float) -> None:
        """Reports NOT_SERVING, lets in-flight calls finish for up to ``grace_s``
        while refusing new ones, then releases the models it loaded."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
        await asyncio.to_thread(self.metrics.stop)
        if self.owned_tracer_provider is not None:
            await asyncio.to_thread(self.owned_tracer_provider.shutdown)
        if self.owns_runtime:
            await self.runtime.aclose()


async def create_server(
    settings: Settings,
    runtime: Runtime | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
) -> XlingServer:
    """Loads the models (unless ``runtime`` is given), binds and starts serving.

    Spans go to ``tracer_provider`` when given, else to the exporter the
    settings name (``otel_exporter``), else nowhere.
    """
    keys = KeyRing.from_settings(settings)
    limiter = RateLimiter.from_settings(settings)
    certificates = None
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        certificates = CertificateFiles(
            settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
        )
    owned_tracer_provider = None
    if tracer_provider is None:
        tracer_provider = owned_tracer_provider = tracing.create_provider(settings)
    owns_runtime = runtime is None
    runtime = runtime or await Runtime.start(settings)
    metrics = Metrics()
    metrics.watch(runtime)
    interceptors: list[grpc.aio.ServerInterceptor] = []
    if tracer_provider is not None:
        # First, so that its span covers the whole call.
        interceptors.append(aio_server_interceptor(tracer_provider=tracer_provider))
    interceptors.append(
        RequestContextInterceptor(
            metrics=metrics,
            keys=keys,
            limiter=limiter,
            tracer=tracer_provider.get_tracer(tracing.TRACER_NAME) if tracer_provider else None,
        )
    )
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
        ],
    )
    translation_pb2_grpc.add_TranslationServiceServicer_to_server(
        TranslationServicer(runtime), server
    )
    search_pb2_grpc.add_SearchServiceServicer_to_server(SearchServicer(runtime), server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME),
        server,
    )  # fmt: skip
    try:
        port = _listen(server, f"{settings.host}:{settings.port}", certificates)
        metrics_port = None
        if settings.metrics_port is not None:
            metrics_port = metrics.serve(settings.host, settings.metrics_port)
    except ConfigurationError:
        if owns_runtime:
            await runtime.aclose()
        raise
    await server.start()
    for name in ("", *SERVICE_NAMES):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    return XlingServer(
        server, port, health, runtime, owns_runtime, metrics, metrics_port, owned_tracer_provider
    )


def _listen(server: grpc.aio.Server, address: str, certificates: CertificateFiles | None) -> int:
    try:
        if certificates is None:
            return server.add_insecure_port(address)
        return server.add_secure_port(address, certificates.credentials())
    except RuntimeError as exc:
        raise ConfigurationError("port", f"cannot listen on {address}: {exc}") from exc


async def serve(settings: Settings) -> None:
    """Runs until SIGTERM or SIGINT, then drains gracefully."""
    configure_logging(settings.log_level, settings.log_format)
    xling_server = await create_server(settings)
    log.info(
        "serving",
        extra={
            "address": f"{settings.host}:{xling_server.port}",
            "tls": settings.tls_cert_file is not None,
            "mutual_tls": settings.tls_client_ca_file is not None,
            "metrics_port": xling_server.metrics_port,
        },
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("draining", extra={"grace_period_s": settings.grace_period_s})
    await xling_server.stop(settings.grace_period_s)
    log.info("stopped")
