"""The corpus pipeline: read, batch, translate concurrently, append, checkpoint.

Batches are cut from the input in order and sent at most ``concurrency`` at a time;
at most ``4 * concurrency`` batches are read ahead of the oldest unfinished
one, so memory holds a bounded window of segments whatever the corpus size.
Each finished batch is appended to the output (in completion order) and
fsynced before it counts as done.

The checkpoint's ``next_line`` is the first input line whose segment may
still be unfinished. It never moves past a segment that has not been written
or recorded as rejected, and ``output_offset`` is the output's size when the
oldest unfinished batch was sent, so every segment written from line
``next_line`` on lies after it. A resumed run therefore skips lines before
``next_line`` (bar the rejects, which it retries) and, from there on, only the
ids found in the output after ``output_offset``.

Requests are sized by ``RequestSizer`` (``_sizing``): batches are cut at its
current size, and a batch sends requests of at most that size, so a batch cut
before the size fell is split on the way; the sizer also bounds the requests
in flight. A request that runs out of time is split in halves and retried,
down to one segment; a single segment that runs out of time is retried with
fewer requests in flight, and rejected (like a segment the server refuses)
only when it ran out of time alone. Splitting happens inside the batch,
which is written whole when it finishes: the checkpoint's rules above do not
change.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from xling.clients._async_client import AsyncClient
from xling.clients._errors import DeadlineExceeded, InvalidArgument
from xling.clients.corpus._job import CorpusJob
from xling.clients.corpus._journal import Checkpoint, OutputLog
from xling.clients.corpus._progress import Progress, Report
from xling.clients.corpus._sizing import RequestSizer
from xling.clients.corpus._source import Segment, read_segments

CHECKPOINT_INTERVAL_S = 1.0
READ_AHEAD = 4  # batches read ahead, per request in flight


@dataclass(slots=True)
class _Outcome:
    lines: list[bytes] = field(default_factory=list)
    written: list[str] = field(default_factory=list)  # ids
    failed: dict[str, str] = field(default_factory=dict)  # id -> reason
    characters: int = 0
    cached: int = 0

    def add(self, segment: Segment, text: str, language: str, *, cached: bool = False) -> None:
        row = {"id": segment.id, "translated_text": text, "detected_language_code": language}
        self.lines.append(json.dumps(row, ensure_ascii=False).encode() + b"\n")
        self.written.append(segment.id)
        self.characters += len(segment.text)
        self.cached += cached


@dataclass(slots=True)
class _Batch:
    first_new_line: int | None  # its first line at or past the resumed checkpoint
    offset: int  # the output's size when it was sent
    task: asyncio.Task[_Outcome]
    done: bool = False


class CorpusRun:
    """One run of a job over an opened output; ``run()`` once, then ``finish()``."""

    def __init__(
        self,
        job: CorpusJob,
        client: AsyncClient,
        output: OutputLog,
        checkpoint: Checkpoint,
        *,
        done_after_offset: set[str],
        last_done_line: int,
        progress: Progress,
        report: Report,
        sizer: RequestSizer,
    ) -> None:
        self._job = job
        self._client = client
        self._output = output
        self._checkpoint = checkpoint
        self._resumed_line = checkpoint.next_line
        self._resumed_offset = checkpoint.output_offset
        self._retry = set(checkpoint.rejects)
        self._done_after_offset = done_after_offset
        self._last_done_line = last_done_line
        self._progress = progress
        self.report = report
        self._sizer = sizer
        self._pending: deque[_Batch] = deque()
        self._unsent: list[Segment] = []
        self._read_to = 0  # the line after the last one read
        self._saved_at = time.monotonic()

    async def run(self) -> None:
        try:
            for batch in self._batches():
                self._unsent = batch
                while len(self._pending) >= READ_AHEAD * self._job.concurrency:
                    await self._settle()
                self._send(batch)
                self._unsent = []
            while self._pending:
                await self._settle()
        finally:
            unfinished = [b.task for b in self._pending if not b.task.done()]
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)

    def finish(self) -> None:
        """Records where the run got to; after ``run()`` ended, however it ended."""
        self._save_checkpoint()
        self.report.failed = len(self._checkpoint.rejects)

    # Reading and sending

    def _todo(self) -> Iterator[Segment]:
        shard = self._job.shard
        for segment in read_segments(self._job.input, self._job.format):
            self._read_to = segment.line + 1
            if not shard.owns(segment.id) or segment.id in self._done_after_offset:
                continue
            if segment.line < self._resumed_line and segment.id not in self._retry:
                continue
            yield segment

    def _batches(self) -> Iterator[list[Segment]]:
        batch: list[Segment] = []
        for segment in self._todo():
            batch.append(segment)
            if len(batch) >= self._sizer.size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _send(self, segments: list[Segment]) -> None:
        task = asyncio.create_task(self._translate(segments))
        first_new = self._first_new_line(segments)
        self._pending.append(_Batch(first_new, self._output.size, task))

    async def _translate(self, segments: list[Segment]) -> _Outcome:
        outcome = _Outcome()
        todo: deque[Segment] = deque()
        for segment in segments:
            if segment.text.strip():
                todo.append(segment)
            else:  # the server refuses empty contents; there is nothing to translate
                outcome.add(segment, segment.text, "")
        # Only falls within this batch, so a request that timed out is always split.
        cap = len(todo)
        while todo:
            async with self._sizer.slot() as alone:
                part = [todo.popleft() for _ in range(min(self._sizer.size, cap, len(todo)))]
                started = time.monotonic()
                try:
                    response = await self._client.translate_text(
                        [s.text for s in part],
                        target_language_code=self._job.target_language_code,
                        source_language_code=self._job.source_language_code,
                        mime_type=self._job.mime_type,
                        timeout=self._job.timeout,
                    )
                except InvalidArgument as error:
                    refused = _refused_contents(error)
                    if refused is None:
                        raise  # the request itself is wrong: every batch would fail alike
                    for index, reason in refused.items():
                        outcome.failed[part[index].id] = f"INVALID_ARGUMENT: {reason}"
                    todo.extendleft(reversed([s for i, s in enumerate(part) if i not in refused]))
                    continue
                except DeadlineExceeded as error:
                    self._sizer.timed_out(segments=len(part))
                    if len(part) > 1:
                        cap = len(part) // 2
                    elif alone:
                        outcome.failed[part[0].id] = str(error)
                        continue
                    else:  # it may only have waited behind the others in flight
                        self._sizer.narrow()
                    todo.extendleft(reversed(part))
                    continue
                self._sizer.finished(segments=len(part), elapsed_s=time.monotonic() - started)
            for segment, result in zip(part, response.translations, strict=True):
                if result.error:
                    outcome.failed[segment.id] = result.error
                else:
                    outcome.add(
                        segment,
                        result.translated_text,
                        result.detected_language_code,
                        cached=result.cached,
                    )
        return outcome

    # Settling finished batches

    async def _settle(self) -> None:
        """Writes out the batches that finish next; raises the first failed batch's error."""
        running = {b.task: b for b in self._pending if not b.done}
        finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        settled = [(running[t], t.result()) for t in finished if t.exception() is None]
        for _, outcome in settled:
            self._output.append(outcome.lines)
        self._output.sync()
        for batch, outcome in settled:
            batch.done = True
            for segment_id in outcome.written:
                self._checkpoint.rejects.pop(segment_id, None)
            self._checkpoint.rejects.update(outcome.failed)
            self.report.segments += len(outcome.written)
            self.report.characters += outcome.characters
            self.report.cached += outcome.cached
            self._progress.advance(len(outcome.written))
        while self._pending and self._pending[0].done:
            self._pending.popleft()
        if time.monotonic() - self._saved_at >= CHECKPOINT_INTERVAL_S:
            self._save_checkpoint()
        for task in finished:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    def _save_checkpoint(self) -> None:
        unfinished = [b for b in self._pending if not b.done and b.first_new_line is not None]
        first_lines = [b.first_new_line for b in unfinished]
        unsent = self._first_new_line(self._unsent)
        if unsent is not None:
            first_lines.append(unsent)
        next_line = max(self._resumed_line, min([*first_lines, self._read_to]))
        # Batches are sent in input order: the oldest unfinished one was sent first.
        offset = unfinished[0].offset if unfinished else self._output.size
        if next_line <= self._last_done_line:
            # Segments found done in the output's tail lie ahead still: keep that tail.
            offset = self._resumed_offset
        self._checkpoint.next_line = next_line
        self._checkpoint.output_offset = offset
        self._checkpoint.save(self._job.checkpoint_path)
        self._saved_at = time.monotonic()

    def _first_new_line(self, segments: list[Segment]) -> int | None:
        return next((s.line for s in segments if s.line >= self._resumed_line), None)


def _refused_contents(error: InvalidArgument) -> dict[int, str] | None:
    """Content index -> reason, when every violation names one content; else None."""
    refused = {}
    for field_name, description in error.field_violations:
        prefix, _, rest = field_name.partition("[")
        if prefix != "contents" or not rest.endswith("]") or not rest[:-1].isdigit():
            return None
        refused[int(rest[:-1])] = description
    return refused or None
