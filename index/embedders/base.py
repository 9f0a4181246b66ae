"""The embedder protocol: texts in, L2-normalized float32 vectors out."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from xling.index.chunking import with_title


class Embedder(Protocol):
    """Turns text into vectors for inner-product search.

    Queries and passages are embedded apart because some models want a
    prefix (e5's "query: " / "passage: ") or a different head for each.
    Results are float32 arrays of shape (len(texts), dimension), rows
    L2-normalized, so inner product is cosine similarity. Implementations
    subclass this protocol to inherit ``passage_text``.
    """

    name: str
    dimension: int

    async def embed_queries(self, texts: list[str]) -> npt.NDArray[np.float32]: ...

    async def embed_passages(self, texts: list[str]) -> npt.NDArray[np.float32]: ...

    def passage_text(self, title: str, passage: str) -> str:
        """The text embedded for a passage of a titled document; a model trained
        on a document format of its own overrides this."""
        return with_title(title, passage)

    async def aclose(self) -> None:
        """Releases connections; in-process models are freed with the object."""
        ...
