"""Mistral's embeddings API: ``mistral`` (``mistral-embed``, 1024 dimensions) or ``mistral:MODEL``.

La Plateforme or a self-hosted endpoint of the same API, through the
``mistralai`` SDK. Retries, timeouts and errors follow the chat backend
(``xling.service.models.mistral_api``, which both use): one
embedding call, all its requests and waits together, ends within
``mistral_timeout_s``; 429 and 5xx are retried up to ``mistral_max_retries``
times, honouring Retry-After; what is left when retries or time run out is
RESOURCE_EXHAUSTED, UNAVAILABLE or DEADLINE_EXCEEDED.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
from mistralai.client import models

from xling.index.embedders.base import Embedder
from xling.service.batching import bounded_batches
from xling.service.config import Settings
from xling.service.errors import ConfigurationError, XlingError
from xling.service.models.mistral_api import MistralApi

log = logging.getLogger(__name__)

DEFAULT_MODEL = "mistral-embed"
# Mistral refuses a request with too many inputs ("split into more batches")
# or more than 16,384 tokens in all. A token covers at least one UTF-8 byte,
# so bytes plus two (start token, leading-space marker) bound a text's
# tokens without shipping Mistral's tokenizer.
MAX_INPUTS_PER_REQUEST = 128
MAX_TOKENS_PER_REQUEST = 16_384
PROBE_TEXT = "dimension probe"


class MistralEmbedder(Embedder):
    """``Embedder`` over the ``mistralai`` SDK's async embeddings call.

    Mistral's embedding models have no query or passage variant, so both
    embed alike. Build it with ``connect``, which measures the dimension.
    """

    def __init__(
        self,
        *,
        api_key: str | None,
        server_url: str | None = None,
        model: str = DEFAULT_MODEL,
        dimension: int,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
    ) -> None:
        self.name = f"mistral:{model}"
        self.model = model
        self.dimension = dimension
        self._api = MistralApi(
            api_key=api_key,
            server_url=server_url,
            model=model,
            purpose="mistral embedder",
            timeout_s=timeout_s,
            max_retries=max_retries,
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
        )

    @classmethod
    def connect(cls, settings: Settings, model: str = DEFAULT_MODEL) -> MistralEmbedder:
        """An embedder for ``model`` with the Mistral settings, its dimension
        measured by embedding one text. Blocking: call it from a worker thread.

        Collections record the dimension before anything is embedded, and
        only the model knows it (codestral-embed's is configurable, a
        self-hosted endpoint serves any model); the request also proves key,
        URL and model name at start, as the local models prove their files.
        """
        key = settings.mistral_api_key
        options = {
            "api_key": key.get_secret_value() if key is not None else None,
            "server_url": settings.mistral_server_url,
            "model": model,
            "timeout_s": settings.mistral_timeout_s,
            "max_retries": settings.mistral_max_retries,
        }

        async def measure() -> int:
            # A client of its own: HTTP connections belong to the event loop
            # that opened them, and this one ends with asyncio.run.
            probe = cls(dimension=0, **options)
            try:
                return (await probe._embed([PROBE_TEXT])).shape[1]
            finally:
                await probe.aclose()

        try:
            dimension = asyncio.run(measure())
        except XlingError as exc:
            raise ConfigurationError(
                "embedder", f"the mistral embedder cannot embed with {model!r}: {exc.message}"
            ) from exc
        log.info("Mistral embedder %s: %d dimensions", model, dimension)
        return cls(dimension=dimension, **options)

    async def embed_queries(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return await self._embed_checked(texts)

    async def embed_passages(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return await self._embed_checked(texts)

    async def aclose(self) -> None:
        await self._api.aclose()

    async def _embed_checked(self, texts: list[str]) -> npt.NDArray[np.float32]:
        matrix = await self._embed(texts)
        if matrix.shape[1] != self.dimension:
            raise XlingError(
                f"Mistral {self.model} returned {matrix.shape[1]} dimensions, not the "
                f"{self.dimension} it returned at start"
            )
        return matrix

    async def _embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Unit rows for ``texts``, in as few requests as Mistral's limits allow."""
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        deadline = asyncio.get_running_loop().time() + self._api.timeout_s
        parts = [await self._request(batch, deadline) for batch in _batches(texts)]
        widths = sorted({part.shape[1] for part in parts})
        if len(widths) != 1:
            raise XlingError(f"Mistral {self.model} returned vectors of sizes {widths}")
        matrix = np.concatenate(parts)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.maximum(norms, np.finfo(np.float32).tiny)

    async def _request(self, texts: list[str], deadline: float) -> npt.NDArray[np.float32]:
        """One embeddings request, retried within what is left of the call's time."""

        async def send(timeout_ms: int) -> models.EmbeddingResponse:
            return await self._api.client.embeddings.create_async(
                model=self.model, inputs=texts, timeout_ms=timeout_ms
            )

        remaining_s = deadline - asyncio.get_running_loop().time()
        response = await self._api.call(send, what="embeddings response", timeout_s=remaining_s)
        return self._matrix(response, len(texts))

    def _matrix(self, response: models.EmbeddingResponse, count: int) -> npt.NDArray[np.float32]:
        """The response's vectors in input order, as a (count, width) float32 matrix."""
        rows = sorted(response.data, key=lambda item: item.index or 0)
        vectors = [row.embedding for row in rows if row.embedding]
        widths = {len(vector) for vector in vectors}
        if len(vectors) != count or len(widths) != 1:
            raise XlingError(
                f"Mistral {self.model} returned {len(vectors)} vectors of sizes "
                f"{sorted(widths)} for {count} texts"
            )
        matrix = np.asarray(vectors, dtype=np.float32)
        if not np.isfinite(matrix).all():
            raise XlingError(f"Mistral {self.model} returned vectors that are not finite")
        return matrix


def _batches(texts: list[str]) -> Iterator[list[str]]:
    """Consecutive runs of ``texts`` within Mistral's per-request limits; a
    text over the token limit alone goes in a request of its own."""
    return bounded_batches(
        texts,
        cost=lambda text: len(text.encode()) + 2,
        max_items=MAX_INPUTS_PER_REQUEST,
        max_cost=MAX_TOKENS_PER_REQUEST,
    )
