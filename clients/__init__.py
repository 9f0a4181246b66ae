"""Python client of xling, its CLI and the batch runner.

Import from here: ``from xling.clients import Client, XlingError``.
"""

from xling.clients._client import Client, TLSConfig
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
    "Client",
    "DeadlineExceeded",
    "InvalidArgument",
    "NotFound",
    "RateLimited",
    "TLSConfig",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "XlingError",
]
