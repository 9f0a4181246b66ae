"""Rerankers behind one ``Reranker`` protocol, picked by the ``reranker`` setting.

``FACTORIES`` maps a name to ``(chat model) -> Reranker``; adding a method
means adding its entry there. ``auto`` picks by backend: one listwise call
for a large remote model, pointwise yes/no probabilities for the small
local one (docs/benchmarks.md compares them).
"""

from __future__ import annotations

from collections.abc import Callable

from xling.service.models.base import ChatModel
from xling.service.search.rerankers.base import Reranker
from xling.service.search.rerankers.listwise import ListwiseReranker
from xling.service.search.rerankers.pointwise import PointwiseReranker

FACTORIES: dict[str, Callable[[ChatModel], Reranker]] = {
    "listwise": ListwiseReranker,
    "pointwise": PointwiseReranker,
}
AUTO = {"local": "pointwise", "mistral": "listwise"}


def create_reranker(name: str, model: ChatModel, *, backend: str) -> Reranker:
    """The reranker the ``reranker`` setting ``name`` describes, over ``model``."""
    return FACTORIES[AUTO[backend] if name == "auto" else name](model)
