"""Weighted reciprocal rank fusion."""

from __future__ import annotations

import pytest

from xling.service.search.fusion import RRF_K, reciprocal_rank_fusion


def test_items_in_both_rankings_win_with_equal_weights() -> None:
    fused = reciprocal_rank_fusion([["a", "b"], ["b", "c"]])
    assert [item for item, _ in fused] == ["b", "a", "c"]
    assert fused[0][1] == pytest.approx(1 / (RRF_K + 2) + 1 / (RRF_K + 1))


def test_weights_scale_each_ranking() -> None:
    dense, lexical = ["a", "b", "c"], ["c", "b", "a"]

    favour_dense = reciprocal_rank_fusion([dense, lexical], weights=[1.0, 0.5])
    favour_lexical = reciprocal_rank_fusion([dense, lexical], weights=[0.5, 1.0])

    assert [item for item, _ in favour_dense] == ["a", "b", "c"]
    assert [item for item, _ in favour_lexical] == ["c", "b", "a"]
    assert dict(favour_dense)["a"] == pytest.approx(1 / (RRF_K + 1) + 0.5 / (RRF_K + 3))


def test_weights_must_match_the_rankings() -> None:
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"], ["b"]], weights=[1.0])
