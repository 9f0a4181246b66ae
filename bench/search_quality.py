"""Cross-lingual retrieval quality: dense, lexical, hybrid, and with model rerank.

Indexes tests/data/retrieval (documents in 12 languages; every query is
answered in another language, with same-topic distractors in the query's own
language) into a fresh server runtime and reports R@1, R@3 and MRR per
method, with ratios against dense-only retrieval measured in the same run.

    python bench/search_quality.py [--quick] [--rerank] [--markdown docs/bench/search_quality.md]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import ServerThread  # noqa: E402
from xling.index.manager import DocumentInput  # noqa: E402
from xling.service.config import load_settings  # noqa: E402
from xling.service.search.pipeline import SearchPipeline, SearchQuery  # noqa: E402

SET = ROOT / "tests" / "data" / "retrieval"
METHODS = {
    "dense only": (1.0, 0.0),
    "lexical only": (0.0, 1.0),
    "hybrid, lexical weight 0.5": (1.0, 0.5),
    "hybrid, equal weights": (1.0, 1.0),
}


def load_set() -> tuple[list[DocumentInput], list[dict]]:  # type: ignore[type-arg]
    docs = [json.loads(line) for line in (SET / "docs.jsonl").read_text().splitlines() if line]
    queries = [
        json.loads(line) for line in (SET / "queries.jsonl").read_text().splitlines() if line
    ]
    inputs = [
        DocumentInput(d["id"], d["text"], d.get("title", ""), d["language"], {"topic": d["topic"]})
        for d in docs
    ]
    return inputs, queries


def evaluate(server: ServerThread, pipeline: SearchPipeline, queries, *, rerank: bool) -> dict:  # type: ignore[no-untyped-def,type-arg]
    ranks = []
    started = time.perf_counter()
    for query in queries:
        result = server.run(
            pipeline.search(
                SearchQuery("eval", query["query"], top_k=10, rerank=rerank), deadline=None
            )
        )
        ids = [hit.chunk.document_id for hit in result.hits]
        relevant = query["relevant"][0]
        ranks.append(ids.index(relevant) + 1 if relevant in ids else None)
    n = len(queries)
    return {
        "R@1": sum(r == 1 for r in ranks) / n,
        "R@3": sum(r is not None and r <= 3 for r in ranks) / n,
        "MRR": sum(1 / r for r in ranks if r) / n,
        "s/query": (time.perf_counter() - started) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="first 12 queries only")
    parser.add_argument("--rerank", action="store_true", help="also rerank with the local model")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    settings = load_settings(
        port=0, data_dir=Path(tempfile.mkdtemp()), log_format="text", log_level="WARNING",
        model_dir=ROOT / ".pytest_cache" / "xling-models",
    )  # fmt: skip
    server = ServerThread(settings)
    runtime = server.server.runtime
    documents, queries = load_set()
    if args.quick:
        queries = queries[:12]
    server.run(runtime.search.index("eval", documents))

    def pipeline(dense: float, lexical: float) -> SearchPipeline:
        return SearchPipeline(
            collections=runtime.search.collections, embedder=runtime.embedder,
            detector=runtime.detector, executor=runtime.executor, model=runtime.chat_model,
            translation=runtime.translation, dense_weight=dense, lexical_weight=lexical,
            rerank_candidates=settings.rerank_candidates,
        )  # fmt: skip

    rows = {
        name: evaluate(server, pipeline(*w), queries, rerank=False) for name, w in METHODS.items()
    }
    if args.rerank:
        rows[f"dense + local model rerank (top {settings.rerank_candidates})"] = evaluate(
            server, pipeline(1.0, 0.0), queries, rerank=True
        )
    server.stop()
    baseline = rows["dense only"]
    lines = [
        f"{len(documents)} documents, {len(queries)} queries; ratios against dense only.",
        "",
        "| method | R@1 | R@3 | MRR | MRR ratio | s/query |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        ratio = row["MRR"] / baseline["MRR"] if baseline["MRR"] else float("nan")
        lines.append(
            f"| {name} | {row['R@1']:.3f} | {row['R@3']:.3f} | {row['MRR']:.3f} | {ratio:.2f} "
            f"| {row['s/query']:.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table + "\n")


if __name__ == "__main__":
    main()
