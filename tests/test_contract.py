"""The contract's plumbing: stubs up to date, protos lint-clean, packaging sane."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from .conftest import ROOT, find_tool


def test_generated_stubs_are_current() -> None:
    result = subprocess.run(
        [sys.executable, "protos/generate.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_buf_lint() -> None:
    result = subprocess.run([find_tool("buf"), "lint"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_package_folder_is_packaged() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dirs = {name: ROOT / path for name, path in config["package-dir"].items()}
    found = set()
    for name, folder in package_dirs.items():
        for init in folder.rglob("__init__.py"):
            relative = init.parent.relative_to(folder).parts
            found.add(".".join((name, *relative)))
    assert found == set(config["packages"])


def test_configuration_reference_lists_every_setting() -> None:
    from xling.service.config import reference_table

    reference = (ROOT / "docs" / "configuration.md").read_text()
    assert reference.endswith(reference_table()), "docs/configuration.md is stale: make docs"
