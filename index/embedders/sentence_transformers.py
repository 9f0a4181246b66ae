"""Any sentence-transformers model on local disk: ``sentence-transformers:NAME_OR_PATH``.

For production that is multilingual-e5-base/large or BGE-M3 on a mounted
volume. Loading never downloads (``local_files_only``): the argument is a
directory holding the model, or a Hugging Face name already in the local
cache, and anything else stops the server with a ``ConfigurationError``
instead of waiting on a network that is not there.
"""

from __future__ import annotations

import logging
import re
import threading
from functools import partial
from pathlib import Path, PurePath

import huggingface_hub
import numpy as np
import numpy.typing as npt
import torch
from sentence_transformers import SentenceTransformer
from transformers.utils import logging as transformers_logging

from xling.index.embedders.base import Embedder
from xling.index.embedders.coalescing import Coalescer
from xling.service.errors import ConfigurationError
from xling.service.executor import BlockingExecutor

log = logging.getLogger(__name__)

# Texts per forward pass: sentence-transformers' default, and on CPU larger
# batches only pad more short texts up to the longest one.
ENCODE_BATCH = 32
# e5 models were trained with these prefixes and lose retrieval quality
# without them; e5-instruct models take a task instruction instead.
E5_PROMPTS = ("query: ", "passage: ")
_E5_NAME = re.compile(r"(?:^|[^a-z0-9])e5(?:[^a-z0-9]|$)")
# sentence-transformers' own lookup order for a document prompt.
_PASSAGE_PROMPT_NAMES = ("document", "passage", "corpus")


class SentenceTransformerEmbedder(Embedder):
    """``Embedder`` over a sentence-transformers model. Queries and passages
    go through ``encode_query`` / ``encode_document``, with the prompts the
    model declares in ``config_sentence_transformers.json`` or, for an e5
    model that declares none, e5's "query: " / "passage: ". Constructing it
    loads the model: call it from a worker thread."""

    def __init__(self, model: str, executor: BlockingExecutor, *, threads: int) -> None:
        if not model:
            raise ConfigurationError(
                "embedder",
                "sentence-transformers needs a model: set it to 'sentence-transformers:/path/to/"
                "model', or to a model name already in the local Hugging Face cache",
            )
        self.name = f"sentence-transformers:{model}"
        # Concurrent calls join into batches; the lock keeps a query batch and
        # a passage batch from running at once, each with `threads` torch
        # threads fighting over the same cores.
        self._lock = threading.Lock()
        self._queries = Coalescer(
            partial(self._encode, query=True), executor, max_texts=ENCODE_BATCH
        )
        self._passages = Coalescer(
            partial(self._encode, query=False), executor, max_texts=ENCODE_BATCH
        )
        # Process-wide, like OMP_NUM_THREADS: torch defaults to every core.
        torch.set_num_threads(threads)
        # local_files_only stops downloads but not every Hub request (building
        # its User-Agent, huggingface_hub fetches a registry, a 3 s wait when
        # the network is down); offline mode refuses them all at once.
        huggingface_hub.constants.HF_HUB_OFFLINE = True
        # transformers draws a "Loading weights" bar on stderr: noise in server logs.
        transformers_logging.disable_progress_bar()
        source = model
        if model.startswith(("/", ".", "~")):  # a path; Hub names never start so
            path = Path(model).expanduser()
            if not path.is_dir():
                raise ConfigurationError(
                    "embedder", f"no sentence-transformers model directory at {path}"
                )
            source = str(path)
        try:
            self._model = SentenceTransformer(source, local_files_only=True)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ConfigurationError(
                "embedder",
                f"cannot load sentence-transformers model {model!r} from local files ({exc}); "
                "models are never downloaded at run time: mount the model directory and set "
                "embedder to sentence-transformers:/path/to/it",
            ) from exc
        self._query_prompt, self._passage_prompt = _prompts(self._model, model)
        # Encoding once checks that the model runs and tells its output size,
        # which some modules (custom pooling, Dense heads) do not declare.
        self.dimension = int(self._encode(["warm-up"], query=False).shape[1])
        log.info(
            "sentence-transformers model %s loaded: %d dimensions, query prompt %r, "
            "passage prompt %r",
            model,
            self.dimension,
            self._query_prompt,
            self._passage_prompt,
        )

    async def embed_queries(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return await self._embed(texts, query=True)

    async def embed_passages(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return await self._embed(texts, query=False)

    async def aclose(self) -> None:
        """Nothing to release: the weights go with the object."""

    async def _embed(self, texts: list[str], *, query: bool) -> npt.NDArray[np.float32]:
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        return await (self._queries if query else self._passages).embed(texts)

    def _encode(self, texts: list[str], *, query: bool) -> npt.NDArray[np.float32]:
        if query:
            encode, prompt = self._model.encode_query, self._query_prompt
        else:
            encode, prompt = self._model.encode_document, self._passage_prompt
        with self._lock:
            vectors = encode(
                texts,
                prompt=prompt,
                batch_size=ENCODE_BATCH,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)


def _prompts(model: SentenceTransformer, name: str) -> tuple[str | None, str | None]:
    """The (query, passage) prompts; None leaves the choice to sentence-transformers."""
    prompts = model.prompts
    query = prompts.get("query") or None
    # encode_document takes the first of these names that is present, and
    # every model has "document" (empty unless declared), so a model that
    # declares only "passage" would get no prompt: pick the first non-empty.
    passage = next((prompts[n] for n in _PASSAGE_PROMPT_NAMES if prompts.get(n)), None)
    if query is None and passage is None and _is_e5(name):
        query, passage = E5_PROMPTS
    return query, passage


def _is_e5(name: str) -> bool:
    """Whether a model name or path names an e5 model that wants e5's prefixes."""
    base = PurePath(name).name.lower()
    return bool(_E5_NAME.search(base)) and "instruct" not in base
