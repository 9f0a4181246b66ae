"""Typed configuration of the clients: TLS, retries, request limits.

These are values only; ``_base.BaseClient`` turns them into channel options
and the gRPC service config shared by both faces.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

DEFAULT_TARGET = "localhost:50051"
DEFAULT_TIMEOUT = 60.0
SERVICES = ("xling.v1.TranslationService", "xling.v1.SearchService")


@dataclass(frozen=True)
class TLSConfig:
    """Server verification and, for mutual TLS, the client's own certificate.

    Usage::

        tls = TLSConfig(Path("ca.pem"), Path("me.pem"), Path("me.key"))
        Client("xling.example.com:443", tls=tls)

    With no ``ca_cert`` the system's root certificates verify the server.
    ``server_name`` is the name the server's certificate must carry when it
    differs from the target's host (a target by IP address, a tunnel).
    """

    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key must be given together")

    def channel_options(self) -> list[tuple[str, Any]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: Path | None) -> bytes | None:
            return path.read_bytes() if path else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_cert),
            private_key=read(self.client_key),
            certificate_chain=read(self.client_cert),
        )


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How failed calls are retried, always within the call's deadline.

    UNAVAILABLE before the server answered (connection refused or reset, a
    server going away) is retried by gRPC itself, through the channel's
    service config, with exponential backoff; with ``round_robin`` the retry
    goes to the next address. Once a server has answered, gRPC retries
    nothing, so the client itself retries RESOURCE_EXHAUSTED and UNAVAILABLE
    that carry ``RetryInfo`` (a rate limit, a full queue, a model provider
    asking for patience), after the delay the server asks for, at most
    ``retry_info_retries`` times and only while the deadline leaves room for
    the wait.

    Usage::

        Client(target, retry=RetryPolicy(max_attempts=3, retry_info_retries=0))
        Client(target, retry=RetryPolicy.none())

    The defaults give up on an unreachable server after about 0.75 s.
    """

    max_attempts: int = 5  # gRPC caps retry attempts at 5
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 2.0
    backoff_multiplier: float = 2.0
    retry_info_retries: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= 5:
            raise ValueError(f"max_attempts must be 1 to 5; got {self.max_attempts}")
        if self.initial_backoff_s <= 0 or self.max_backoff_s < self.initial_backoff_s:
            raise ValueError("backoffs must be positive, max_backoff_s >= initial_backoff_s")
        if self.backoff_multiplier < 1 or self.retry_info_retries < 0:
            raise ValueError("backoff_multiplier must be >= 1 and retry_info_retries >= 0")

    @classmethod
    def none(cls) -> RetryPolicy:
        """Every call is attempted once."""
        return cls(max_attempts=1, retry_info_retries=0)


@dataclass(frozen=True, kw_only=True)
class Limits:
    """The server's request limits; larger requests are split to fit them.

    The defaults are the server's (``max_items``, ``max_request_chars``,
    ``max_message_bytes`` in its settings). A request over any of them is
    sent as several calls whose responses are joined in order; a single item
    too large for a call on its own is sent alone for the server to refuse.

    Usage::

        Client(target, limits=Limits(max_items=256))
        Client(target, limits=None)  # no splitting: the server judges every request
    """

    max_items: int = 1024
    max_request_chars: int = 500_000
    max_message_bytes: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        if min(self.max_items, self.max_request_chars, self.max_message_bytes) < 1:
            raise ValueError("limits must be positive")


DEFAULT_LIMITS = Limits()


def service_config(retry: RetryPolicy, load_balancing: str) -> str:
    """The channel's gRPC service config as JSON: load balancing and retries."""
    method: dict[str, Any] = {"name": [{"service": name} for name in SERVICES]}
    if retry.max_attempts > 1:
        method["retryPolicy"] = {
            "maxAttempts": retry.max_attempts,
            "initialBackoff": f"{retry.initial_backoff_s}s",
            "maxBackoff": f"{retry.max_backoff_s}s",
            "backoffMultiplier": retry.backoff_multiplier,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    config = {"loadBalancingConfig": [{load_balancing: {}}], "methodConfig": [method]}
    return json.dumps(config)


def channel_options(
    retry: RetryPolicy, load_balancing: str, max_message_bytes: int
) -> list[tuple[str, Any]]:
    backoff_ms = int(retry.initial_backoff_s * 1000)
    return [
        ("grpc.service_config", service_config(retry, load_balancing)),
        # Our config wins over one published in DNS TXT records.
        ("grpc.service_config_disable_resolution", 1),
        ("grpc.enable_retries", 1),
        # Reconnect as fast as calls retry, or retries meet a channel still backing off.
        ("grpc.initial_reconnect_backoff_ms", backoff_ms),
        ("grpc.max_reconnect_backoff_ms", int(retry.max_backoff_s * 1000)),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", -1),  # the server's limit decides, with a clear error
    ]
