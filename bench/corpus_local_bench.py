"""translate-corpus on the embedded defaults: does a job finish, and at what rate.

``xling serve`` runs as an operator starts it (no options: the embedded GGUF
model on llama.cpp), and ``xling translate-corpus`` runs with its defaults
(at most 128 segments a request, 4 requests in flight, a 60 s deadline) over
short distinct segments in French, German, Spanish and Japanese, into
English. Before requests were fitted to the server, such a job ended in
DEADLINE_EXCEEDED. The figure is a rate, not a ratio: there is no baseline
that finishes to compare with, and the machine is shared.

    python bench/corpus_local_bench.py [--segments 200] [--markdown docs/bench/corpus.md]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from corpus_bench import write_section
from provenance import provenance

from tests.serve_process import free_port

HEADING = "## translate-corpus on the embedded model"

# Subjects and predicates per language; their products are distinct sentences.
TEMPLATES = {
    "fr": (
        ["Le train", "Mon voisin", "La boulangerie", "Le musée", "Notre équipe",
         "Le médecin", "La voiture", "Le professeur", "Ma grand-mère", "Le magasin"],
        ["arrive ce soir.", "est fermé le lundi.", "aime beaucoup la musique.",
         "cherche une solution.", "reste à la maison aujourd'hui."],
    ),
    "de": (
        ["Der Zug", "Mein Nachbar", "Die Bäckerei", "Das Museum", "Unser Team",
         "Die Ärztin", "Das Auto", "Der Lehrer", "Meine Großmutter", "Der Laden"],
        ["kommt heute Abend an.", "ist montags geschlossen.", "liebt Musik sehr.",
         "sucht eine Lösung.", "bleibt heute zu Hause."],
    ),
    "es": (
        ["El tren", "Mi vecino", "La panadería", "El museo", "Nuestro equipo",
         "La doctora", "El coche", "El profesor", "Mi abuela", "La tienda"],
        ["llega esta noche.", "está cerrado los lunes.", "adora la música.",
         "busca una solución.", "se queda en casa hoy."],
    ),
    "ja": (
        ["電車は", "隣の人は", "パン屋は", "博物館は", "私たちのチームは",
         "医者は", "車は", "先生は", "祖母は", "店は"],
        ["今夜到着します。", "月曜日は休みです。", "音楽が大好きです。",
         "解決策を探しています。", "今日は家にいます。"],
    ),
}  # fmt: skip


def corpus_rows(count: int) -> list[dict[str, str]]:
    per_language = {
        language: [f"{subject} {predicate}" if language != "ja" else subject + predicate
                   for subject, predicate in itertools.product(subjects, predicates)]
        for language, (subjects, predicates) in TEMPLATES.items()
    }  # fmt: skip
    mixed = [text for group in zip(*per_language.values(), strict=True) for text in group]
    if count > len(mixed):
        raise SystemExit(f"at most {len(mixed)} distinct segments")
    return [{"id": f"seg-{i}", "text": text} for i, text in enumerate(mixed[:count])]


def serve(data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    process = subprocess.Popen(
        [sys.executable, "-m", "xling.clients.cli", "serve", "--host", "127.0.0.1",
         "--port", str(port), "--data-dir", str(data_dir)],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    return process, f"127.0.0.1:{port}"


def wait_healthy(target: str, process: subprocess.Popen[bytes], timeout_s: float = 600) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    end = time.monotonic() + timeout_s
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < end:
            if process.poll() is not None:
                raise RuntimeError("xling serve exited early")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                time.sleep(0.5)
    raise TimeoutError("xling serve did not become healthy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=200)
    parser.add_argument("--markdown", type=Path, help="write the result into this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="corpus-local-") as directory:
        work = Path(directory)
        corpus, output = work / "in.jsonl", work / "out.jsonl"
        rows = corpus_rows(args.segments)
        corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        process, target = serve(work / "data", work / "serve.log")
        try:
            wait_healthy(target, process)
            job = subprocess.run(
                [sys.executable, "-m", "xling.clients.cli", "--target", target,
                 "translate-corpus", str(corpus), "--to", "en", "--output", str(output),
                 "--json"],
                capture_output=True, text=True,
            )  # fmt: skip
        finally:
            process.terminate()
            process.wait(timeout=60)
        if job.returncode not in (0, 3):
            raise SystemExit(f"translate-corpus exited {job.returncode}:\n{job.stderr}")
        report = json.loads(job.stdout)
        lines = [json.loads(line) for line in output.read_text().splitlines()]
        empty = sum(1 for line in lines if not line["translated_text"].strip())
    result = (
        f"| segments | translated | failed | empty | seconds | segments/s |\n"
        f"|---|---|---|---|---|---|\n"
        f"| {len(rows)} | {report['segments']} | {report['failed']} | {empty} "
        f"| {report['elapsed_s']:.0f} | {report['segments_per_s']:.3f} |"
    )
    print(result)
    if args.markdown:
        setup = (
            f"{provenance()}\n\n`xling serve` with no options (the embedded GGUF model on "
            "llama.cpp), `xling translate-corpus` with its defaults (at most 128 segments a "
            "request, 4 in flight, the CLI's 60 s deadline; requests start at 4 segments and "
            "follow the time they take), short distinct segments in French, German, Spanish "
            "and Japanese into English. Before requests were fitted to the server, this job "
            "ended in DEADLINE_EXCEEDED; there is no finishing baseline to divide by.\n\n"
        )
        write_section(args.markdown, HEADING, setup + result)


if __name__ == "__main__":
    main()
