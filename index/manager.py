"""The async face of the search storage: named collections, their lifecycle,
snapshots, and publication to read-only replicas.

Roles:

- ``single``: one server owns ``root``; collections are read and written there.
- ``writer``: as ``single``, and after writes (debounced) publishes each
  changed collection as a new version under ``snapshot_dir``.
- ``replica``: read-only; serves the newest published version of every
  collection under ``snapshot_dir`` and polls for newer ones. Writes raise
  ``Unimplemented`` (UNIMPLEMENTED: not a retryable condition; send writes to
  the writer).

Every FAISS, SQLite and BM25 call runs through the ``BlockingExecutor``.
FAISS searches there use ``search_threads`` OpenMP threads (default 1: on a
busy host two threads made single queries 30-70x slower, and concurrent
searches already run on several workers); index builds use
``OMP_NUM_THREADS``, which OpenMP reads for each thread by itself.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np

from xling.index.collection import Collection, CollectionClosed
from xling.index.embedders.base import Embedder
from xling.index.ingest import prepare_records
from xling.index.models import ChunkHit, CollectionInfo, DocumentInput, IndexSettings
from xling.index.snapshots import published_versions, version_seq
from xling.index.store import STORE_FILE, MissingCollection
from xling.service.errors import (
    ConfigurationError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
    Unimplemented,
)
from xling.service.executor import BlockingExecutor

__all__ = [
    "COLLECTION_NAME_PATTERN",
    "ChunkHit",
    "CollectionInfo",
    "CollectionManager",
    "DocumentInput",
    "Role",
]

logger = logging.getLogger(__name__)

Role = Literal["single", "writer", "replica"]
T = TypeVar("T")

# Collection names become directory names: no separators, no leading dot.
COLLECTION_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Snapshot once this many chunks changed, or a tenth of the collection if
# more: a restart then replays at most that many vectors from SQLite.
SNAPSHOT_MIN_CHANGES = 1_000


class CollectionManager:
    """Collections of chunked, embedded documents with dense and lexical search.

    Usage::

        manager = CollectionManager(data_dir / "collections", embedder, executor)
        await manager.start()
        await manager.index("default", [DocumentInput("a", "Le chat dort.", language_code="fr")])
        query = (await embedder.embed_queries(["sleeping cat"]))[0]
        hits = await manager.dense_search("default", query, 10, language_codes=["fr"])
        await manager.close()
    """

    def __init__(
        self,
        root: Path,
        embedder: Embedder,
        executor: BlockingExecutor,
        *,
        chunk_chars: int = 800,
        chunk_overlap: int = 100,
        ivf_threshold: int = 50_000,
        ivf_nlist: int | None = None,
        ivf_nprobe: int = 16,
        search_threads: int = 1,
        role: Role = "single",
        snapshot_dir: Path | None = None,
        reload_interval_s: float = 5.0,
        publish_delay_s: float = 1.0,
        max_collections: int | None = None,
    ) -> None:
        if role not in ("single", "writer", "replica"):
            raise ConfigurationError("index_role", f"unknown role {role!r}")
        if role != "single" and snapshot_dir is None:
            raise ConfigurationError("snapshot_dir", f"role {role!r} needs a snapshot directory")
        if chunk_chars < 1:
            raise ConfigurationError("chunk_chars", "must be at least 1")
        if not 0 <= chunk_overlap < chunk_chars:
            raise ConfigurationError("chunk_overlap", "must be at least 0 and below chunk_chars")
        for setting, value, minimum in (
            ("ivf_threshold", ivf_threshold, 0),
            ("ivf_nprobe", ivf_nprobe, 1),
            ("ivf_nlist", 1 if ivf_nlist is None else ivf_nlist, 1),
            ("search_threads", search_threads, 1),
        ):
            if value < minimum:
                raise ConfigurationError(setting, f"must be at least {minimum}, got {value}")
        self._root = root
        self._embedder = embedder
        self._executor = executor
        self._chunk_chars = chunk_chars
        self._chunk_overlap = chunk_overlap
        self._settings = IndexSettings(ivf_threshold, ivf_nlist, ivf_nprobe, search_threads)
        self._role = role
        self._snapshot_dir = snapshot_dir or root  # only writers and replicas use it
        self._reload_interval_s = reload_interval_s
        self._publish_delay_s = publish_delay_s
        self._max_collections = max_collections
        self._collections: dict[str, Collection] = {}
        self._versions: dict[str, str] = {}  # replica: the version loaded per collection
        self._published: dict[str, int] = {}  # writer: change_seq last published
        self._create_lock = asyncio.Lock()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        """Opens the collections (replicas: their newest published versions),
        repairing any index that disagrees with its store."""
        if self._role == "replica":
            await self._reload(at_start=True)
            self._spawn("reload", self._reload_forever)
            return
        for directory in await self._executor.run(_local_collections, self._root):
            await self._open(directory)
        if self._role == "writer":
            published = await self._executor.run(
                published_versions, self._snapshot_dir, COLLECTION_NAME_PATTERN
            )
            for name, version in published.items():
                self._published[name] = version_seq(version)
        for collection in self._collections.values():
            if collection.snapshot_seq != collection.change_seq:
                self._spawn(f"snapshot:{collection.name}", lambda c=collection: self._snapshot(c))
            if self._role == "writer":
                self._schedule_publish(collection)

    async def _open(self, directory: Path) -> None:
        try:
            collection = await self._executor.run(
                Collection.open,
                directory,
                self._settings,
                name=directory.name,
                embedder=self._embedder.name,
                dimension=self._embedder.dimension,
            )
        except MissingCollection:
            logger.warning("skipping %s: its creation was interrupted", directory)
            return
        self._collections[collection.name] = collection
        logger.info("opened collection %s: %d chunks", collection.name, collection.size)
        self._warm_lexical(collection)

    async def index(self, collection: str, documents: Sequence[DocumentInput]) -> tuple[int, int]:
        """Chunks, embeds and stores documents, replacing those with the same
        id (the last wins within one call). Durable when it returns. Returns
        (documents indexed, chunks created)."""
        self._check_writable()
        check_collection_name(collection)
        records = await prepare_records(
            documents,
            self._embedder,
            self._executor,
            chunk_chars=self._chunk_chars,
            chunk_overlap=self._chunk_overlap,
        )
        if not records:
            return 0, 0
        target = await self._get_or_create(collection)
        added = await self._write(target, Collection.write, records)
        return len(records), added

    async def delete(self, collection: str, ids: Sequence[str]) -> int:
        """Deletes documents by id; returns how many existed. Durable when it returns."""
        self._check_writable()
        return await self._write(self._get(collection), Collection.delete, list(ids))

    async def dense_search(
        self,
        collection: str,
        query_vector: np.ndarray,
        k: int,
        *,
        language_codes: Sequence[str] = (),
        metadata_filter: Mapping[str, str] | None = None,
    ) -> list[ChunkHit]:
        """The ``k`` chunks nearest to ``query_vector`` (embed_queries output,
        one row), best first, score = cosine similarity."""
        return await self._read(
            collection,
            Collection.dense_search,
            query_vector,
            k,
            language_codes=language_codes,
            metadata_filter=metadata_filter,
        )

    async def lexical_search(
        self,
        collection: str,
        query: str,
        k: int,
        *,
        language_codes: Sequence[str] = (),
        metadata_filter: Mapping[str, str] | None = None,
    ) -> list[ChunkHit]:
        """The ``k`` chunks with the best BM25 score for ``query``, best first."""
        return await self._read(
            collection,
            Collection.lexical_search,
            query,
            k,
            language_codes=language_codes,
            metadata_filter=metadata_filter,
        )

    async def info(self, collection: str) -> CollectionInfo:
        return await self._read(collection, Collection.info)

    async def close(self) -> None:
        """Finishes background work, saves snapshots (and, for a writer,
        publishes), then closes every collection."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        for collection in self._collections.values():
            try:
                if self._role != "replica" and collection.snapshot_seq != collection.change_seq:
                    await self._snapshot(collection)
                if self._role == "writer":
                    await self._publish_until_current(collection)
            except Exception:
                # The store holds every write; the next start catches up.
                logger.exception("could not save or publish %s at shutdown", collection.name)
            await self._executor.run(collection.close)
        self._collections.clear()

    def chunk_counts(self) -> dict[str, int]:
        """Chunks per collection; safe to call from any thread (metrics scrapes)."""
        return {name: collection.size for name, collection in dict(self._collections).items()}

    def _check_room(self, name: str) -> None:
        if self._max_collections is not None and len(self._collections) >= self._max_collections:
            raise ResourceExhausted(
                f"cannot create collection {name!r}: the server holds its maximum of "
                f"{self._max_collections} collections; index into an existing one",
                reason="MAX_COLLECTIONS",
            )

    def _check_writable(self) -> None:
        if self._role == "replica":
            raise Unimplemented(
                "this server is a read-only search replica: send writes to the writer"
            )
        if self._stopping.is_set():
            raise Unavailable("the search index is shutting down", retry_after_s=1.0)

    def _get(self, name: str) -> Collection:
        check_collection_name(name)
        if self._stopping.is_set():
            raise Unavailable("the search index is shutting down", retry_after_s=1.0)
        collection = self._collections.get(name)
        if collection is None:
            raise NotFound("collection", name)
        return collection

    async def _get_or_create(self, name: str) -> Collection:
        async with self._create_lock:
            collection = self._collections.get(name)
            if collection is None:
                self._check_room(name)
                collection = await self._executor.run(
                    Collection.create,
                    self._root / name,
                    self._settings,
                    embedder=self._embedder.name,
                    dimension=self._embedder.dimension,
                )
                self._collections[name] = collection
                logger.info("created collection %s", name)
        return collection

    async def _write(
        self, collection: Collection, method: Callable[..., int], *args: object
    ) -> int:
        try:
            result = await self._executor.run(method, collection, *args)
        except CollectionClosed as exc:
            raise Unavailable("the search index is shutting down", retry_after_s=1.0) from exc
        name = collection.name
        if collection.needs_rebuild():
            self._spawn(f"rebuild:{name}", lambda: self._executor.run(collection.rebuild))
        if collection.changes_since_snapshot >= max(SNAPSHOT_MIN_CHANGES, collection.size // 10):
            self._spawn(f"snapshot:{name}", lambda: self._snapshot(collection))
        if self._role == "writer":
            self._schedule_publish(collection)
        return result

    async def _read(
        self, name: str, method: Callable[..., T], *args: object, **kwargs: object
    ) -> T:
        try:
            return await self._executor.run(method, self._get(name), *args, **kwargs)
        except CollectionClosed:
            # A replica swapped in a newer version between lookup and job.
            return await self._executor.run(method, self._get(name), *args, **kwargs)

    async def _snapshot(self, collection: Collection) -> None:
        await self._executor.run(collection.write_snapshot, self._root / collection.name)

    def _schedule_publish(self, collection: Collection) -> None:
        if self._published.get(collection.name) != collection.change_seq:
            self._spawn(
                f"publish:{collection.name}", lambda: self._publish_until_current(collection)
            )

    async def _publish_until_current(self, collection: Collection) -> None:
        """Publishes at most once per ``publish_delay_s`` while writes go on,
        and once more at shutdown if needed."""
        while self._published.get(collection.name) != collection.change_seq:
            await self._sleep(self._publish_delay_s)
            self._published[collection.name] = await self._executor.run(
                collection.publish, self._snapshot_dir / collection.name
            )
            logger.info(
                "published %s at change %d", collection.name, self._published[collection.name]
            )

    async def _reload_forever(self) -> None:
        while not await self._sleep(self._reload_interval_s):
            try:
                await self._reload(at_start=False)
            except Exception:
                logger.exception("reloading published collections failed; retrying")

    async def _reload(self, *, at_start: bool) -> None:
        """Loads every collection whose ``CURRENT`` version changed."""
        published = await self._executor.run(
            published_versions, self._snapshot_dir, COLLECTION_NAME_PATTERN
        )
        for name, version in published.items():
            if version == self._versions.get(name):
                continue
            try:
                fresh = await self._executor.run(
                    Collection.open,
                    self._snapshot_dir / name / version,
                    self._settings,
                    name=name,
                    embedder=self._embedder.name,
                    dimension=self._embedder.dimension,
                    read_only=True,
                )
            except ConfigurationError:
                if at_start:
                    raise
                logger.exception("cannot load %s version %s", name, version)
                continue
            except (OSError, sqlite3.Error, ValueError, LookupError) as exc:
                # Typically pruned by the writer while we read: next poll.
                logger.warning("cannot load %s version %s yet: %s", name, version, exc)
                continue
            previous = self._collections.get(name)
            self._collections[name] = fresh
            self._versions[name] = version
            logger.info("loaded %s version %s: %d chunks", name, version, fresh.size)
            if previous is not None:
                fresh.adopt_lexical(await self._executor.run(previous.close))
            self._warm_lexical(fresh)

    def _warm_lexical(self, collection: Collection) -> None:
        self._spawn(
            f"lexical:{collection.name}", lambda: self._executor.run(collection.warm_lexical)
        )

    async def _sleep(self, seconds: float) -> bool:
        """Sleeps; True as soon as the manager is stopping."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    def _spawn(self, key: str, start: Callable[[], Awaitable[object]]) -> None:
        """Runs ``start()`` as a background task unless one with ``key`` runs."""
        if key in self._tasks or self._stopping.is_set():
            return

        async def run() -> None:
            try:
                await start()
            except Exception:
                logger.exception("background %s failed", key)
            finally:
                del self._tasks[key]

        self._tasks[key] = asyncio.get_running_loop().create_task(run(), name=key)


def _local_collections(root: Path) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    return [
        directory
        for directory in sorted(root.iterdir())
        if COLLECTION_NAME_PATTERN.fullmatch(directory.name) and (directory / STORE_FILE).is_file()
    ]


def check_collection_name(name: str) -> None:
    if not COLLECTION_NAME_PATTERN.fullmatch(name):
        rule = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        raise InvalidArgument([("collection", rule)])
