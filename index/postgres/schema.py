"""The database layout of the pgvector backend and its versioned migrations.

``xling_schema`` holds the version; migration N (1-based) moves a database
from version N-1 to N inside one transaction, under an advisory lock so that
servers starting together migrate once. A server refuses a database whose
version is newer than the migrations it knows: an older release must not
write into a layout it does not understand.

Each collection gets its own pair of tables, named by its id, so its vector
column has the embedder's dimension and its HNSW index holds only its chunks.
"""

from __future__ import annotations

import asyncpg

from xling.service.errors import ConfigurationError

# The HNSW build parameters measured in docs/benchmarks.md (pgvector's defaults).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
_LOCK_KEY = 0x786C696E67  # "xling": the advisory lock of migrations and creations

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE EXTENSION IF NOT EXISTS vector;
    CREATE TABLE xling_collections (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name text NOT NULL UNIQUE,
        embedder text NOT NULL,
        dimension integer NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        change_seq bigint NOT NULL DEFAULT 0,
        document_count bigint NOT NULL DEFAULT 0,
        chunk_count bigint NOT NULL DEFAULT 0
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def documents_table(collection_id: int) -> str:
    return f"xling_documents_{collection_id}"


def chunks_table(collection_id: int) -> str:
    return f"xling_chunks_{collection_id}"


def statement(template: str, collection_id: int, **clauses: str) -> str:
    """``template`` with ``{documents}`` and ``{chunks}`` naming the tables of
    one collection (from its integer id) and fixed ``clauses`` filled in."""
    return template.format(
        documents=documents_table(collection_id), chunks=chunks_table(collection_id), **clauses
    )


def collection_ddl(collection_id: int, dimension: int) -> str:
    """The tables and indexes of one new collection (names from an integer id)."""
    documents, chunks = documents_table(collection_id), chunks_table(collection_id)
    return f"""
    CREATE TABLE {documents} (
        doc_id text PRIMARY KEY,
        title text NOT NULL,
        language_code text NOT NULL,
        metadata jsonb NOT NULL
    );
    CREATE TABLE {chunks} (
        chunk_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        doc_id text NOT NULL REFERENCES {documents} ON DELETE CASCADE,
        chunk_index integer NOT NULL,
        text text NOT NULL,
        title text NOT NULL,
        language_code text NOT NULL,
        metadata jsonb NOT NULL,
        embedding vector({int(dimension)}) NOT NULL,
        lexemes tsvector NOT NULL
    );
    CREATE INDEX ON {chunks} (doc_id);
    CREATE INDEX ON {chunks} (lower(language_code) text_pattern_ops);
    CREATE INDEX ON {chunks} USING gin (metadata jsonb_path_ops);
    CREATE INDEX ON {chunks} USING gin (lexemes);
    CREATE INDEX ON {chunks} USING hnsw (embedding vector_cosine_ops)
        WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION});
    """


async def lock(connection: asyncpg.Connection) -> None:
    """Serializes schema changes until the transaction ends."""
    await connection.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)


async def migrate(connection: asyncpg.Connection) -> int:
    """Brings the database to ``SCHEMA_VERSION``; returns the version found."""
    async with connection.transaction():
        await lock(connection)
        await connection.execute("CREATE TABLE IF NOT EXISTS xling_schema (version integer)")
        found = await connection.fetchval("SELECT max(version) FROM xling_schema") or 0
        if found > SCHEMA_VERSION:
            raise ConfigurationError(
                "postgres_dsn",
                f"the database's xling schema is version {found}, newer than this server "
                f"knows ({SCHEMA_VERSION}): run a release at least as new as the one that "
                "migrated it",
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            await connection.execute(MIGRATIONS[version - 1])
            await connection.execute("DELETE FROM xling_schema")
            await connection.execute("INSERT INTO xling_schema VALUES ($1)", version)
    return found
