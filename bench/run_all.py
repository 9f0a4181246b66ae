"""Runs every benchmark and rewrites docs/benchmarks.md from their fragments.

Each benchmark writes a Markdown fragment under docs/bench/ (and its plots
beside it) with ratios against a baseline measured in the same run, and a
first line naming the command, the machine and the date; this script runs
them in turn (``--quick`` for short runs) and joins the fragments under a
header with each benchmark's wall time. The local chat model check takes
about 4 minutes per installed model on two idle cores and three to five
times that on a busy machine, so it runs only with ``--local-model``;
otherwise its last fragment is joined as it is.

    python bench/run_all.py [--quick] [--local-model] [--skip SCRIPT,...] [--no-run]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# (title, script, fragment, arguments before the fragment's path, whether it has --quick)
BENCHES = [
    ("Language detection", "detect_bench.py", "detection.md", ["--markdown"], True),
    ("Translation", "translate_bench.py", "translation.md", ["--markdown"], True),
    ("Search storage and latency", "search_bench.py", "search.md", ["--markdown"], True),
    ("FAISS against pgvector", "backend_bench.py", "backends.md", ["--markdown"], True),
    (
        "Cross-lingual retrieval quality",
        "search_quality.py",
        "search_quality.md",
        # The local model reranks each query's top 8: about 4 minutes on 2 cores.
        ["--rerank", "pointwise", "--markdown"],
        True,
    ),
    ("Embedders", "embedder_bench.py", "embedders.md", ["--markdown"], False),
    ("Load", "load_bench.py", "load.md", ["--markdown"], True),
    ("Batch corpus translation", "corpus_bench.py", "corpus.md", ["--markdown"], True),
    ("Local chat model", "local_model_check.py", "local_model.md", ["--out"], False),
]
LOCAL_MODEL = "local_model_check.py"
# A relative image link in a fragment, made relative to the joined page.
IMAGE = re.compile(r"(!\[[^\]]*\]\()(?![a-z]+:|/)([^)]+\))")


def join(fragment: str, relative: str) -> str:
    """A fragment as a section body: its title line dropped, its headings one
    level down, its image links pointing into ``relative``."""
    lines = fragment.strip().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    lines = ["#" + line if line.startswith("#") else line for line in lines]
    return IMAGE.sub(rf"\1{relative}/\2", "\n".join(lines).strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="each benchmark's short run")
    parser.add_argument("--local-model", action="store_true", help="also run the local model")
    parser.add_argument("--skip", default="", help="comma-separated script names not to run")
    parser.add_argument("--no-run", action="store_true", help="only join existing fragments")
    parser.add_argument("--fragments", type=Path, default=ROOT / "docs" / "bench")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    skipped = set(filter(None, args.skip.split(",")))
    if not args.local_model:
        skipped.add(LOCAL_MODEL)
    timings = []
    commands = {}  # fragment -> the command that wrote it in this run
    started = time.perf_counter()
    for _title, script, fragment, flag, has_quick in BENCHES:
        if script in skipped or args.no_run:
            continue
        command = [sys.executable, f"bench/{script}", *flag, str(args.fragments / fragment)]
        if args.quick and has_quick:
            command.append("--quick")
        shown = " ".join(["python", *command[1:]]).replace(str(ROOT) + "/", "")
        commands[fragment] = shown
        print("$", shown, flush=True)
        begun = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
        timings.append(f"`{script}` {time.perf_counter() - begun:.0f} s")
        print(f"  {timings[-1]}", flush=True)
    header = [
        "# Benchmarks",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}. "
        f"Written by `python bench/run_all.py{' --quick' if args.quick else ''}"
        f"{' --local-model' if args.local_model else ''}` "
        f"on {datetime.date.today().isoformat()}. Every figure is a ratio against a baseline "
        "measured in the same run; absolute times on a shared 2-core machine are noisy, and "
        "each section's first line gives its own command, date and load average.",
        "",
    ]
    if timings:
        header += [
            f"Wall time {time.perf_counter() - started:.0f} s: {', '.join(timings)}. "
            + (
                ""
                if args.local_model
                else f"`{LOCAL_MODEL}` was not run (`--local-model` runs it, about 4 minutes "
                "per model on two idle cores); its section is from its last run."
            ),
            "",
        ]
    relative = os.path.relpath(args.fragments, args.output.parent)
    sections = []
    for title, _script, fragment, _flag, _quick in BENCHES:
        path = args.fragments / fragment
        if not path.exists():
            continue
        body = join(path.read_text(), relative)
        if "Written by `" not in body and fragment in commands:
            body = f"Written by `{commands[fragment]}` in this run.\n\n{body}"
        sections += [f"## {title}", "", body, ""]
    args.output.write_text("\n".join(header + sections))


if __name__ == "__main__":
    main()
