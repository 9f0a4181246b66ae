"""Translation memory: a persistent SQLite cache of finished translations.

The key covers everything that changes a translation: the normalized source
text, languages, MIME type, options (glossary, do-not-translate, formality,
context), model id and prompt version. Blocking: call it through the
server's thread pool.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS translations (
    key TEXT PRIMARY KEY,
    translated_text TEXT NOT NULL,
    created_at REAL NOT NULL DEFAULT (julianday('now'))
) WITHOUT ROWID
"""
_MAX_VARIABLES = 500  # below SQLite's limit on bound parameters per statement


def memory_key(text: str, *, source: str, target: str, options: Mapping[str, object]) -> str:
    """The cache key of one segment; ``options`` must hold only JSON values."""
    payload = json.dumps(
        [unicodedata.normalize("NFC", text), source, target, options],
        ensure_ascii=False,
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


class TranslationMemory:
    """Thread-safe get and put of translations by key.

    Usage::

        memory = TranslationMemory(data_dir / "translation-memory.sqlite3")
        hits = memory.get_many([key])
        memory.put_many({key: "Bonjour"})
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        unique = list(dict.fromkeys(keys))
        found: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(unique), _MAX_VARIABLES):
                chunk = unique[start : start + _MAX_VARIABLES]
                marks = ",".join("?" * len(chunk))
                # Only "?" marks are interpolated; the keys are bound parameters.
                query = f"SELECT key, translated_text FROM translations WHERE key IN ({marks})"  # noqa: S608  # nosec B608
                rows = self._db.execute(query, chunk)
                found.update(rows)
        return found

    def put_many(self, translations: Mapping[str, str]) -> None:
        if not translations:
            return
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO translations (key, translated_text) VALUES (?, ?)",
                translations.items(),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM translations").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
