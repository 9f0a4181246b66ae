"""Query vectors kept by (embedder, exact query text), least recently used dropped.

Users repeat queries (a search box, a dashboard that refreshes, retries), and
a repeated query's vector is known: looking it up skips the model, which is
most of a search's time on a CPU. Passages are not cached: each is embedded
once, when indexed. Hits and misses are counted in the server's metrics
(``xling_query_cache_lookups``).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import numpy.typing as npt

from xling.index.embedders.base import Embedder
from xling.service import metrics


class QueryCache(Embedder):
    """Wraps ``embedder``, answering ``embed_queries`` from at most ``size``
    remembered vectors; everything else goes to ``embedder`` unchanged."""

    def __init__(self, embedder: Embedder, *, size: int) -> None:
        self.inner = embedder
        self.name = embedder.name
        self.dimension = embedder.dimension
        self._size = size
        # Used from the event loop only, so no lock.
        self._vectors: OrderedDict[tuple[str, str], npt.NDArray[np.float32]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._vectors)

    async def embed_queries(self, texts: list[str]) -> npt.NDArray[np.float32]:
        rows: list[npt.NDArray[np.float32] | None] = [self._get(text) for text in texts]
        misses = sum(row is None for row in rows)
        metrics.count_query_cache(hits=len(texts) - misses, misses=misses)
        # A text asked twice in one call is embedded once.
        missing = list(dict.fromkeys(t for t, row in zip(texts, rows, strict=True) if row is None))
        if missing:
            computed = dict(zip(missing, await self.inner.embed_queries(missing), strict=True))
            for text, vector in computed.items():
                self._put(text, vector)
            rows = [
                computed[text] if row is None else row
                for text, row in zip(texts, rows, strict=True)
            ]
        if not rows:
            return np.empty((0, self.dimension), dtype=np.float32)
        return np.stack(rows)  # type: ignore[arg-type]  # every None was filled

    async def embed_passages(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return await self.inner.embed_passages(texts)

    def passage_text(self, title: str, passage: str) -> str:
        return self.inner.passage_text(title, passage)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def _get(self, text: str) -> npt.NDArray[np.float32] | None:
        key = (self.name, text)
        vector = self._vectors.get(key)
        if vector is not None:
            self._vectors.move_to_end(key)
        return vector

    def _put(self, text: str, vector: npt.NDArray[np.float32]) -> None:
        # A copy: the caller's batch array must not stay alive, nor be written
        # through the cached row.
        vector = np.array(vector, dtype=np.float32)
        vector.flags.writeable = False
        key = (self.name, text)
        self._vectors[key] = vector
        self._vectors.move_to_end(key)
        while len(self._vectors) > self._size:
            self._vectors.popitem(last=False)
