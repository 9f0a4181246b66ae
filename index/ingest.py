"""Turns documents into storable records: chunked, embedded, deduplicated."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xling.index import vectors
from xling.index.chunking import chunk_text
from xling.index.embedders.base import Embedder
from xling.index.models import DocumentInput
from xling.index.store import DocumentRecord
from xling.service.executor import BlockingExecutor

# Bounds the memory of one embedding call and lets other jobs interleave.
EMBED_BATCH = 64


async def prepare_records(
    documents: Sequence[DocumentInput],
    embedder: Embedder,
    executor: BlockingExecutor,
    *,
    chunk_chars: int,
    chunk_overlap: int,
) -> list[DocumentRecord]:
    """One record per distinct document id (the last occurrence wins), with
    its chunks and their passage vectors.

        records = await prepare_records(documents, embedder, executor,
                                        chunk_chars=800, chunk_overlap=100)
    """
    unique = list({document.id: document for document in documents}.values())
    chunk_lists = await executor.run(_chunk_all, unique, chunk_chars, chunk_overlap)
    matrix = await _embed(
        embedder,
        [
            embedder.passage_text(document.title, text)
            for document, texts in zip(unique, chunk_lists, strict=True)
            for text in texts
        ],
    )
    records, start = [], 0
    for document, texts in zip(unique, chunk_lists, strict=True):
        records.append(
            DocumentRecord(
                doc_id=document.id,
                title=document.title,
                language_code=document.language_code,
                metadata=document.metadata,
                chunk_texts=texts,
                vectors=matrix[start : start + len(texts)],
            )
        )
        start += len(texts)
    return records


def _chunk_all(
    documents: Sequence[DocumentInput], chunk_chars: int, chunk_overlap: int
) -> list[list[str]]:
    return [
        chunk_text(document.text, max_chars=chunk_chars, overlap_chars=chunk_overlap)
        for document in documents
    ]


async def _embed(embedder: Embedder, texts: list[str]) -> np.ndarray:
    parts = [np.empty((0, embedder.dimension), np.float32)]
    for start in range(0, len(texts), EMBED_BATCH):
        batch = texts[start : start + EMBED_BATCH]
        matrix = vectors.check_vectors(await embedder.embed_passages(batch), embedder.dimension)
        if len(matrix) != len(batch):
            raise ValueError(f"embedder returned {len(matrix)} vectors for {len(batch)} texts")
        parts.append(matrix)
    return np.concatenate(parts)
