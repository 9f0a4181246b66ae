"""Files that survive a crash: atomic replacement and durable renames.

Shared by the index (snapshots, FAISS files), the embedded model assembly and
the batch client's checkpoint; it imports nothing beyond the standard library
so the client stays light.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path

# Temporary files start with this, so a sweep after a crash can find them.
TEMPORARY_PREFIX = ".tmp-"


def write_atomically(path: Path, data: bytes | Iterable[bytes]) -> None:
    """Replaces ``path`` with ``data`` (bytes, or chunks of them): after a crash
    it holds the old bytes or the new ones, never a mix."""
    temporary = path.with_name(f"{TEMPORARY_PREFIX}{path.name}.{uuid.uuid4().hex}")
    try:
        with open(temporary, "wb") as file:
            for chunk in [data] if isinstance(data, bytes) else data:
                file.write(chunk)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_directory(path.parent)


def fsync_directory(path: Path) -> None:
    """Makes renames and new files in ``path`` durable."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
