"""Splitting a list of items into requests that fit the server's limits.

Pure functions: items in, index ranges out. ``BaseClient`` builds one request
per range and joins the responses in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from google.protobuf.message import Message

from xling.clients._config import Limits

Item = TypeVar("Item", str, Message)

# Room for fields the estimate leaves out; the request's own fields are measured.
_MARGIN_BYTES = 256


def encoded_size(item: str | Message) -> int:
    """Bytes ``item`` adds to a message as one element of a repeated field."""
    if isinstance(item, str):
        payload = len(item.encode("utf-8", "surrogatepass"))
    else:
        payload = item.ByteSize()
    return 1 + _varint_size(payload) + payload  # tag, length, payload


def _varint_size(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def split_ranges(
    items: Sequence[Item],
    *,
    limits: Limits,
    base_bytes: int,
    chars: Callable[[Item], int],
) -> list[range]:
    """Consecutive ranges of ``items``, each within ``limits``; at least one range.

    ``base_bytes`` is the size of the request without the items; ``chars``
    counts what the server's character limit counts in an item. An item over a
    limit on its own gets a range of its own, for the server to judge.

    >>> split_ranges(["a", "b", "c"], limits=Limits(max_items=2), base_bytes=0, chars=len)
    [range(0, 2), range(2, 3)]
    """
    budget = limits.max_message_bytes - base_bytes - _MARGIN_BYTES
    ranges: list[range] = []
    start = total_chars = total_bytes = 0
    for index, item in enumerate(items):
        item_chars, item_bytes = chars(item), encoded_size(item)
        full = (
            index - start == limits.max_items
            or total_chars + item_chars > limits.max_request_chars
            or total_bytes + item_bytes > budget
        )
        if full and index > start:
            ranges.append(range(start, index))
            start, total_chars, total_bytes = index, 0, 0
        total_chars += item_chars
        total_bytes += item_bytes
    ranges.append(range(start, len(items)))
    return ranges
