"""Files that must never be seen half-written: index snapshots and published versions.

An index snapshot is one file: a magic line, a JSON header line (the store's
``change_seq`` the index includes, the vector count, a SHA-256 of the
payload) and FAISS's serialized index. Files are written to a temporary name,
fsynced, renamed over the old one and the directory fsynced, so a crash
leaves either the old file or the new one; the checksum catches the rest
(a torn disk, a truncated copy), and ``load_index_snapshot`` turns any such
damage into "rebuild from the store".

A writer publishes each collection for replicas as versioned directories
under ``snapshot_dir/<collection>/``, each a consistent copy of the store and
an index snapshot, and points ``CURRENT`` at the newest with an atomic
rename. Older versions are kept a while for replicas still loading them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from xling.durable import TEMPORARY_PREFIX, fsync_directory, write_atomically
from xling.index.vectors import deserialize, index_ids

logger = logging.getLogger(__name__)

INDEX_FILE = "index.snapshot"
CURRENT_FILE = "CURRENT"
_MAGIC = b"xling-index-snapshot 1\n"


@dataclass(frozen=True)
class SnapshotHeader:
    change_seq: int
    count: int
    sha256: str


def encode_snapshot(payload: bytes, *, change_seq: int, count: int) -> bytes:
    header = SnapshotHeader(change_seq, count, hashlib.sha256(payload).hexdigest())
    return _MAGIC + json.dumps(header.__dict__).encode() + b"\n" + payload


def read_snapshot(path: Path) -> tuple[SnapshotHeader, bytes]:
    """The header and payload of a snapshot file. ``ValueError`` if it is not
    one or its payload does not match its checksum; ``FileNotFoundError`` if
    it is missing."""
    data = path.read_bytes()
    if not data.startswith(_MAGIC):
        raise ValueError(f"{path} is not an index snapshot")
    header_end = data.find(b"\n", len(_MAGIC))
    try:
        header = SnapshotHeader(**json.loads(data[len(_MAGIC) : header_end]))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} has a damaged header") from exc
    payload = data[header_end + 1 :]
    if hashlib.sha256(payload).hexdigest() != header.sha256:
        raise ValueError(f"{path} is damaged: checksum mismatch")
    return header, payload


def load_index_snapshot(
    path: Path, store_seq: int, dimension: int
) -> tuple[faiss.Index | None, int]:
    """The index saved at ``path`` and its change_seq, or (None, -1) when it
    is missing, damaged, or ahead of the store."""
    try:
        header, payload = read_snapshot(path)
        if header.change_seq > store_seq:
            raise ValueError(
                f"{path} is at change {header.change_seq}, ahead of the store at {store_seq}"
            )
        index = deserialize(payload, dimension=dimension)
        if index.ntotal != header.count or len(np.unique(index_ids(index))) != index.ntotal:
            raise ValueError(f"{path} holds {index.ntotal} vectors, expected {header.count}")
    except FileNotFoundError:
        return None, -1
    except ValueError as exc:
        logger.warning("rebuilding the index from the store: %s", exc)
        return None, -1
    return index, header.change_seq


def current_version(collection_dir: Path) -> str | None:
    """The version ``CURRENT`` names, or None before the first publication."""
    try:
        version = (collection_dir / CURRENT_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    return version or None


def publish_version(
    collection_dir: Path, version: str, fill: Callable[[Path], None], *, keep: int = 3
) -> None:
    """Creates version directory ``version`` (``fill`` writes its files into a
    temporary directory), points ``CURRENT`` at it, and prunes all but the
    newest ``keep`` versions."""
    collection_dir.mkdir(parents=True, exist_ok=True)
    temporary = collection_dir / f"{TEMPORARY_PREFIX}{version}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    try:
        fill(temporary)
        fsync_directory(temporary)
        os.replace(temporary, collection_dir / version)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    fsync_directory(collection_dir)
    write_atomically(collection_dir / CURRENT_FILE, f"{version}\n".encode())
    _prune(collection_dir, keep=keep)


def new_version_name(change_seq: int) -> str:
    """Sorts by sequence; the random suffix keeps names unique when a store
    restored from a backup reaches a sequence number again."""
    return f"v{change_seq:016d}-{uuid.uuid4().hex[:8]}"


def version_seq(version: str) -> int:
    return int(version[1:].split("-", 1)[0])


def remove_leftovers(directory: Path) -> None:
    """Deletes temporary files that a crash left behind in ``directory``.
    Only for the directory's single writer, when it is not writing."""
    for entry in directory.glob(f"{TEMPORARY_PREFIX}*"):
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _prune(collection_dir: Path, *, keep: int) -> None:
    remove_leftovers(collection_dir)
    versions = sorted(
        (entry for entry in collection_dir.iterdir() if entry.is_dir()),
        key=lambda entry: entry.stat().st_mtime,
    )
    current = current_version(collection_dir)
    for entry in versions[:-keep]:
        if entry.name != current:
            shutil.rmtree(entry, ignore_errors=True)


def published_versions(snapshot_dir: Path, name_pattern: re.Pattern[str]) -> dict[str, str]:
    """The version ``CURRENT`` names in each collection directory whose name
    matches ``name_pattern``."""
    if not snapshot_dir.is_dir():
        return {}
    versions = {}
    for directory in sorted(snapshot_dir.iterdir()):
        if directory.is_dir() and name_pattern.fullmatch(directory.name):
            version = current_version(directory)
            if version is not None:
                versions[directory.name] = version
    return versions
