"""Concurrent embedding calls joined into batches, on a real executor.

The encode function here records the batches it gets and can be held back,
so the tests control which calls arrive while a batch runs; the embedders'
own tests check that batched and lone calls give the same vectors.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from xling.index.embedders.coalescing import Coalescer
from xling.service.errors import ResourceExhausted
from xling.service.executor import BlockingExecutor


class Recorder:
    """Encodes a text as [len(text), index in its batch]; ``gate`` holds a batch."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail_next = False

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.batches.append(list(texts))
        self.gate.wait(timeout=10)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("model exploded")
        return np.array([[len(t), i] for i, t in enumerate(texts)], dtype=np.float32)


@pytest.fixture
def executor() -> Iterator[BlockingExecutor]:
    executor = BlockingExecutor(workers=2, queue_size=8)
    yield executor
    executor.shutdown()


async def started(recorder: Recorder, batches: int) -> None:
    while len(recorder.batches) < batches:
        await asyncio.sleep(0.005)


async def test_calls_that_wait_go_together_into_the_next_batch(
    executor: BlockingExecutor,
) -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder, executor, max_texts=32)
    recorder.gate.clear()
    first = asyncio.create_task(coalescer.embed(["a"]))
    await started(recorder, 1)
    rest = [asyncio.create_task(coalescer.embed(["b" * n, "c"])) for n in range(1, 6)]
    await asyncio.sleep(0.05)
    recorder.gate.set()

    assert (await first).tolist() == [[1, 0]]
    results = await asyncio.gather(*rest)

    assert recorder.batches == [["a"], [t for n in range(1, 6) for t in ("b" * n, "c")]]
    # Each caller gets its own rows, in its own order.
    for n, rows in enumerate(results, start=1):
        assert rows.tolist() == [[n, 2 * (n - 1)], [1, 2 * (n - 1) + 1]]


async def test_with_concurrency_two_batches_run_at_once_and_the_rest_wait_together(
    executor: BlockingExecutor,
) -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder, executor, max_texts=32, concurrency=2)
    recorder.gate.clear()
    first = asyncio.create_task(coalescer.embed(["a"]))
    await started(recorder, 1)
    second = asyncio.create_task(coalescer.embed(["bb"]))
    await started(recorder, 2)  # a second worker takes it while the first is busy
    rest = [asyncio.create_task(coalescer.embed(["c" * n])) for n in range(3, 6)]
    await asyncio.sleep(0.05)
    assert len(recorder.batches) == 2
    recorder.gate.set()

    assert (await first).tolist() == [[1, 0]] and (await second).tolist() == [[2, 0]]
    assert [rows.tolist() for rows in await asyncio.gather(*rest)] == [[[3, 0]], [[4, 1]], [[5, 2]]]
    assert recorder.batches == [["a"], ["bb"], ["ccc", "cccc", "ccccc"]]


async def test_a_lone_call_runs_at_once_and_big_calls_go_alone(
    executor: BlockingExecutor,
) -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder, executor, max_texts=4)
    assert (await coalescer.embed(["x"])).tolist() == [[1, 0]]
    recorder.gate.clear()
    blocker = asyncio.create_task(coalescer.embed(["0"]))
    await started(recorder, 2)
    calls = [asyncio.create_task(coalescer.embed(texts)) for texts in (["1"] * 3, ["2"] * 6, ["3"])]
    await asyncio.sleep(0.05)
    recorder.gate.set()
    await asyncio.gather(blocker, *calls)

    # At most 4 texts a batch, unless one call alone has more.
    assert recorder.batches == [["x"], ["0"], ["1"] * 3, ["2"] * 6, ["3"]]


async def test_a_failed_batch_fails_its_callers_and_the_next_batch_runs(
    executor: BlockingExecutor,
) -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder, executor, max_texts=2)
    recorder.gate.clear()
    recorder.fail_next = True
    doomed = [asyncio.create_task(coalescer.embed([t])) for t in ("a", "b")]
    await started(recorder, 1)
    later = [asyncio.create_task(coalescer.embed(texts)) for texts in (["c", "d"], ["e"])]
    await asyncio.sleep(0.05)
    recorder.gate.set()

    for task in doomed:
        with pytest.raises(RuntimeError, match="model exploded"):
            await task
    assert (await later[0]).tolist() == [[1, 0], [1, 1]]
    assert (await later[1]).tolist() == [[1, 0]]
    assert recorder.batches == [["a", "b"], ["c", "d"], ["e"]]


async def test_a_cancelled_caller_does_not_stop_the_others(executor: BlockingExecutor) -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder, executor, max_texts=32)
    recorder.gate.clear()
    first = asyncio.create_task(coalescer.embed(["a"]))
    await started(recorder, 1)
    impatient = asyncio.create_task(coalescer.embed(["gone"]))
    patient = asyncio.create_task(coalescer.embed(["bb"]))
    await asyncio.sleep(0.01)
    impatient.cancel()
    recorder.gate.set()

    assert (await first).tolist() == [[1, 0]]
    assert (await patient).tolist() == [[2, 0]]
    assert impatient.cancelled()
    assert recorder.batches == [["a"], ["bb"]]


async def test_a_full_executor_reaches_every_waiting_caller() -> None:
    executor = BlockingExecutor(workers=1, queue_size=1)
    recorder = Recorder()
    coalescer = Coalescer(recorder, executor, max_texts=32)
    recorder.gate.clear()
    # Other work takes the executor's thread and its one queue slot.
    busy = [asyncio.create_task(executor.run(recorder.gate.wait, 10)) for _ in range(2)]
    await asyncio.sleep(0.01)
    with pytest.raises(ResourceExhausted):
        await asyncio.gather(coalescer.embed(["a"]), coalescer.embed(["b"]))
    recorder.gate.set()
    await asyncio.gather(*busy)
    assert (await coalescer.embed(["c"])).tolist() == [[1, 0]]
    executor.shutdown()
