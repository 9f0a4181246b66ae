"""Reading a corpus as a stream of segments, and choosing a shard's share of them.

Two formats:

- ``jsonl``: one object a line with a string (or integer) ``id`` and a string
  ``text``; other keys are ignored; blank lines are skipped.
- ``text``: one segment a line; its id is its line number, 1-based, as a
  string. Lines are split on ``\\n`` only (a trailing ``\\r`` is dropped), so
  ids match ``sed -n Np``. Blank lines are segments too, copied to the output
  unchanged, so the output has a line for every input line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Format = Literal["jsonl", "text"]
JSONL_SUFFIXES = (".jsonl", ".ndjson")


class InputError(Exception):
    """The corpus cannot be read as its format says; names the file and line."""


@dataclass(frozen=True, slots=True)
class Segment:
    line: int  # 0-based index of the line it came from; orders a run's progress
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count``: the ids whose stable hash falls to it.

    Usage::

        Shard(1, 4).owns("doc-17")  # the same answer on every machine and run
    """

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard index must be in [0, {self.count}); got {self.index}")

    def owns(self, segment_id: str) -> bool:
        if self.count == 1:
            return True
        # blake2b, not hash(): Python salts str hashes per process.
        digest = hashlib.blake2b(segment_id.encode("utf-8", "surrogatepass"), digest_size=8)
        return int.from_bytes(digest.digest(), "big") % self.count == self.index


def guess_format(path: Path) -> Format:
    return "jsonl" if path.suffix.lower() in JSONL_SUFFIXES else "text"


def read_segments(path: Path, input_format: Format) -> Iterator[Segment]:
    """Every segment of the file, in order, read one line at a time."""
    with path.open("rb") as lines:
        for index, raw in enumerate(lines):
            if input_format == "jsonl":
                if not raw.isspace():
                    segment_id, text = _record(raw, path, index)
                    yield Segment(index, segment_id, text)
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{path}:{index + 1}: not UTF-8 ({exc.reason})") from None
            yield Segment(index, str(index + 1), line.removesuffix("\n").removesuffix("\r"))


def _record(raw: bytes, path: Path, index: int) -> tuple[str, str]:
    try:
        row = json.loads(raw)  # bytes: decoded as UTF-8, or ValueError
    except ValueError as exc:
        raise InputError(f"{path}:{index + 1}: not JSON ({exc})") from None
    if not isinstance(row, dict):
        raise InputError(f"{path}:{index + 1}: expected an object with 'id' and 'text'")
    segment_id, text = row.get("id"), row.get("text")
    if isinstance(segment_id, int) and not isinstance(segment_id, bool):
        segment_id = str(segment_id)
    if not isinstance(segment_id, str) or not segment_id:
        raise InputError(f"{path}:{index + 1}: 'id' must be a non-empty string or an integer")
    if not isinstance(text, str):
        raise InputError(f"{path}:{index + 1}: 'text' must be a string")
    return segment_id, text
