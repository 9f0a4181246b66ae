"""API-key authentication for every RPC but health and reflection.

Keys come from ``XLING_API_KEYS`` and ``XLING_API_KEYS_FILE``; only their
SHA-256 digests are kept, compared in constant time. Callers send
``authorization: Bearer KEY``. Keys never reach logs or error messages.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable

import grpc
from grpc_status import rpc_status

from xling.service.config import Settings
from xling.service.errors import ConfigurationError, Unauthenticated, to_rpc_status

# Probes and grpcurl's discovery must work without a key.
PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def load_key_digests(settings: Settings) -> list[bytes]:
    keys = [secret.get_secret_value() for secret in settings.api_keys]
    if settings.api_keys_file is not None:
        try:
            lines = settings.api_keys_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigurationError("api_keys_file", f"cannot read the keys file: {exc}") from exc
        keys += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return [_digest(key) for key in keys]


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without a configured key with UNAUTHENTICATED."""

    def __init__(self, digests: list[bytes]) -> None:
        self._digests = digests

    def _authorized(self, metadata: tuple[tuple[str, str | bytes], ...] | None) -> bool:
        for key, value in metadata or ():
            if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
                offered = _digest(value.removeprefix("Bearer ").strip())
                # Check every key so timing does not reveal which one matched.
                matches = [hmac.compare_digest(offered, digest) for digest in self._digests]
                return any(matches)
        return False

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(PUBLIC_PREFIXES):
            return handler
        if self._authorized(handler_call_details.invocation_metadata):
            return handler

        async def refuse(request: object, context: grpc.aio.ServicerContext) -> None:
            error = Unauthenticated("a valid API key is required: send 'authorization: Bearer KEY'")
            await context.abort_with_status(rpc_status.to_status(to_rpc_status(error)))

        return grpc.unary_unary_rpc_method_handler(
            refuse,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
