"""A plain ``pip install`` of the wheel is the client: no model stack, small, and it works.

The wheel is built from a copy of the package sources and installed into a fresh
virtualenv with the lock as constraints (the same pins `make install` uses); pip
fetches the client's few dependencies from the registry or its cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ServerThread

ROOT = Path(__file__).resolve().parent.parent
MAX_INSTALLED_MIB = 150
SERVER_MODULES = ("torch", "faiss", "xllamacpp", "onnxruntime", "sentence_transformers", "numpy")


def run(*command: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=600, **kwargs
    )


def tree_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def build_wheel(work: Path) -> Path:
    """Builds from the files `pip install .` reads, so no build/ lands in the checkout."""
    source = work / "source"
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for folder in set(setuptools["package-dir"].values()):
        shutil.copytree(
            ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    result = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "--wheel-dir", work / "dist", source)  # fmt: skip
    assert result.returncode == 0, result.stderr
    (wheel,) = (work / "dist").glob("xling-*.whl")
    return wheel


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    work = tmp_path_factory.mktemp("client-install")
    wheel = build_wheel(work)
    venv = work / "venv"
    assert run(sys.executable, "-m", "venv", venv).returncode == 0
    python = venv / "bin" / "python"
    result = run(python, "-m", "pip", "install", "--quiet", "-c", ROOT / "requirements.lock", wheel)
    assert result.returncode == 0, result.stderr
    yield venv


def test_plain_install_has_no_model_stack(client_venv: Path) -> None:
    python = client_venv / "bin" / "python"
    probe = (
        "import importlib.util as u, sys;"
        f"print([m for m in {SERVER_MODULES!r} if u.find_spec(m) is not None])"
    )
    result = run(python, "-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_plain_install_is_small(client_venv: Path) -> None:
    python = client_venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
                .stdout.strip())  # fmt: skip
    installed = run(python, "-m", "pip", "list", "--format=freeze").stdout.split()
    assert any(line.startswith("xling==") for line in installed)
    # pip itself counts too: the bound holds for everything in the environment.
    assert tree_mib(site) < MAX_INSTALLED_MIB, installed


def test_plain_install_cli_talks_to_a_server(client_venv: Path, server: ServerThread) -> None:
    result = run(
        client_venv / "bin" / "xling", "--target", server.target, "detect", "Guten Morgen zusammen",
        "--json", env={**os.environ, "PATH": str(client_venv / "bin")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (detection,) = json.loads(result.stdout)["detections"]
    assert detection["languages"][0]["languageCode"] == "de"


def test_plain_install_translates_a_corpus(
    client_venv: Path, server: ServerThread, tmp_path: Path
) -> None:
    # Segments already in the target language pass through without a model call.
    corpus = tmp_path / "in.jsonl"
    rows = [
        {"id": f"s{i}", "text": text}
        for i, text in enumerate(
            ["Guten Morgen zusammen", "Wo ist der Bahnhof?", "Vielen Dank für Ihre Hilfe"]
        )
    ]
    corpus.write_text("".join(json.dumps(row) + "\n" for row in rows))
    output = tmp_path / "out.jsonl"
    result = run(
        client_venv / "bin" / "xling", "--target", server.target, "translate-corpus", corpus,
        "--to", "de", "--output", output,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    translated = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted(row["id"] for row in translated) == ["s0", "s1", "s2"]
    assert {row["translated_text"] for row in translated} == {row["text"] for row in rows}


def test_serve_without_the_extra_names_the_install_command(client_venv: Path) -> None:
    result = run(client_venv / "bin" / "xling", "serve")
    assert result.returncode == 2
    assert "pip install 'xling[server]'" in result.stderr
    assert "Traceback" not in result.stderr
