"""EmbeddingGemma-300M on ONNX Runtime, int8: the default embedder, 768 dimensions.

``service/models/gemma_onnx.py`` exports the model at install time from the
assembled weights (one graph: transformer, mean pooling, both Dense layers, L2
normalization), quantizes it to int8 per channel and checks it against torch.
Here only onnxruntime and tokenizers run: no torch in the server. On 2 cores
it embeds one query about 5 times faster than torch and ranks the
cross-lingual set as well (docs/models.md, docs/bench/search.md).

Each inference call runs on one thread: threads of one call spin-wait for each
other, and a busy core stalls them all (torch at 2 threads beside a process
using one core took 1.75 s a query). Concurrent calls spread over the
blocking pool instead, each worker running a batch of the calls that waited.
"""

from __future__ import annotations

import hashlib
import json
import logging
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime
from tokenizers import Tokenizer

from xling.index.embedders.base import Embedder
from xling.index.embedders.coalescing import Coalescer
from xling.service.errors import ConfigurationError
from xling.service.executor import BlockingExecutor

log = logging.getLogger(__name__)

MANIFEST = "xling-onnx.json"
# Texts per forward pass. Texts are sorted by length first, so a batch pads
# little; larger batches gain nothing on a CPU.
ENCODE_BATCH = 16


class OnnxSession:
    """An exported folder loaded: ``MANIFEST`` (prompts, maximum length, files
    and their sha256), ``tokenizer.json`` and ``model`` (the manifest's model
    file unless given), run on one thread a call."""

    def __init__(self, folder: Path, model: Path | None = None, *, verify: bool = False) -> None:
        manifest = read_manifest(folder, verify=verify)
        self.dimension = int(manifest["dimension"])
        self.query_prompt = str(manifest["query_prompt"])
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(int(manifest["max_length"]))
        self._tokenizer.no_padding()
        self._pad_id = int(manifest["pad_id"])
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # warnings about unused initializers are noise
        path = model or folder / str(manifest["model"])
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ConfigurationError("embedder", f"cannot load {path}: {exc}") from exc

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Unit vectors of ``texts`` as written, blocking. The session is safe
        to run from several threads at once."""
        encodings = self._tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), ENCODE_BATCH):
            batch = order[start : start + ENCODE_BATCH]
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                tokens = encodings[i].ids
                ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = 1
            (vectors,) = self._session.run(None, {"input_ids": ids, "attention_mask": mask})
            out[batch] = vectors
        return out


class OnnxGemmaEmbedder(Embedder):
    """``Embedder`` over an exported EmbeddingGemma folder. Constructing it
    checks the files' sha256 and loads the model (a second or two): call it
    from a worker thread."""

    def __init__(self, folder: Path, executor: BlockingExecutor, *, name: str) -> None:
        self.name = name
        self._session = OnnxSession(folder, verify=True)
        self.dimension = self._session.dimension
        # One batch per worker at a time, each on one thread.
        workers = executor.workers
        self._queries = Coalescer(
            partial(self._encode, query=True), executor, max_texts=ENCODE_BATCH, concurrency=workers
        )
        self._passages = Coalescer(
            partial(self._encode, query=False),
            executor,
            max_texts=ENCODE_BATCH,
            concurrency=workers,
        )
        self._session.encode(["warm-up"])
        log.info("ONNX embedder %s loaded from %s", name, folder)

    async def embed_queries(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return await self._embed(texts, query=True)

    async def embed_passages(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return await self._embed(texts, query=False)

    def passage_text(self, title: str, passage: str) -> str:
        # The document format of the model card, with the title in its own field.
        return f"title: {title or 'none'} | text: {passage}"

    async def aclose(self) -> None:
        """Nothing to release: the session goes with the object."""

    async def _embed(self, texts: list[str], *, query: bool) -> npt.NDArray[np.float32]:
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        return await (self._queries if query else self._passages).embed(texts)

    def _encode(self, texts: list[str], *, query: bool) -> npt.NDArray[np.float32]:
        # Passages come formatted by passage_text; queries get the model's prompt.
        if query:
            texts = [self._session.query_prompt + text for text in texts]
        return self._session.encode(texts)


def read_manifest(folder: Path, *, verify: bool) -> dict[str, object]:
    """The folder's manifest; with ``verify``, every file it lists is checked
    against its size and sha256, so a truncated or altered model stops the
    server at start."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            "embedder", f"{folder} is not an exported EmbeddingGemma folder ({exc})"
        ) from exc
    if verify:
        for name, (size, sha256) in manifest["files"].items():
            file = folder / name
            try:
                with file.open("rb") as handle:
                    digest = hashlib.file_digest(handle, "sha256").hexdigest()
                actual = file.stat().st_size
            except OSError as exc:
                raise ConfigurationError("embedder", f"cannot read {file}: {exc}") from exc
            if (actual, digest) != (size, sha256):
                raise ConfigurationError(
                    "embedder",
                    f"{file} has {actual} bytes with sha256 {digest}, expected {size} bytes "
                    f"with sha256 {sha256}; delete {folder} and export it again with "
                    "`python -m xling.service.models.embedded --download`",
                )
    return manifest
