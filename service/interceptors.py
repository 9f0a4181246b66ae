"""Cross-cutting work around every RPC: request ids, API keys, rate limits,
logs, metrics and error mapping.

The one place where exceptions become gRPC statuses: ``XlingError`` keeps its
code and ``google.rpc`` details; anything else is logged with its traceback
and answered INTERNAL with the request id, never UNKNOWN with a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import text_format
from google.protobuf.message import DecodeError
from grpc_status import rpc_status
from opentelemetry import trace

from xling.service import metrics, tracing
from xling.service.auth import ANONYMOUS, PUBLIC_PREFIXES, KeyRing
from xling.service.errors import (
    DeadlineExceeded,
    InvalidArgument,
    Unauthenticated,
    XlingError,
    to_rpc_status,
)
from xling.service.logs import key_name_var, request_id_var
from xling.service.metrics import Metrics
from xling.service.ratelimit import RateLimiter

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
_MAX_REQUEST_ID = 128


def _request_id(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str:
    for key, value in metadata or ():
        if (
            key == REQUEST_ID_HEADER
            and isinstance(value, str)
            and 0 < len(value) <= _MAX_REQUEST_ID
        ):
            return value
    return uuid.uuid4().hex


def _status(error: XlingError) -> tuple[grpc.StatusCode, str, Any]:
    """What ``context.abort`` takes for ``error`` (abort rather than
    abort_with_status: tracing's context wrapper records the code)."""
    status = rpc_status.to_status(to_rpc_status(error))
    return status.code, status.details, status.trailing_metadata


class RequestContextInterceptor(grpc.aio.ServerInterceptor):
    """Gives each call a request id and its key name, refuses calls without a
    valid key (when keys are configured) or over a rate limit, logs and counts
    the outcome, and maps errors to statuses.

    It also names the server's metrics and tracer for the call, so that code
    deep in the call records into this server's (see ``metrics``, ``tracing``).
    """

    def __init__(
        self,
        *,
        metrics: Metrics,
        keys: KeyRing | None = None,
        limiter: RateLimiter | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self._metrics = metrics
        self._keys = keys
        self._limiter = limiter
        self._tracer = tracer

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            # Health's Watch and reflection stream: public, and they raise no XlingError.
            return handler
        method = handler_call_details.method
        metadata = handler_call_details.invocation_metadata
        request_id = _request_id(metadata)
        public = method.startswith(PUBLIC_PREFIXES)
        key = ANONYMOUS if self._keys is None else self._keys.identify(metadata)
        behavior = handler.unary_unary

        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            # Each call runs in a task of its own, whose context these do not outlive.
            request_id_var.set(request_id)
            key_name_var.set(key or ANONYMOUS)
            metrics.current.set(self._metrics)
            tracing.current.set(self._tracer)
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            failure: tuple[grpc.StatusCode, str, Any] | None = None
            in_flight = self._metrics.rpcs_in_flight.labels(method)
            in_flight.inc()
            try:
                await context.send_initial_metadata(((REQUEST_ID_HEADER, request_id),))
                if key is None and not public:
                    raise Unauthenticated(
                        "a valid API key is required: send 'authorization: Bearer KEY'"
                    )
                if isinstance(request, _Undecodable):
                    raise InvalidArgument([("request", request.reason)])
                if self._limiter is not None and key is not None and not public:
                    self._limiter.check(key, request)
                if log.isEnabledFor(logging.DEBUG):
                    text = text_format.MessageToString(request, as_one_line=True)
                    log.debug("request", extra={"method": method, "request": text})
                return await behavior(request, context)
            except XlingError as error:
                failure = _status(error)
            except TimeoutError as exc:
                message = f"deadline exceeded: {exc}" if str(exc) else "deadline exceeded"
                failure = _status(DeadlineExceeded(message))
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except Exception:
                log.exception("unhandled error in %s", method)
                failure = (
                    grpc.StatusCode.INTERNAL,
                    f"internal error; request id {request_id}",
                    (),
                )
            finally:
                # Counted before the status goes out, so that a scrape made
                # after the caller saw the error includes it.
                code = failure[0] if failure else code
                latency_s = time.perf_counter() - started
                in_flight.dec()
                self._metrics.rpcs.labels(method, code.name, key or ANONYMOUS).inc()
                self._metrics.rpc_seconds.labels(method, code.name).observe(latency_s)
                log.info(
                    "rpc",
                    extra={
                        "method": method,
                        "code": code.name,
                        "latency_ms": round(latency_s * 1000, 2),
                    },
                )
            await context.abort(*failure)

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )


@dataclass(frozen=True, slots=True)
class _Undecodable:
    reason: str


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """A deserializer that turns bytes that do not parse (invalid UTF-8 in a
    string field, a truncated message) into a value the call answers with
    INVALID_ARGUMENT; grpcio would otherwise end the call UNKNOWN."""
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError as exc:
            return _Undecodable(f"is not a valid protobuf message: {exc}")

    return parse
