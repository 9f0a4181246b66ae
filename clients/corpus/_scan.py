"""A first pass over the corpus: every line valid, ids unique, the shard's size known.

Finding a bad line or a repeated id before the first request means a job
never stops halfway on its input. Ids are checked across the whole file, not
only the shard, so every shard of a job refuses the same input alike.

Uniqueness is exact in little memory: a Bloom filter (16 bits an id, 2 MB
for a million) finds the ids that may repeat, and a second pass, run only
when there are such candidates (about one id in 400 by chance), counts those
few exactly.
"""

from __future__ import annotations

import hashlib
import struct
from collections import Counter
from collections.abc import Set
from dataclasses import dataclass
from pathlib import Path

from xling.clients.corpus._source import Format, InputError, Shard, read_segments

MAX_REPORTED_DUPLICATES = 5
_BITS_PER_ID = 16
_PROBES = struct.Struct("<4I")  # 4 probes at 16 bits an id: 0.24% false positives
_CHUNK = 1 << 20


class DuplicateIds(InputError):
    """The corpus repeats ids; the output could not hold each id once."""


@dataclass(frozen=True, slots=True)
class Scan:
    lines: int  # in the file, up to its last segment
    segments: int  # in the shard
    characters: int  # in the shard
    last_watched_line: int  # the last line holding one of the watched ids; -1 if none


class _BloomFilter:
    def __init__(self, capacity: int) -> None:
        self._bits = bytearray(max(capacity * _BITS_PER_ID // 8, 1024))
        self._size = len(self._bits) * 8

    def add(self, key: str) -> bool:
        """Adds ``key``; True when it may have been added before."""
        digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        bits, size, seen = self._bits, self._size, True
        for value in _PROBES.unpack(digest):
            bit = value % size
            mask = 1 << (bit & 7)
            if not bits[bit >> 3] & mask:
                bits[bit >> 3] |= mask
                seen = False
        return seen


def _count_lines(path: Path) -> int:
    with path.open("rb") as file:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(_CHUNK), b"")) + 1


def scan(path: Path, input_format: Format, shard: Shard, watched: Set[str] = frozenset()) -> Scan:
    """Counts the shard's segments; raises ``InputError`` for a bad line or repeated ids.

    ``watched`` ids are looked for on the way: ``Scan.last_watched_line`` says
    how far into the file they reach.
    """
    # Line numbers are ids of plain text: unique by construction.
    check_ids = input_format == "jsonl"
    seen = _BloomFilter(_count_lines(path)) if check_ids else None
    candidates: set[str] = set()
    lines = segments = characters = 0
    last_watched_line = -1
    for segment in read_segments(path, input_format):
        lines = segment.line + 1
        if segment.id in watched:
            last_watched_line = segment.line
        if seen is not None and seen.add(segment.id):
            candidates.add(segment.id)
        if shard.owns(segment.id):
            segments += 1
            characters += len(segment.text)
    if candidates:
        _raise_if_repeated(path, input_format, candidates)
    return Scan(lines, segments, characters, last_watched_line)


def _raise_if_repeated(path: Path, input_format: Format, candidates: set[str]) -> None:
    counts: Counter[str] = Counter()
    first_lines: dict[str, int] = {}
    for segment in read_segments(path, input_format):
        if segment.id in candidates:
            counts[segment.id] += 1
            first_lines.setdefault(segment.id, segment.line + 1)
    repeated = sorted((line, i) for i, line in first_lines.items() if counts[i] > 1)
    if repeated:
        shown = ", ".join(
            f"{i!r} (line {line}, {counts[i]} times)"
            for line, i in repeated[:MAX_REPORTED_DUPLICATES]
        )
        more = len(repeated) - MAX_REPORTED_DUPLICATES
        suffix = f" and {more} more" if more > 0 else ""
        raise DuplicateIds(
            f"{path}: {len(repeated)} ids repeat: {shown}{suffix}; ids must be unique"
        )
