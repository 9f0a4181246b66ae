"""Runs every benchmark and rewrites docs/benchmarks.md from their fragments.

Each benchmark writes a Markdown fragment under docs/bench/ with ratios
against a baseline measured in the same run; this script runs them in turn
(``--quick`` for short runs) and joins the fragments under a header that
names the machine, the date and the commands.

    python bench/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FRAGMENTS = ROOT / "docs" / "bench"
# (title, script, fragment, arguments); --quick is added where a script has it.
BENCHES = [
    ("Language detection", "detect_bench.py", "detection.md", ["--markdown"], True),
    ("Translation", "translate_bench.py", "translation.md", ["--markdown"], True),
    ("Search storage and latency", "search_bench.py", "search.md", ["--markdown"], True),
    (
        "Cross-lingual retrieval quality",
        "search_quality.py",
        "search_quality.md",
        ["--markdown"],
        True,
    ),
    ("Batch corpus translation", "corpus_bench.py", "corpus.md", ["--markdown"], True),
    ("Local chat model", "local_model_check.py", "local_model.md", ["--out"], False),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip", default="", help="comma-separated script names not to run")
    parser.add_argument("--no-run", action="store_true", help="only join existing fragments")
    args = parser.parse_args()
    skipped = set(filter(None, args.skip.split(",")))
    commands = []
    for _title, script, fragment, flag, has_quick in BENCHES:
        if script in skipped or args.no_run:
            continue
        command = [sys.executable, f"bench/{script}", *flag, str(FRAGMENTS / fragment)]
        if args.quick and has_quick:
            command.append("--quick")
        commands.append(" ".join(["python", *command[1:]]).replace(str(ROOT) + "/", ""))
        print("$", commands[-1], flush=True)
        subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    header = [
        "# Benchmarks",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}. "
        f"Written by `python bench/run_all.py{' --quick' if args.quick else ''}` "
        f"on {datetime.date.today().isoformat()}. Every figure is a ratio against a baseline "
        "measured in the same run; absolute times on a shared 2-core machine are noisy.",
        "",
    ]
    sections = []
    for title, _script, fragment, _flag, _quick in BENCHES:
        path = FRAGMENTS / fragment
        if path.exists():
            body = path.read_text().strip()
            body = "\n".join(
                line[1:] if line.startswith("# ") else line for line in body.splitlines()
            )
            sections += [f"## {title}", "", body, ""]
    (ROOT / "docs" / "benchmarks.md").write_text("\n".join(header + sections))


if __name__ == "__main__":
    main()
