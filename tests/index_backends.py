"""Both search backends behind one fixture: collection tests run on each.

``storage`` is a fresh place for collections: a folder (faiss) or a new
database on the session's PostgreSQL (pgvector). ``storage.open`` builds a
search index over it, as many times as a test needs (a restart, a second
server).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from xling.index.backend import SearchIndex
from xling.index.embedders.base import Embedder
from xling.index.manager import CollectionManager
from xling.index.postgres.collections import PgvectorCollections
from xling.service.executor import BlockingExecutor

BACKENDS = ("faiss", "pgvector")


@dataclass(frozen=True)
class Storage:
    backend: str
    location: str  # a folder or a DSN

    def open(self, embedder: Embedder, executor: BlockingExecutor, **options: Any) -> SearchIndex:
        if self.backend == "faiss":
            return CollectionManager(Path(self.location), embedder, executor, **options)
        return PgvectorCollections(self.location, embedder, executor, **options)


def new_storage(request: pytest.FixtureRequest, backend: str, folder: Path) -> Storage:
    if backend == "faiss":
        return Storage(backend, str(folder))
    postgres = request.getfixturevalue("postgres")
    return Storage(backend, postgres.create_database(f"test_{uuid.uuid4().hex[:12]}"))
