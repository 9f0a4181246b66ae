"""Collections in PostgreSQL with pgvector: the stateless search backend.

The database is the only state: any number of servers index into and search
the same collections, a write is durable once its transaction commits, and
nothing is published or reloaded. Each collection has its own tables (see
``schema``): documents, and chunks with their vector (HNSW, cosine), the
lexical tokenizer's words (``tsvector``, GIN) and their document's language,
title and metadata, so filters are plain ``WHERE`` clauses beside the vector
order. pgvector's iterative index scan keeps filtered searches complete: the
HNSW walk goes on until ``k`` rows pass the filter.

Writes to one collection hold its registry row (``FOR UPDATE``), so
concurrent upserts of one document from two servers serialize instead of
interleaving. Losing the database raises ``Unavailable``; the pool replaces
its connections, so service resumes by itself when the database is back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import numpy as np
from pgvector.asyncpg import register_vector

from xling.index import vectors
from xling.index.embedders.base import Embedder
from xling.index.ingest import prepare_records
from xling.index.manager import check_collection_name
from xling.index.models import ChunkHit, CollectionInfo, DocumentInput
from xling.index.postgres import schema
from xling.index.postgres.text_search import passage_tsvector, query_tsquery
from xling.index.store import DocumentRecord
from xling.service.errors import (
    ConfigurationError,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from xling.service.executor import BlockingExecutor

logger = logging.getLogger(__name__)

# Errors that mean the database is out of reach, not that a statement is wrong.
_CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.exceptions.OperatorInterventionError,
)
_RETRY_AFTER_S = 1.0

# Statements over one collection's tables (schema.statement fills the names);
# the WHERE clauses are fixed text from _filters, every value a parameter.
_DENSE = (
    "SELECT chunk_id, doc_id, text, title, language_code, metadata, 1 - (embedding <=> $1) "
    "FROM {chunks} {where} ORDER BY embedding <=> $1 LIMIT $2"
)
_LEXICAL = (
    "SELECT chunk_id, doc_id, text, title, language_code, metadata, "
    "ts_rank(lexemes, $1::tsquery) AS rank "
    "FROM {chunks} {where} ORDER BY rank DESC, chunk_id LIMIT $2"
)
_INSERT_DOCUMENTS = "INSERT INTO {documents} VALUES ($1, $2, $3, $4)"
_INSERT_CHUNKS = (
    "INSERT INTO {chunks} (doc_id, chunk_index, text, title, language_code, metadata, "
    "embedding, lexemes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::tsvector)"
)
_DELETE_CHUNKS = "DELETE FROM {chunks} WHERE doc_id = ANY($1)"
_DELETE_DOCUMENTS = "DELETE FROM {documents} WHERE doc_id = ANY($1)"
_LANGUAGES = "SELECT language_code, count(*) FROM {documents} GROUP BY language_code"


@dataclass(frozen=True)
class _Collection:
    id: int
    name: str
    embedder: str
    dimension: int


class PgvectorCollections:
    """Named collections in one PostgreSQL database.

    Usage::

        collections = PgvectorCollections("postgresql://xling@db/xling", embedder, executor)
        await collections.start()
        await collections.index("default", [DocumentInput("a", "Le chat dort.", "", "fr")])
        query = (await embedder.embed_queries(["sleeping cat"]))[0]
        hits = await collections.dense_search("default", query, 10, language_codes=["fr"])
        await collections.close()
    """

    def __init__(
        self,
        dsn: str,
        embedder: Embedder,
        executor: BlockingExecutor,
        *,
        chunk_chars: int = 800,
        chunk_overlap: int = 100,
        pool_size: int = 4,
        ef_search: int = 100,
        max_collections: int | None = None,
        connect_timeout_s: float = 10.0,
    ) -> None:
        if chunk_chars < 1:
            raise ConfigurationError("chunk_chars", "must be at least 1")
        if not 0 <= chunk_overlap < chunk_chars:
            raise ConfigurationError("chunk_overlap", "must be at least 0 and below chunk_chars")
        if pool_size < 1:
            raise ConfigurationError("postgres_pool_size", "must be at least 1")
        self._dsn = dsn
        self._embedder = embedder
        self._executor = executor
        self._chunk_chars = chunk_chars
        self._chunk_overlap = chunk_overlap
        self._pool_size = pool_size
        self._ef_search = ef_search
        self._max_collections = max_collections
        self._connect_timeout_s = connect_timeout_s
        self._pool: asyncpg.Pool | None = None
        self._collections: dict[str, _Collection] = {}
        self._chunk_counts: dict[str, int] = {}

    async def start(self) -> None:
        """Migrates the schema, opens the pool and checks every collection's
        embedder; raises ``ConfigurationError`` when the database cannot serve."""
        try:
            connection = await asyncpg.connect(self._dsn, timeout=self._connect_timeout_s)
        except (*_CONNECTION_ERRORS, asyncpg.PostgresError, ValueError) as exc:
            raise ConfigurationError(
                "postgres_dsn", f"cannot connect to PostgreSQL: {exc}"
            ) from exc
        try:
            found = await schema.migrate(connection)
        finally:
            await connection.close()
        if found != schema.SCHEMA_VERSION:
            logger.info("migrated the xling schema from %d to %d", found, schema.SCHEMA_VERSION)
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=1,
            max_size=self._pool_size,
            timeout=self._connect_timeout_s,
            init=register_vector,
            server_settings={
                # Keep scanning the HNSW graph until LIMIT rows pass the filters.
                "hnsw.iterative_scan": "strict_order",
                "hnsw.ef_search": str(self._ef_search),
            },
        )
        try:
            rows = await self._pool.fetch(
                "SELECT id, name, embedder, dimension FROM xling_collections"
            )
            for row in rows:
                self._check_embedder(_Collection(*row))
            await self._refresh_counts()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def chunk_counts(self) -> dict[str, int]:
        """Chunks per collection as of this server's last write or info call."""
        return dict(self._chunk_counts)

    async def index(self, collection: str, documents: Sequence[DocumentInput]) -> tuple[int, int]:
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
        target = await self._get(collection, create=True)
        rows = await self._executor.run(_chunk_rows, records)
        async with self._transaction() as connection:
            await _hold(connection, target)
            deleted, removed = await _delete(connection, target, [r.doc_id for r in records])
            await connection.executemany(
                schema.statement(_INSERT_DOCUMENTS, target.id),
                [(r.doc_id, r.title, r.language_code, _json(r.metadata)) for r in records],
            )
            # One batch: a live HNSW index takes rows far faster in one transaction.
            await connection.executemany(
                schema.statement(_INSERT_CHUNKS, target.id),
                rows,
            )
            chunks = await _count(connection, target, len(records) - deleted, len(rows) - removed)
        self._chunk_counts[collection] = chunks
        return len(records), len(rows)

    async def delete(self, collection: str, ids: Sequence[str]) -> int:
        target = await self._get(collection)
        async with self._transaction() as connection:
            await _hold(connection, target)
            deleted, removed = await _delete(connection, target, list(ids))
            chunks = await _count(connection, target, -deleted, -removed)
        self._chunk_counts[collection] = chunks
        return deleted

    async def dense_search(
        self,
        collection: str,
        query_vector: np.ndarray,
        k: int,
        *,
        language_codes: Sequence[str] = (),
        metadata_filter: Mapping[str, str] | None = None,
    ) -> list[ChunkHit]:
        target = await self._get(collection)
        query = vectors.check_vectors(np.asarray(query_vector).reshape(1, -1), target.dimension)
        where, parameters = _filters(language_codes, metadata_filter, first=3)
        statement = schema.statement(_DENSE, target.id, where=where)
        return await self._hits(statement, query[0], k, *parameters)

    async def lexical_search(
        self,
        collection: str,
        query: str,
        k: int,
        *,
        language_codes: Sequence[str] = (),
        metadata_filter: Mapping[str, str] | None = None,
    ) -> list[ChunkHit]:
        target = await self._get(collection)
        tsquery = query_tsquery(query)
        if tsquery is None:
            return []
        where, parameters = _filters(language_codes, metadata_filter, first=3)
        where = f"{where} AND lexemes @@ $1::tsquery" if where else "WHERE lexemes @@ $1::tsquery"
        statement = schema.statement(_LEXICAL, target.id, where=where)
        return await self._hits(statement, tsquery, k, *parameters)

    async def info(self, collection: str) -> CollectionInfo:
        target = await self._get(collection)
        async with self._connection() as connection:
            row = await connection.fetchrow(
                "SELECT document_count, chunk_count FROM xling_collections WHERE id = $1",
                target.id,
            )
            languages = await connection.fetch(schema.statement(_LANGUAGES, target.id))
        self._chunk_counts[collection] = row["chunk_count"]
        return CollectionInfo(
            name=collection,
            document_count=row["document_count"],
            chunk_count=row["chunk_count"],
            dimension=target.dimension,
            index_type="hnsw",
            languages={code: count for code, count in languages},
            embedder=target.embedder,
        )

    async def _hits(self, statement: str, *parameters: object) -> list[ChunkHit]:
        async with self._connection() as connection:
            rows = await connection.fetch(statement, *parameters)
        return [
            ChunkHit(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), float(row[6]))
            for row in rows
        ]

    async def _get(self, name: str, *, create: bool = False) -> _Collection:
        """The collection named ``name``, looked up in the database when this
        server has not seen it (another server may have created it)."""
        check_collection_name(name)
        known = self._collections.get(name)
        if known is not None:
            return known
        async with self._connection() as connection:
            row = await connection.fetchrow(
                "SELECT id, name, embedder, dimension FROM xling_collections WHERE name = $1", name
            )
            if row is None and create:
                row = await self._create(connection, name)
        if row is None:
            raise NotFound("collection", name)
        collection = _Collection(*row)
        self._check_embedder(collection)
        self._collections[name] = collection
        return collection

    async def _create(self, connection: asyncpg.Connection, name: str) -> asyncpg.Record:
        async with connection.transaction():
            await schema.lock(connection)  # one creation at a time, on every server
            row = await connection.fetchrow(
                "SELECT id, name, embedder, dimension FROM xling_collections WHERE name = $1", name
            )
            if row is not None:
                return row
            count = await connection.fetchval("SELECT count(*) FROM xling_collections")
            if self._max_collections is not None and count >= self._max_collections:
                raise ResourceExhausted(
                    f"cannot create collection {name!r}: the database holds its maximum of "
                    f"{self._max_collections} collections; index into an existing one",
                    reason="MAX_COLLECTIONS",
                )
            row = await connection.fetchrow(
                "INSERT INTO xling_collections (name, embedder, dimension) VALUES ($1, $2, $3) "
                "RETURNING id, name, embedder, dimension",
                name,
                self._embedder.name,
                self._embedder.dimension,
            )
            await connection.execute(schema.collection_ddl(row["id"], row["dimension"]))
        logger.info("created collection %s", name)
        return row

    def _check_embedder(self, collection: _Collection) -> None:
        embedder, dimension = self._embedder.name, self._embedder.dimension
        if (collection.embedder, collection.dimension) != (embedder, dimension):
            raise ConfigurationError(
                "embedder",
                f"collection {collection.name!r} was indexed with embedder "
                f"{collection.embedder!r} ({collection.dimension} dimensions) but the server "
                f"runs {embedder!r} ({dimension} dimensions); configure "
                f"{collection.embedder!r} again, or index into a new database",
            )

    async def _refresh_counts(self) -> None:
        async with self._connection() as connection:
            rows = await connection.fetch("SELECT name, chunk_count FROM xling_collections")
        self._chunk_counts = {name: count for name, count in rows}

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; a lost database becomes ``Unavailable``."""
        if self._pool is None:
            raise Unavailable("the search index is not running", retry_after_s=_RETRY_AFTER_S)
        try:
            async with self._pool.acquire() as connection:
                yield connection
        except _CONNECTION_ERRORS as exc:
            # Idle connections died with the server: replace them all, so the
            # next call after its return does not meet another dead one.
            await self._pool.expire_connections()
            logger.warning("PostgreSQL is unreachable: %s", exc)
            raise Unavailable(
                "the search database is unreachable", retry_after_s=_RETRY_AFTER_S
            ) from exc

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._connection() as connection, connection.transaction():
            yield connection


async def _hold(connection: asyncpg.Connection, collection: _Collection) -> None:
    await connection.execute(
        "SELECT 1 FROM xling_collections WHERE id = $1 FOR UPDATE", collection.id
    )


async def _delete(
    connection: asyncpg.Connection, collection: _Collection, doc_ids: list[str]
) -> tuple[int, int]:
    """Deletes documents and their chunks; returns (documents, chunks) deleted."""
    chunks = await connection.execute(schema.statement(_DELETE_CHUNKS, collection.id), doc_ids)
    documents = await connection.execute(
        schema.statement(_DELETE_DOCUMENTS, collection.id), doc_ids
    )
    return _affected(documents), _affected(chunks)


async def _count(
    connection: asyncpg.Connection, collection: _Collection, documents: int, chunks: int
) -> int:
    """Adds to the collection's counts and change sequence; returns its chunk count."""
    return await connection.fetchval(
        "UPDATE xling_collections SET document_count = document_count + $2, "
        "chunk_count = chunk_count + $3, change_seq = change_seq + 1 WHERE id = $1 "
        "RETURNING chunk_count",
        collection.id,
        documents,
        chunks,
    )


def _affected(status: str) -> int:
    """The row count of a command tag such as ``DELETE 3``."""
    return int(status.rsplit(" ", 1)[-1])


def _json(metadata: Mapping[str, str]) -> str:
    return json.dumps(dict(metadata), ensure_ascii=False, sort_keys=True)


def _chunk_rows(records: Sequence[DocumentRecord]) -> list[tuple[object, ...]]:
    """Insert parameters per chunk (tokenizing is CPU work: run in the executor)."""
    return [
        (
            record.doc_id,
            position,
            text,
            record.title,
            record.language_code,
            _json(record.metadata),
            vector,
            passage_tsvector(text, record.language_code),
        )
        for record in records
        for position, (text, vector) in enumerate(
            zip(record.chunk_texts, record.vectors, strict=True)
        )
    ]


def _filters(
    language_codes: Sequence[str], metadata_filter: Mapping[str, str] | None, *, first: int
) -> tuple[str, list[object]]:
    """A ``WHERE`` clause and its parameters, numbered from ``$first``.

    Languages match as RFC 4647 basic filtering ("pt" matches "pt" and
    "pt-BR", any case); metadata needs every pair. Clauses are fixed text,
    every value a bound parameter.
    """
    clauses, parameters = [], []
    codes = [code.lower() for code in language_codes if code]
    if codes:
        prefixes = [
            code.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "-%"
            for code in codes
        ]
        clauses.append(
            f"(lower(language_code) = ANY(${first}) OR lower(language_code) LIKE ANY(${first + 1}))"
        )
        parameters += [codes, prefixes]
    if metadata_filter:
        clauses.append(f"metadata @> ${first + len(parameters)}::jsonb")
        parameters.append(_json(metadata_filter))
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), parameters
