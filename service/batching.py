"""Greedy batching of items under a count and a cost budget, order kept."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def bounded_batches(
    items: Iterable[T], *, cost: Callable[[T], int], max_items: int, max_cost: int
) -> Iterator[list[T]]:
    """Consecutive runs of ``items`` with at most ``max_items`` each and a summed
    ``cost`` of at most ``max_cost``; an item over the budget goes alone.

    >>> list(bounded_batches("abcde", cost=lambda _: 1, max_items=2, max_cost=10))
    [['a', 'b'], ['c', 'd'], ['e']]
    """
    batch: list[T] = []
    spent = 0
    for item in items:
        item_cost = cost(item)
        if batch and (len(batch) == max_items or spent + item_cost > max_cost):
            yield batch
            batch, spent = [], 0
        batch.append(item)
        spent += item_cost
    if batch:
        yield batch
