"""What the search pipeline needs from search storage, and the choice of one.

Two implementations, picked by ``index_backend``:

- ``faiss`` (default): ``CollectionManager``, SQLite plus in-process FAISS and
  BM25 on local disk; scales out with a writer and snapshot replicas.
- ``pgvector``: ``PgvectorCollections``, every collection in PostgreSQL with
  pgvector; servers keep no state, so any number of them index and search.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from xling.index.embedders.base import Embedder
from xling.index.models import ChunkHit, CollectionInfo, DocumentInput
from xling.service.config import Settings
from xling.service.executor import BlockingExecutor


class SearchIndex(Protocol):
    """Named collections of chunked, embedded documents."""

    async def start(self) -> None:
        """Opens the storage; raises ``ConfigurationError`` when it cannot serve."""

    async def index(self, collection: str, documents: Sequence[DocumentInput]) -> tuple[int, int]:
        """Upserts documents (the last of one id wins), durable on return;
        creates the collection. Returns (documents indexed, chunks created)."""
        ...

    async def delete(self, collection: str, ids: Sequence[str]) -> int:
        """Deletes documents, durable on return; returns how many existed."""
        ...

    async def dense_search(
        self,
        collection: str,
        query_vector: np.ndarray,
        k: int,
        *,
        language_codes: Sequence[str] = (),
        metadata_filter: Mapping[str, str] | None = None,
    ) -> list[ChunkHit]:
        """The ``k`` chunks nearest to ``query_vector``, best first, score = cosine."""
        ...

    async def lexical_search(
        self,
        collection: str,
        query: str,
        k: int,
        *,
        language_codes: Sequence[str] = (),
        metadata_filter: Mapping[str, str] | None = None,
    ) -> list[ChunkHit]:
        """The ``k`` chunks sharing the most weighted words with ``query``, best first."""
        ...

    async def info(self, collection: str) -> CollectionInfo: ...

    async def close(self) -> None: ...

    def chunk_counts(self) -> dict[str, int]:
        """Chunks per collection, without I/O (metrics scrapes call it)."""
        ...


def create_search_index(
    settings: Settings, embedder: Embedder, executor: BlockingExecutor
) -> SearchIndex:
    """The backend that ``settings.index_backend`` names, not yet started."""
    chunking = {"chunk_chars": settings.chunk_chars, "chunk_overlap": settings.chunk_overlap}
    if settings.index_backend == "pgvector":
        from xling.index.postgres.collections import PgvectorCollections

        return PgvectorCollections(
            settings.resolved_postgres_dsn(),
            embedder,
            executor,
            pool_size=settings.postgres_pool_size or 2 * settings.workers,
            max_collections=settings.max_collections,
            **chunking,
        )
    from xling.index.manager import CollectionManager

    return CollectionManager(
        settings.data_dir / "collections",
        embedder,
        executor,
        ivf_threshold=settings.ivf_threshold,
        ivf_nlist=settings.ivf_nlist,
        ivf_nprobe=settings.ivf_nprobe,
        role=settings.index_role,
        snapshot_dir=settings.snapshot_dir,
        reload_interval_s=settings.snapshot_reload_s,
        max_collections=settings.max_collections,
        **chunking,
    )
