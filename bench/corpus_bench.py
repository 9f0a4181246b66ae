"""translate-corpus: peak memory and throughput as the corpus grows.

A synthetic JSONL corpus (distinct English sentences, no digits, so that the
server's translation memory never answers for the model) is translated by
``xling translate-corpus`` in a child process, against an in-process xling
server whose model is the fake Mistral server on loopback (tests/fakes)
answering at once. The child's peak RSS comes from ``wait4``. Figures are
ratios against the smallest corpus, measured in the same run: flat memory
means an RSS ratio near 1.0 whatever the corpus size.

    python bench/corpus_bench.py [--lines N | --quick | --smoke] [--markdown docs/bench/corpus.md]

The default, 100,000 lines, ran in 48 s on two busy cores; an earlier run
with ``--lines 1000000`` (about 15 minutes) measured the same flat peak RSS
(42 MB) and 1,630 segments/s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from provenance import provenance

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import ServerThread  # noqa: E402
from tests.fakes.mistral_server import FakeMistralServer  # noqa: E402
from xling.service.config import load_settings  # noqa: E402

WORDS = [
    "amber",
    "birch",
    "cedar",
    "dune",
    "ember",
    "fjord",
    "grove",
    "heath",
    "inlet",
    "juniper",
    "kelp",
    "lagoon",
    "meadow",
    "nettle",
    "orchard",
    "prairie",
    "quarry",
    "ridge",
    "spruce",
    "tundra",
    "upland",
    "valley",
    "willow",
    "yarrow",
    "alder",
    "brook",
    "cliff",
    "delta",
    "estuary",
    "fern",
    "glade",
    "hollow",
]


# Linux keeps a process's peak RSS across exec, and a child forked from this
# process (server and models loaded) would start with ours: a small launcher
# forks the CLI instead and reports the peak that wait4 gives it.
LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:], stdout=open(sys.argv[1], "w"), stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


@dataclass(frozen=True)
class Run:
    lines: int
    peak_rss_mb: float
    elapsed_s: float
    segments_per_s: float


def write_corpus(path: Path, lines: int) -> None:
    base = len(WORDS)
    with path.open("w", encoding="utf-8") as corpus:
        for i in range(lines):
            a, b, c, d = (WORDS[i // base**k % base] for k in range(4))
            text = f"The ranger's report on {a} {b} {c} {d} says the trail is open."
            corpus.write(json.dumps({"id": f"seg-{i}", "text": text}) + "\n")


def translate_corpus(target: str, corpus: Path, output: Path) -> Run:
    """Runs the CLI in a child; its peak RSS from wait4, its throughput from its report."""
    command = [
        sys.executable, "-m", "xling.clients.cli", "--target", target, "--timeout", "300",
        "translate-corpus", str(corpus), "--to", "fr", "--from", "en", "--output", str(output),
        "--batch-size", "128", "--concurrency", "4", "--json",
    ]  # fmt: skip
    report_path = output.with_suffix(".report.json")
    launched = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(report_path), *command],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    max_rss_kb, exit_code = map(int, launched.stdout.split())
    if exit_code != 0:
        raise RuntimeError(f"translate-corpus exited {exit_code}")
    report = json.loads(report_path.read_text())
    lines = sum(1 for _ in output.open("rb"))
    if lines != report["total"] or report["segments"] != lines:
        raise RuntimeError(f"output has {lines} lines for {report['total']} segments")
    return Run(
        lines=lines,
        peak_rss_mb=max_rss_kb / 1024,  # kilobytes on Linux
        elapsed_s=report["elapsed_s"],
        segments_per_s=report["segments_per_s"],
    )


def table(runs: list[Run]) -> str:
    base = runs[0]
    rows = [
        "| corpus lines | peak RSS MB | RSS ratio | segments/s | throughput ratio | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        label = f"{run.lines:,}" + (" (baseline)" if run is base else "")
        rows.append(
            f"| {label} | {run.peak_rss_mb:.1f} | {run.peak_rss_mb / base.peak_rss_mb:.2f} "
            f"| {run.segments_per_s:,.0f} | {run.segments_per_s / base.segments_per_s:.2f} "
            f"| {run.elapsed_s:.1f} |"
        )
    return "\n".join(rows)


def measure(sizes: list[int]) -> list[Run]:
    with (
        tempfile.TemporaryDirectory(prefix="corpus-bench-") as directory,
        FakeMistralServer() as fake,
    ):
        work = Path(directory)
        settings = load_settings(
            port=0, data_dir=work / "data", chat_backend="mistral", mistral_server_url=fake.url,
            mistral_api_key="bench", model_concurrency=8, log_format="text",
            log_level="WARNING",
        )  # fmt: skip
        server = ServerThread(settings)
        runs = []
        try:
            for lines in sizes:
                corpus = work / f"corpus-{lines}.jsonl"
                write_corpus(corpus, lines)
                runs.append(translate_corpus(server.target, corpus, work / f"out-{lines}.jsonl"))
                print(f"{lines:,} lines: {runs[-1]}", file=sys.stderr)
                corpus.unlink()
        finally:
            server.stop()
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--lines", type=int, default=100_000, help="largest corpus")
    size.add_argument("--quick", action="store_true", help="largest corpus 20,000 lines")
    size.add_argument("--smoke", action="store_true", help="largest corpus 300 lines (tests)")
    parser.add_argument("--markdown", type=Path, help="write the table to this file")
    args = parser.parse_args()
    largest = 300 if args.smoke else 20_000 if args.quick else args.lines
    runs = measure([largest // 10, largest // 3, largest])
    result = table(runs)
    print(result)
    if args.markdown:
        setup = (
            f"{provenance()}\n\nLargest corpus {largest:,} lines: "
            "translate-corpus in a child process (at most 128 segments a request, from 4 "
            "growing while requests are fast; 4 requests in flight), an "
            "in-process server, the fake Mistral model answering at once. Peak RSS is the "
            "child's; segments/s includes the first pass that validates the input.\n\n"
        )
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        write_section(args.markdown, "## translate-corpus: memory and throughput", setup + result)


def write_section(path: Path, heading: str, body: str) -> None:
    """Replaces the section under ``heading`` in ``path`` (or appends it), keeping the rest."""
    text = path.read_text() if path.exists() else ""
    start = text.find(heading)
    section = f"{heading}\n\n{body.strip()}\n"
    if start < 0:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + section
    else:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + section + (text[end:] if end >= 0 else "")
    path.write_text(text)


if __name__ == "__main__":
    main()
