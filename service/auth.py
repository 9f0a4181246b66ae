"""API keys, each with a name that logs and metrics show instead of the key.

Keys come from ``XLING_API_KEYS`` (comma-separated) and ``XLING_API_KEYS_FILE``
(one a line), each written ``NAME:KEY`` or as a bare ``KEY``, which is named
``key-`` and the first 8 hex digits of its SHA-256. Only the digests are kept,
compared in constant time. Callers send ``authorization: Bearer KEY``; health
and reflection need no key. Keys never reach logs or error messages.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from xling.service.config import Settings
from xling.service.errors import ConfigurationError

# Probes and grpcurl's discovery must work without a key.
PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
# The key name of calls that present no valid key: all calls when no keys are configured.
ANONYMOUS = "anonymous"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    digest: bytes = field(repr=False)


def parse_key(entry: str) -> ApiKey:
    """``NAME:KEY``, or a bare key that gets a name derived from its digest.

    A key that itself holds ':' must be given with a name.
    """
    name, separator, key = entry.partition(":")
    if separator and _NAME.fullmatch(name) and key:
        return ApiKey(name, _digest(key))
    digest = _digest(entry)
    return ApiKey(f"key-{digest.hex()[:8]}", digest)


class KeyRing:
    """The configured keys; ``identify`` names the key a call presents."""

    def __init__(self, keys: Sequence[ApiKey]) -> None:
        names = [key.name for key in keys]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigurationError("api_keys", f"key names must be unique: {duplicates}")
        if len({key.digest for key in keys}) != len(keys):
            raise ConfigurationError("api_keys", "the same key is configured twice")
        self.keys = tuple(keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing | None:
        """The keys of the settings; None when there are none (no authentication)."""
        entries = [secret.get_secret_value() for secret in settings.api_keys]
        if settings.api_keys_file is not None:
            try:
                lines = settings.api_keys_file.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ConfigurationError(
                    "api_keys_file", f"cannot read the keys file: {exc}"
                ) from exc
            entries += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        return cls([parse_key(entry) for entry in entries]) if entries else None

    def identify(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
        """The name of the key in ``authorization: Bearer KEY``, or None."""
        for header, value in metadata or ():
            if header == "authorization" and isinstance(value, str):
                scheme, _, offered = value.partition(" ")
                if scheme != "Bearer":
                    return None
                digest = _digest(offered.strip())
                # Compare with every key so timing does not reveal which one matched.
                matches = [key.name for key in self.keys if hmac.compare_digest(digest, key.digest)]
                return matches[0] if matches else None
        return None
