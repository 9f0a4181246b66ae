"""The durable state of a corpus job: its output, its checkpoint, its rejects file.

- The output is append-only JSONL, flushed and fsynced after each batch. A
  crash can only leave a torn last line, which ``OutputLog.open`` cuts off.
- The checkpoint (``OUTPUT.checkpoint.json``) is replaced atomically. It
  says: every segment on an input line before ``next_line`` is either in the
  output or in ``rejects``; segments written after output byte
  ``output_offset`` may be further on. Resuming reads only that tail of the
  output, so memory stays flat however long the output grows.
- The rejects file is a report, rewritten atomically at the end of each run
  from the checkpoint's ``rejects``; it is absent when nothing failed.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from xling.clients.corpus._source import InputError
from xling.durable import write_atomically

CHECKPOINT_VERSION = 1
_CHUNK = 1 << 20


class JobStateError(InputError):
    """The output or checkpoint does not fit this run (another job, an edit, a lock)."""


@dataclass(slots=True)
class Checkpoint:
    job: dict[str, Any]  # what must not change between runs: languages, format, shard
    next_line: int = 0
    output_offset: int = 0
    rejects: dict[str, str] = field(default_factory=dict)  # id -> why it failed

    @classmethod
    def load(cls, path: Path) -> Checkpoint | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise JobStateError(f"{path}: unreadable checkpoint ({exc})") from None
        if data.get("version") != CHECKPOINT_VERSION:
            raise JobStateError(f"{path}: checkpoint version {data.get('version')!r} unknown")
        return cls(data["job"], data["next_line"], data["output_offset"], data["rejects"])

    def save(self, path: Path) -> None:
        body = {
            "version": CHECKPOINT_VERSION,
            "job": self.job,
            "next_line": self.next_line,
            "output_offset": self.output_offset,
            "rejects": self.rejects,
        }
        write_atomically(path, json.dumps(body, ensure_ascii=False).encode())


def write_rejects(path: Path, rejects: Mapping[str, str]) -> None:
    """The rejects report, one ``{"id", "reason"}`` a line; removed when empty."""
    if not rejects:
        path.unlink(missing_ok=True)
        return
    lines = (
        json.dumps({"id": i, "reason": reason}, ensure_ascii=False).encode() + b"\n"
        for i, reason in rejects.items()
    )
    write_atomically(path, lines)


class OutputLog:
    """The output file, locked for this process and opened for appending.

    Usage::

        with OutputLog.open(path) as output:
            output.append([b'{"id": "1", ...}\\n'])
            output.sync()
    """

    def __init__(self, path: Path, file: BinaryIO) -> None:
        self.path = path
        self._file = file
        self.size = file.seek(0, os.SEEK_END)

    @classmethod
    def open(cls, path: Path) -> OutputLog:
        path.parent.mkdir(parents=True, exist_ok=True)
        file = path.open("ab+")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            raise JobStateError(f"{path}: another translate-corpus is writing it") from None
        return cls(path, file)

    def __enter__(self) -> OutputLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._file.close()

    def cut_torn_line(self) -> None:
        """Drops a last line left without its newline by a crash mid-write."""
        end = self.size
        position = end
        while position > 0:
            start = max(0, position - _CHUNK)
            self._file.seek(start)
            newline = self._file.read(position - start).rfind(b"\n")
            if newline >= 0:
                position = start + newline + 1
                break
            position = start
        if position != end:
            self._file.truncate(position)
            self.sync()
            self.size = position

    def ids_after(self, offset: int) -> set[str]:
        """Ids of the lines that start at or after byte ``offset``."""
        if offset > self.size:
            raise JobStateError(f"{self.path}: shorter than its checkpoint says; was it edited?")
        self._file.seek(offset)
        ids = set()
        for number, line in enumerate(self._file, start=1):
            try:
                ids.add(json.loads(line)["id"])
            except (ValueError, KeyError, TypeError):
                raise JobStateError(
                    f"{self.path}: line {number} after byte {offset} is not an output line"
                ) from None
        return ids

    def count_lines(self) -> int:
        self._file.seek(0)
        return sum(chunk.count(b"\n") for chunk in iter(lambda: self._file.read(_CHUNK), b""))

    def append(self, lines: list[bytes]) -> None:
        self._file.seek(0, os.SEEK_END)
        self._file.write(b"".join(lines))
        self.size = self._file.tell()

    def sync(self) -> None:
        """Makes every appended line durable."""
        self._file.flush()
        os.fsync(self._file.fileno())
