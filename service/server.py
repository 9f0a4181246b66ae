"""The grpc.aio server: wiring of servicers, health, reflection and shutdown.

Usage in tests and embedding code::

    server = await create_server(load_settings(port=0))
    ...  # call 127.0.0.1:server.port
    await server.stop(grace_s=5)
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from xling.service.auth import ApiKeyInterceptor, load_key_digests
from xling.service.config import Settings
from xling.service.errors import ConfigurationError
from xling.service.interceptors import RequestContextInterceptor
from xling.service.logs import configure_logging
from xling.service.runtime import Runtime
from xling.service.servicers.search import SearchServicer
from xling.service.servicers.translation import TranslationServicer
from xling.v1 import search_pb2, search_pb2_grpc, translation_pb2, translation_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    translation_pb2.DESCRIPTOR.services_by_name["TranslationService"].full_name,
    search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name,
)


@dataclass
class XlingServer:
    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer
    runtime: Runtime
    owns_runtime: bool

    async def stop(self, grace_s: float) -> None:
        """Reports NOT_SERVING, lets in-flight calls finish for up to ``grace_s``
        while refusing new ones, then releases the models it loaded."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
        if self.owns_runtime:
            await self.runtime.aclose()


async def create_server(settings: Settings, runtime: Runtime | None = None) -> XlingServer:
    """Loads the models (unless ``runtime`` is given), binds and starts serving."""
    key_digests = load_key_digests(settings)
    owns_runtime = runtime is None
    runtime = runtime or await Runtime.start(settings)
    # The request context runs first so refused calls are logged with an id.
    interceptors: list[grpc.aio.ServerInterceptor] = [RequestContextInterceptor()]
    if key_digests:
        interceptors.append(ApiKeyInterceptor(key_digests))
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
    address = f"{settings.host}:{settings.port}"
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:
        if owns_runtime:
            await runtime.aclose()
        raise ConfigurationError("port", f"cannot listen on {address}: {exc}") from exc
    await server.start()
    for name in ("", *SERVICE_NAMES):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    return XlingServer(server, port, health, runtime, owns_runtime)


async def serve(settings: Settings) -> None:
    """Runs until SIGTERM or SIGINT, then drains gracefully."""
    configure_logging(settings.log_level, settings.log_format)
    xling_server = await create_server(settings)
    log.info("serving", extra={"address": f"{settings.host}:{xling_server.port}"})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("draining", extra={"grace_period_s": settings.grace_period_s})
    await xling_server.stop(settings.grace_period_s)
    log.info("stopped")
