"""A writer publishes versions; read-only replicas load and reload them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from xling.index.embedders.usem3 import USEEmbedder
from xling.index.manager import CollectionManager, DocumentInput
from xling.index.snapshots import CURRENT_FILE, current_version, version_seq
from xling.service.errors import ConfigurationError, NotFound, Unimplemented
from xling.service.executor import BlockingExecutor

DOCUMENTS = [
    DocumentInput("cat", "The cat sleeps on the sofa.", "Cat", "en", {"kind": "pet"}),
    DocumentInput("chat", "Le chat dort sur le canapé.", "Chat", "fr", {"kind": "pet"}),
    DocumentInput("bank", "Die Zentralbank erhöht die Zinsen.", "Bank", "de", {"kind": "money"}),
    DocumentInput("tokyo", "東京は日本の首都です。", "東京", "ja", {"kind": "city"}),
]


@pytest.fixture(scope="module")
def executor() -> Iterator[BlockingExecutor]:
    executor = BlockingExecutor(workers=4, queue_size=256)
    yield executor
    executor.shutdown()


@pytest.fixture(scope="module")
def use(executor: BlockingExecutor) -> USEEmbedder:
    return USEEmbedder(executor, threads=2)


@pytest.fixture
async def writer(tmp_path: Path, use, executor) -> AsyncIterator[CollectionManager]:
    manager = CollectionManager(
        tmp_path / "writer",
        use,
        executor,
        role="writer",
        snapshot_dir=tmp_path / "published",
        publish_delay_s=0.02,
    )
    await manager.start()
    yield manager
    await manager.close()


@pytest.fixture
async def replica(tmp_path: Path, use, executor) -> AsyncIterator[CollectionManager]:
    manager = CollectionManager(
        tmp_path / "unused",
        use,
        executor,
        role="replica",
        snapshot_dir=tmp_path / "published",
        reload_interval_s=0.02,
    )
    await manager.start()
    yield manager
    await manager.close()


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        try:
            if await check():
                return
        except NotFound:
            pass
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def document_count(manager: CollectionManager) -> int:
    return (await manager.info("docs")).document_count


async def results(manager: CollectionManager, vector: np.ndarray) -> list[tuple[str, float]]:
    dense = await manager.dense_search("docs", vector, 10)
    lexical = await manager.lexical_search("docs", "chat cat Zinsen 東京", 10)
    return [(hit.document_id, round(hit.score, 5)) for hit in dense + lexical]


async def test_replicas_return_what_the_writer_returns(
    writer: CollectionManager, replica: CollectionManager, use: USEEmbedder
) -> None:
    vector = (await use.embed_queries(["a sleeping cat"]))[0]
    await writer.index("docs", DOCUMENTS)

    await eventually(lambda: _equals(document_count(replica), 4))

    assert await results(replica, vector) == await results(writer, vector)
    writer_info, replica_info = await writer.info("docs"), await replica.info("docs")
    assert replica_info == writer_info


async def _equals(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def test_replicas_reload_newer_versions_while_serving(
    writer: CollectionManager, replica: CollectionManager, use: USEEmbedder
) -> None:
    vector = (await use.embed_queries(["cat"]))[0]
    with pytest.raises(NotFound):
        await replica.info("docs")
    await writer.index("docs", DOCUMENTS[:2])
    await eventually(lambda: _equals(document_count(replica), 2))
    assert {h.document_id for h in await replica.lexical_search("docs", "cat chat", 5)} == {
        "cat",
        "chat",
    }
    serving = True
    served: set[int] = set()

    async def search_all_the_time() -> None:
        while serving:
            hits = await replica.dense_search("docs", vector, 10)
            served.add(len(hits))
            await asyncio.sleep(0)

    searcher = asyncio.create_task(search_all_the_time())
    await writer.index("docs", DOCUMENTS[2:])
    await eventually(lambda: _equals(document_count(replica), 4))
    await writer.delete("docs", ["chat"])
    await eventually(lambda: _equals(document_count(replica), 3))
    serving = False
    await searcher

    assert served <= {2, 3, 4} and 2 in served
    lexical = await replica.lexical_search("docs", "cat chat Zinsen", 5)
    assert {hit.document_id for hit in lexical} == {"cat", "bank"}
    assert await results(replica, vector) == await results(writer, vector)


async def test_replicas_refuse_writes(replica: CollectionManager) -> None:
    with pytest.raises(Unimplemented, match="read-only"):
        await replica.index("docs", DOCUMENTS)
    with pytest.raises(Unimplemented, match="read-only"):
        await replica.delete("docs", ["cat"])


async def test_the_writer_keeps_a_few_versions(writer: CollectionManager, tmp_path: Path) -> None:
    published = tmp_path / "published" / "docs"
    for seq, document in enumerate(DOCUMENTS, start=1):
        await writer.index("docs", [document])
        await eventually(lambda seq=seq: _equals(_seq_of_current(published), seq))
    await writer.close()  # lets the last publication finish pruning

    versions = [entry.name for entry in published.iterdir() if entry.is_dir()]
    assert len(versions) == 3
    assert current_version(published) in versions
    assert [entry.name for entry in published.iterdir() if entry.is_file()] == [CURRENT_FILE]


async def _seq_of_current(published: Path) -> int | None:
    version = current_version(published)
    return None if version is None else version_seq(version)


async def test_the_writer_publishes_at_close(tmp_path: Path, use, executor) -> None:
    writer = CollectionManager(
        tmp_path / "writer",
        use,
        executor,
        role="writer",
        snapshot_dir=tmp_path / "published",
        publish_delay_s=3600,
    )
    await writer.start()
    await writer.index("docs", DOCUMENTS)
    assert current_version(tmp_path / "published" / "docs") is None

    await writer.close()

    replica = CollectionManager(
        tmp_path / "unused", use, executor, role="replica", snapshot_dir=tmp_path / "published"
    )
    await replica.start()
    assert await document_count(replica) == 4
    await replica.close()


async def test_a_replica_refuses_another_embedder(
    writer: CollectionManager, tmp_path: Path, executor
) -> None:
    await writer.index("docs", DOCUMENTS[:1])
    await eventually(lambda: _equals(_seq_of_current(tmp_path / "published" / "docs"), 1))

    class Other:
        name, dimension = "other", 512

    replica = CollectionManager(
        tmp_path / "unused", Other(), executor, role="replica", snapshot_dir=tmp_path / "published"
    )
    with pytest.raises(ConfigurationError, match="'usem3'"):
        await replica.start()


@pytest.mark.parametrize("role", ["writer", "replica"])
def test_writers_and_replicas_need_a_snapshot_dir(tmp_path: Path, use, executor, role) -> None:
    with pytest.raises(ConfigurationError) as raised:
        CollectionManager(tmp_path, use, executor, role=role)

    assert raised.value.setting == "snapshot_dir"
