"""Python client of xling, its CLI and the batch corpus translator.

Import from here::

    from xling.clients import AsyncClient, Client, RateLimited, XlingError

``Client`` blocks and ``AsyncClient`` awaits; both take the same options
(``timeout``, ``api_key``, ``tls``, ``retry``, ``limits``) and return the
protobuf messages of ``xling.v1``.
"""

from xling.clients._async_client import AsyncClient
from xling.clients._client import Client
from xling.clients._config import DEFAULT_TARGET, DEFAULT_TIMEOUT, Limits, RetryPolicy, TLSConfig
from xling.clients._errors import (
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    RateLimited,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    XlingError,
)

__all__ = [
    "DEFAULT_TARGET",
    "DEFAULT_TIMEOUT",
    "AsyncClient",
    "Client",
    "DeadlineExceeded",
    "InvalidArgument",
    "Limits",
    "NotFound",
    "RateLimited",
    "RetryPolicy",
    "TLSConfig",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "XlingError",
]
