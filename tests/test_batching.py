"""Greedy batching under a count and a cost budget."""

from __future__ import annotations

from xling.service.batching import bounded_batches


def test_batches_close_at_the_count_or_the_budget_in_order() -> None:
    costs = {"a": 3, "b": 3, "c": 5, "d": 1, "e": 1, "f": 1}

    batches = list(bounded_batches("abcdef", cost=costs.__getitem__, max_items=3, max_cost=6))

    assert batches == [["a", "b"], ["c", "d"], ["e", "f"]]


def test_an_item_over_the_budget_goes_alone() -> None:
    batches = list(bounded_batches([1, 50, 2], cost=lambda n: n, max_items=10, max_cost=10))

    assert batches == [[1], [50], [2]]
    assert list(bounded_batches([], cost=len, max_items=1, max_cost=1)) == []
