"""Acknowledged writes survive kill -9, and damaged index snapshots are repaired.

Run as a script, this file is the child process: it indexes and deletes
documents through a CollectionManager and prints "ACK ..." after each call
returns. The test kills it with SIGKILL right after an ACK, at whatever it
was doing next (a write, a background snapshot), and reopens the directory.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from xling.index import manager as manager_module
from xling.index.embedders.usem3 import USEEmbedder
from xling.index.manager import CollectionManager, DocumentInput
from xling.index.snapshots import INDEX_FILE, encode_snapshot, read_snapshot
from xling.service.executor import BlockingExecutor


def document(number: int) -> DocumentInput:
    # A unique word per document, so lexical search can find each one.
    return DocumentInput(f"d{number}", f"Note zq{number}x about the river.", language_code="en")


async def run_child(root: Path, first: int) -> None:
    manager_module.SNAPSHOT_MIN_CHANGES = 2  # snapshot all the time: kills land mid-snapshot
    executor = BlockingExecutor(workers=2, queue_size=64)
    embedder = await asyncio.to_thread(USEEmbedder, executor, threads=1)
    manager = CollectionManager(root, embedder, executor)
    await manager.start()
    print("READY", flush=True)
    for number in itertools.count(first):
        await manager.index("docs", [document(number)])
        print(f"ACK index {number}", flush=True)
        if number % 3 == 2:
            await manager.delete("docs", [f"d{number - 1}"])
            print(f"ACK delete {number - 1}", flush=True)


def kill_after_acks(root: Path, *, first: int, acks: int) -> tuple[set[int], set[int]]:
    """Runs the child until ``acks`` ACKs, kills it at once; returns the
    acknowledged (indexed, deleted) document numbers."""
    errors = root.parent / f"child-{first}.stderr"
    with open(errors, "w") as stderr:
        child = subprocess.Popen(
            [sys.executable, __file__, str(root), str(first)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    indexed: set[int] = set()
    deleted: set[int] = set()
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("ACK"):
                _, kind, number = line.split()
                (indexed if kind == "index" else deleted).add(int(number))
                if len(indexed) + len(deleted) == acks:
                    os.kill(child.pid, signal.SIGKILL)
                    break
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, errors.read_text()
    return indexed, deleted


@pytest.fixture(scope="module")
def executor() -> Iterator[BlockingExecutor]:
    executor = BlockingExecutor(workers=2, queue_size=64)
    yield executor
    executor.shutdown()


@pytest.fixture(scope="module")
def use(executor: BlockingExecutor) -> USEEmbedder:
    return USEEmbedder(executor, threads=2)


async def stored_documents(manager: CollectionManager, use: USEEmbedder) -> set[str]:
    """Documents the FAISS index returns, checked against the store and BM25."""
    anything = (await use.embed_queries(["river"]))[0]
    dense = {hit.document_id for hit in await manager.dense_search("docs", anything, 10_000)}
    lexical = {hit.document_id for hit in await manager.lexical_search("docs", "river", 10_000)}
    info = await manager.info("docs")
    assert dense == lexical, (sorted(dense), sorted(lexical))
    assert info.document_count == info.chunk_count == len(dense), (info, sorted(dense))
    return dense


async def test_acknowledged_writes_survive_kill_9(tmp_path: Path, use, executor) -> None:
    indexed, deleted = kill_after_acks(tmp_path, first=0, acks=9)
    more_indexed, more_deleted = kill_after_acks(tmp_path, first=100, acks=7)
    indexed |= more_indexed
    deleted |= more_deleted

    manager = CollectionManager(tmp_path, use, executor)
    await manager.start()
    try:
        present = await stored_documents(manager, use)
        context = f"indexed {sorted(indexed)}, deleted {sorted(deleted)}, found {sorted(present)}"
        for number in indexed - deleted:
            assert f"d{number}" in present, context
            hits = await manager.lexical_search("docs", f"zq{number}x", 3)
            assert [hit.document_id for hit in hits] == [f"d{number}"], context
        assert not present & {f"d{number}" for number in deleted}, context
        # At most the one write in flight at each kill may have landed unacknowledged.
        assert len(present - {f"d{number}" for number in indexed}) <= 2, context
    finally:
        await manager.close()


async def index_and_close(root: Path, use, executor, documents: list[DocumentInput]) -> None:
    manager = CollectionManager(root, use, executor)
    await manager.start()
    await manager.index("docs", documents)
    await manager.close()


async def reopen_and_check(root: Path, use, executor, expected: set[str]) -> None:
    manager = CollectionManager(root, use, executor)
    await manager.start()
    try:
        assert await stored_documents(manager, use) == expected
    finally:
        await manager.close()
    read_snapshot(root / "docs" / INDEX_FILE)  # rewritten whole at close


@pytest.mark.parametrize("damage", ["flipped-bytes", "truncated", "missing", "ahead-of-store"])
async def test_a_damaged_snapshot_is_rebuilt_from_the_store(
    tmp_path: Path, use, executor, damage: str
) -> None:
    await index_and_close(tmp_path, use, executor, [document(n) for n in range(6)])
    snapshot = tmp_path / "docs" / INDEX_FILE
    data = bytearray(snapshot.read_bytes())
    if damage == "flipped-bytes":
        data[len(data) // 2] ^= 0xFF
        snapshot.write_bytes(data)
    elif damage == "truncated":
        snapshot.write_bytes(data[: len(data) // 2])
    elif damage == "missing":
        snapshot.unlink()
    else:
        header, payload = read_snapshot(snapshot)
        snapshot.write_bytes(encode_snapshot(payload, change_seq=10**6, count=header.count))

    await reopen_and_check(tmp_path, use, executor, {f"d{n}" for n in range(6)})


async def test_an_old_snapshot_catches_up_with_newer_writes(tmp_path: Path, use, executor) -> None:
    await index_and_close(tmp_path, use, executor, [document(n) for n in range(4)])
    snapshot = tmp_path / "docs" / INDEX_FILE
    old = snapshot.read_bytes()
    manager = CollectionManager(tmp_path, use, executor)
    await manager.start()
    await manager.index("docs", [document(n) for n in range(4, 8)])
    await manager.delete("docs", ["d0", "d5"])
    await manager.close()

    snapshot.write_bytes(old)

    await reopen_and_check(tmp_path, use, executor, {f"d{n}" for n in (1, 2, 3, 4, 6, 7)})


def test_snapshot_payload_checksum_is_verified(tmp_path: Path) -> None:
    path = tmp_path / "index.snapshot"
    path.write_bytes(encode_snapshot(b"payload", change_seq=3, count=1))

    header, payload = read_snapshot(path)
    assert (header.change_seq, header.count, payload) == (3, 1, b"payload")

    path.write_bytes(path.read_bytes()[:-1] + b"X")
    with pytest.raises(ValueError, match="checksum"):
        read_snapshot(path)


if __name__ == "__main__":
    asyncio.run(run_child(Path(sys.argv[1]), int(sys.argv[2])))
