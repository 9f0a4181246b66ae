"""The types the search storage takes and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from xling.index.vectors import IndexType


@dataclass(frozen=True)
class DocumentInput:
    """A document to index; the service has resolved its language."""

    id: str
    text: str
    title: str = ""
    language_code: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ChunkHit:
    chunk_id: int
    document_id: str
    text: str
    title: str
    language_code: str
    metadata: dict[str, str]
    score: float


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    document_count: int
    chunk_count: int
    dimension: int
    index_type: IndexType | Literal["hnsw"]  # hnsw: the pgvector backend
    languages: dict[str, int]  # documents per language code
    embedder: str


@dataclass(frozen=True)
class IndexSettings:
    ivf_threshold: int
    ivf_nlist: int | None
    ivf_nprobe: int
    search_threads: int = 1
