"""Embedders behind one ``Embedder`` protocol, picked by the ``embedder`` setting.

A setting reads ``NAME`` or ``NAME:ARGUMENT`` (``sentence-transformers:intfloat/e5-base``);
``FACTORIES`` maps NAME to ``(argument, executor, threads) -> Embedder``, and
adding an embedder means adding its entry there. Factories block while they
load models: the runtime calls them in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable

from xling.index.embedders.base import Embedder
from xling.service.errors import ConfigurationError
from xling.service.executor import BlockingExecutor

EmbedderFactory = Callable[[str, BlockingExecutor, int], Embedder]


def _create_usem3(argument: str, executor: BlockingExecutor, threads: int) -> Embedder:
    from xling.index.embedders.usem3 import USEEmbedder

    if argument:
        raise ConfigurationError("embedder", "usem3 takes no argument: set it to 'usem3'")
    return USEEmbedder(executor, threads=threads)


def _not_built(name: str) -> EmbedderFactory:
    def factory(argument: str, executor: BlockingExecutor, threads: int) -> Embedder:
        raise ConfigurationError("embedder", f"the {name} embedder is not built yet; use usem3")

    return factory


FACTORIES: dict[str, EmbedderFactory] = {
    "usem3": _create_usem3,
    "sentence-transformers": _not_built("sentence-transformers"),
    "mistral": _not_built("mistral"),
}


def create_embedder(name: str, executor: BlockingExecutor, *, threads: int) -> Embedder:
    """Loads the embedder that the ``embedder`` setting ``name`` describes."""
    kind, _, argument = name.partition(":")
    factory = FACTORIES.get(kind)
    if factory is None:
        raise ConfigurationError(
            "embedder", f"unknown embedder {name!r}; choose from {', '.join(FACTORIES)}"
        )
    return factory(argument, executor, threads)
