"""Both search backends with the embedded USE model: CollectionManager (real FAISS and
SQLite) and PgvectorCollections (a real PostgreSQL); IVF tests are FAISS only."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from xling.index.backend import SearchIndex
from xling.index.embedders.base import Embedder
from xling.index.embedders.usem3 import USEEmbedder
from xling.index.lexical import tokenize
from xling.index.manager import CollectionManager, DocumentInput
from xling.service.errors import ConfigurationError, InvalidArgument, NotFound
from xling.service.executor import BlockingExecutor

from .index_backends import BACKENDS, Storage, new_storage


class HashEmbedder(Embedder):
    """A deterministic bag-of-words embedder: fast, for index mechanics only."""

    def __init__(self, name: str = "hash", dimension: int = 64) -> None:
        self.name = name
        self.dimension = dimension

    async def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts)

    async def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts)

    def _embed(self, texts: list[str]) -> np.ndarray:
        rows = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in zip(rows, texts, strict=True):
            for token in tokenize(text) or [""]:
                digest = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest())
                row[digest % self.dimension] += 1.0 if digest & 1 << 40 else -1.0
            row /= max(float(np.linalg.norm(row)), 1e-6)
        return rows


@pytest.fixture(scope="module")
def executor() -> Iterator[BlockingExecutor]:
    executor = BlockingExecutor(workers=4, queue_size=256)
    yield executor
    executor.shutdown()


@pytest.fixture(scope="module")
def use(executor: BlockingExecutor) -> USEEmbedder:
    return USEEmbedder(executor, threads=2)


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return new_storage(request, request.param, tmp_path)


@pytest.fixture
async def manager(
    storage: Storage, use: USEEmbedder, executor: BlockingExecutor
) -> AsyncIterator[SearchIndex]:
    manager = storage.open(use, executor, chunk_chars=120, chunk_overlap=20)
    await manager.start()
    yield manager
    await manager.close()


DOCUMENTS = [
    DocumentInput("cat-fr", "Le chat dort sur le canapé.", "Chat", "fr", {"topic": "pets"}),
    DocumentInput("bank-en", "The central bank raised interest rates again.", "Rates", "en",
                  {"topic": "finance"}),
    DocumentInput("tokyo-ja", "東京は日本の首都です。人口がとても多いです。", "東京", "ja",
                  {"topic": "cities"}),
    DocumentInput("cat-pt", "O gato está dormindo no sofá.", "Gato", "pt-BR", {"topic": "pets"}),
    DocumentInput("rio-pt", "O Rio de Janeiro tem praias famosas.", "Rio", "pt-PT",
                  {"topic": "cities"}),
]  # fmt: skip


async def query(embedder: Embedder, text: str) -> np.ndarray:
    return (await embedder.embed_queries([text]))[0]


@pytest.fixture(scope="module", params=BACKENDS)
async def indexed(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    use: USEEmbedder,
    executor: BlockingExecutor,
) -> AsyncIterator[SearchIndex]:
    """A search index with ``DOCUMENTS`` in collection "docs", for tests that only read."""
    storage = new_storage(request, request.param, tmp_path_factory.mktemp("indexed"))
    manager = storage.open(use, executor)
    await manager.start()
    await manager.index("docs", DOCUMENTS)
    yield manager
    await manager.close()


async def test_index_counts_documents_and_chunks(manager: SearchIndex) -> None:
    assert await manager.index("docs", DOCUMENTS) == (5, 5)


async def test_cross_lingual_dense_search(indexed: SearchIndex, use: USEEmbedder) -> None:
    hits = await indexed.dense_search("docs", await query(use, "a cat sleeping on a couch"), 3)

    assert {hit.document_id for hit in hits[:2]} == {"cat-fr", "cat-pt"}
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    first = hits[0]
    assert first.metadata == {"topic": "pets"} and first.title in {"Chat", "Gato"}
    assert first.text in {DOCUMENTS[0].text, DOCUMENTS[3].text}


async def test_lexical_search_in_cjk_and_latin(indexed: SearchIndex) -> None:
    japanese = await indexed.lexical_search("docs", "東京の人口", 5)
    english = await indexed.lexical_search("docs", "Interest RATES", 5)

    assert [hit.document_id for hit in japanese] == ["tokyo-ja"]
    assert [hit.document_id for hit in english] == ["bank-en"]
    assert english[0].language_code == "en" and english[0].score > 0


async def test_function_words_do_not_match_across_languages(indexed: SearchIndex) -> None:
    # "le", "la", "de" are stop words of the French and Portuguese passages.
    assert await indexed.lexical_search("docs", "le la de o", 10) == []
    hits = await indexed.lexical_search("docs", "¿Dónde duerme el gato?", 10)
    assert [hit.document_id for hit in hits] == ["cat-pt"]


@pytest.mark.parametrize(
    ("languages", "metadata", "expected"),
    [
        (["pt"], {}, {"cat-pt", "rio-pt"}),
        (["PT-br"], {}, {"cat-pt"}),
        (["fr", "ja"], {}, {"cat-fr", "tokyo-ja"}),
        ([], {"topic": "pets"}, {"cat-fr", "cat-pt"}),
        (["pt"], {"topic": "pets"}, {"cat-pt"}),
        (["de"], {}, set()),
        ([], {"topic": "pets", "missing": "key"}, set()),
    ],
)
async def test_filters_are_exact(
    indexed: SearchIndex,
    use: USEEmbedder,
    languages: list[str],
    metadata: dict[str, str],
    expected: set[str],
) -> None:
    vector = await query(use, "sleeping cat")

    dense = await indexed.dense_search(
        "docs", vector, 10, language_codes=languages, metadata_filter=metadata
    )
    lexical = await indexed.lexical_search(
        "docs", "gato chat 東京 bank Rio", 10, language_codes=languages, metadata_filter=metadata
    )

    assert {hit.document_id for hit in dense} == expected
    assert {hit.document_id for hit in lexical} == expected


async def test_filtered_searches_see_later_writes(manager: SearchIndex, use: USEEmbedder) -> None:
    await manager.index("docs", DOCUMENTS)
    vector = await query(use, "cat")

    async def portuguese() -> set[str]:
        hits = await manager.dense_search("docs", vector, 10, language_codes=["pt"])
        return {hit.document_id for hit in hits}

    assert await portuguese() == {"cat-pt", "rio-pt"}
    await manager.index("docs", [DocumentInput("new-pt", "Um cão novo.", "", "pt")])
    assert await portuguese() == {"cat-pt", "rio-pt", "new-pt"}
    await manager.delete("docs", ["cat-pt"])
    assert await portuguese() == {"rio-pt", "new-pt"}


async def test_upsert_replaces_all_chunks_of_a_document(manager: SearchIndex) -> None:
    long_text = " ".join(f"Sentence {i} talks about the old harbour." for i in range(12))
    old = DocumentInput("a", long_text, language_code="en")
    new = DocumentInput("a", "A new mountain text.", "New", "en")

    indexed, chunks = await manager.index("docs", [old])
    assert indexed == 1 and chunks > 3
    assert await manager.index("docs", [new]) == (1, 1)

    info = await manager.info("docs")
    assert (info.document_count, info.chunk_count) == (1, 1)
    assert await manager.lexical_search("docs", "harbour", 10) == []
    assert [hit.title for hit in await manager.lexical_search("docs", "mountain", 10)] == ["New"]


async def test_duplicate_ids_in_one_call_keep_the_last(manager: SearchIndex) -> None:
    documents = [DocumentInput("a", "first version"), DocumentInput("a", "second version")]

    assert await manager.index("docs", documents) == (1, 1)
    hits = await manager.lexical_search("docs", "version", 5)
    assert [hit.text for hit in hits] == ["second version"]


async def test_delete(manager: SearchIndex, use: USEEmbedder) -> None:
    await manager.index("docs", DOCUMENTS)

    assert await manager.delete("docs", ["cat-fr", "cat-pt", "no-such-id"]) == 2
    assert await manager.delete("docs", ["cat-fr"]) == 0

    hits = await manager.dense_search("docs", await query(use, "cat"), 10)
    assert {hit.document_id for hit in hits} == {"bank-en", "tokyo-ja", "rio-pt"}
    assert (await manager.info("docs")).document_count == 3


async def test_stats(manager: SearchIndex) -> None:
    await manager.index("docs", [*DOCUMENTS, DocumentInput("empty", "", language_code="en")])

    info = await manager.info("docs")

    assert info.name == "docs"
    assert (info.document_count, info.chunk_count) == (6, 5)
    index_type = "flat" if isinstance(manager, CollectionManager) else "hnsw"
    assert (info.dimension, info.index_type, info.embedder) == (512, index_type, "usem3")
    assert info.languages == {"fr": 1, "en": 2, "ja": 1, "pt-BR": 1, "pt-PT": 1}


async def test_unknown_and_invalid_collections(manager: SearchIndex) -> None:
    for call in (
        manager.info("nope"),
        manager.delete("nope", ["a"]),
        manager.lexical_search("nope", "x", 3),
        manager.dense_search("nope", np.zeros(512, np.float32), 3),
    ):
        with pytest.raises(NotFound):
            await call
    with pytest.raises(InvalidArgument):
        await manager.index("../escape", DOCUMENTS)


async def test_a_collection_refuses_another_embedder(
    storage: Storage, use: USEEmbedder, executor: BlockingExecutor
) -> None:
    first = storage.open(use, executor)
    await first.start()
    await first.index("docs", DOCUMENTS[:1])
    await first.close()

    second = storage.open(HashEmbedder("e5", 768), executor)
    with pytest.raises(ConfigurationError) as raised:
        await second.start()

    assert raised.value.setting == "embedder"
    assert "'usem3' (512 dimensions)" in str(raised.value)
    assert "'e5' (768 dimensions)" in str(raised.value)


async def test_concurrent_searches_see_whole_writes(manager: SearchIndex, use: USEEmbedder) -> None:
    def version(tag: str) -> DocumentInput:
        sentences = (f"Version {tag} sentence {i} about rivers." for i in range(5))
        return DocumentInput("x", " ".join(sentences), language_code="en")

    # Same-length tags chunk alike: every whole state has the same chunk count.
    _, chunk_count = await manager.index("docs", [version("alpha"), *DOCUMENTS[:4]])
    vector = await query(use, "rivers")
    seen: set[frozenset[str]] = set()
    writing = True

    async def write() -> None:
        nonlocal writing
        for round_ in range(8):
            await manager.index("docs", [version("omega" if round_ % 2 == 0 else "alpha")])
        writing = False

    async def search() -> None:
        while writing:
            for hits in (
                await manager.dense_search("docs", vector, 50),
                await manager.lexical_search("docs", "rivers", 50),
            ):
                texts = [hit.text for hit in hits if hit.document_id == "x"]
                tags = frozenset(re.findall(r"Version (\w+)", " ".join(texts)))
                assert len(texts) == chunk_count - 4 and len(tags) == 1, texts
                seen.add(tags)

    await asyncio.gather(write(), *(search() for _ in range(4)))

    assert seen == {frozenset({"alpha"}), frozenset({"omega"})}


@pytest.fixture
async def ivf_manager(
    tmp_path: Path, executor: BlockingExecutor
) -> AsyncIterator[CollectionManager]:
    manager = CollectionManager(tmp_path, HashEmbedder(), executor, ivf_threshold=100, ivf_nprobe=1)
    await manager.start()
    yield manager
    await manager.close()


async def wait_for_index_type(manager: SearchIndex, expected: str) -> None:
    for _ in range(200):
        if (await manager.info("docs")).index_type == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"index never became {expected}")


async def test_the_index_becomes_ivf_past_the_threshold_and_filters_stay_exact(
    ivf_manager: CollectionManager,
) -> None:
    languages = ["en", "de", "fr", "es"]
    documents = [
        DocumentInput(f"d{i}", f"document {i} word{i % 17} word{i % 5}", "", languages[i % 4],
                      {"bucket": str(i % 40)})
        for i in range(300)
    ]  # fmt: skip
    await ivf_manager.index("docs", documents[:90])
    assert (await ivf_manager.info("docs")).index_type == "flat"

    await ivf_manager.index("docs", documents[90:])
    await wait_for_index_type(ivf_manager, "ivf")

    vector = (await HashEmbedder().embed_queries(["word3 word1"]))[0]
    # A filter leaving fewer hits than the probed list holds: all are found.
    hits = await ivf_manager.dense_search("docs", vector, 10, metadata_filter={"bucket": "7"})
    assert sorted(hit.document_id for hit in hits) == sorted(
        d.id for d in documents if d.metadata["bucket"] == "7"
    )
    hits = await ivf_manager.dense_search("docs", vector, 20, language_codes=["de"])
    assert len(hits) == 20 and {hit.language_code for hit in hits} == {"de"}

    await ivf_manager.delete("docs", [d.id for d in documents[40:]])
    await wait_for_index_type(ivf_manager, "flat")
    assert (await ivf_manager.info("docs")).chunk_count == 40
