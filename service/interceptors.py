"""Cross-cutting work around every RPC: request ids, logs, error mapping.

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
from typing import Any

import grpc
from grpc_status import rpc_status

from xling.service.errors import DeadlineExceeded, XlingError, to_rpc_status
from xling.service.logs import request_id_var

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


class RequestContextInterceptor(grpc.aio.ServerInterceptor):
    """Gives each call a request id, logs its outcome and maps its errors."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            # Health's Watch and reflection stream; they raise no XlingError.
            return handler
        method = handler_call_details.method
        request_id = _request_id(handler_call_details.invocation_metadata)
        behavior = handler.unary_unary

        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            token = request_id_var.set(request_id)
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                await context.send_initial_metadata(((REQUEST_ID_HEADER, request_id),))
                return await behavior(request, context)
            except XlingError as error:
                code = error.code
                await context.abort_with_status(rpc_status.to_status(to_rpc_status(error)))
            except TimeoutError as exc:
                code = grpc.StatusCode.DEADLINE_EXCEEDED
                error = DeadlineExceeded(
                    f"deadline exceeded: {exc}" if str(exc) else "deadline exceeded"
                )
                await context.abort_with_status(rpc_status.to_status(to_rpc_status(error)))
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except Exception:
                code = grpc.StatusCode.INTERNAL
                log.exception("unhandled error in %s", method)
                await context.abort(
                    grpc.StatusCode.INTERNAL, f"internal error; request id {request_id}"
                )
            finally:
                log.info(
                    "rpc",
                    extra={
                        "method": method,
                        "code": code.name,
                        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
                request_id_var.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
