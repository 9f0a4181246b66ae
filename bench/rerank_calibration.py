"""Fits the rerank blend weight on the development split, reports the held-out split.

For every query of tests/data/retrieval, the default embedder's top candidates
(their retrieval scores) and the local judge's pointwise relevance of each are
collected once into a JSON cache (about a minute a query on two busy cores); the fit then
replays ``blend`` (service/search/rerankers/blend.py, what the server runs) for
each weight on a grid. The queries are split by cluster (splits.json): the
weight is chosen on ``dev`` only: among the weights whose R@1 is at least dense
retrieval's and that push no answer out of the top 3, those with the best mean
reciprocal rank form a plateau, and its middle is kept (a weight at the
plateau's edge is one query away from a loss). ``test`` is reported as held
out, and so is ``holdout``: 20 clusters written after the weight was chosen,
searched among their documents and the main set's.

    python bench/rerank_calibration.py [--cache FILE] [--embedder NAME] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.search_quality import SPLITS, eval_settings, load_split  # noqa: E402
from tests.conftest import ServerThread  # noqa: E402
from xling.index.chunking import with_title  # noqa: E402
from xling.service.config import Settings  # noqa: E402
from xling.service.search import judge  # noqa: E402
from xling.service.search.pipeline import SearchQuery  # noqa: E402
from xling.service.search.rerankers import FACTORIES  # noqa: E402
from xling.service.search.rerankers.blend import blend  # noqa: E402

WEIGHTS = [round(0.05 * i, 2) for i in range(21)]


def collect(cache: Path, embedder: str, candidates: int) -> dict:  # type: ignore[type-arg]
    """Per query: the candidates' document ids, retrieval scores and judged relevance."""
    collected = json.loads(cache.read_text()) if cache.is_file() else {}
    # Dev and test share one collection; holdout's is larger.
    collections = {name: "holdout" if name == "holdout" else "eval" for name in SPLITS}
    splits = {name: load_split(name) for name in SPLITS}
    missing = [
        (collections[name], query)
        for name, (_, queries) in splits.items()
        for query in queries
        if query["id"] not in collected
    ]
    if not missing:
        return collected
    settings = eval_settings(embedder)
    server = ServerThread(settings)
    runtime = server.server.runtime
    reranker = FACTORIES["pointwise"](runtime.chat_model)
    for collection, (documents, _) in {collections[n]: s for n, s in splits.items()}.items():
        server.run(runtime.search.index(collection, documents))
    for number, (collection, query) in enumerate(missing, 1):
        started = time.perf_counter()
        result = server.run(
            runtime.search.search(
                SearchQuery(collection, query["query"], top_k=candidates), deadline=None
            )
        )
        passages = [
            judge.Passage(str(h.chunk.chunk_id), with_title(h.chunk.title, h.chunk.text))
            for h in result.hits
        ]
        judged = server.run(reranker.score(query["query"], passages, timeout_s=None))
        collected[query["id"]] = {
            "candidates": [
                {"doc": h.chunk.document_id, "retrieval": h.score, "judge": judged[p.id]}
                for h, p in zip(result.hits, passages, strict=True)
            ],
            "judge_s": time.perf_counter() - started,
        }
        cache.write_text(json.dumps(collected, indent=1))
        print(f"{number}/{len(missing)} {query['id']}", file=sys.stderr, flush=True)
    server.stop()
    return collected


def ranks(collected: dict, queries: list[dict], weight: float | None) -> list[int | None]:  # type: ignore[type-arg]
    """The answer's rank among the candidates per query; ``None``: dense order."""
    out: list[int | None] = []
    for query in queries:
        rows = collected[query["id"]]["candidates"]
        order = list(range(len(rows)))
        if weight is not None:
            scores = blend([r["retrieval"] for r in rows], [r["judge"] for r in rows], weight)
            order.sort(key=lambda i: scores[i], reverse=True)
        docs = [rows[i]["doc"] for i in order]
        relevant = query["relevant"][0]
        out.append(docs.index(relevant) + 1 if relevant in docs else None)
    return out


def metrics(found: list[int | None], dense: list[int | None]) -> dict[str, float]:
    n = len(found)
    return {
        "R@1": sum(r == 1 for r in found) / n,
        "R@3": sum(r is not None and r <= 3 for r in found) / n,
        "MRR": sum(1 / r for r in found if r) / n,
        "out of top 3": sum(
            d is not None and d <= 3 and (r is None or r > 3)
            for r, d in zip(found, dense, strict=True)
        ),
    }


def fit(collected: dict, dev: list[dict]) -> float:  # type: ignore[type-arg]
    """The middle of the weights that reach dev's best MRR without a loss against dense."""
    dense_ranks = ranks(collected, dev, None)
    dense = metrics(dense_ranks, dense_ranks)
    rows = {w: metrics(ranks(collected, dev, w), dense_ranks) for w in WEIGHTS}
    allowed = {
        w: row["MRR"]
        for w, row in rows.items()
        if row["R@1"] >= dense["R@1"] and row["out of top 3"] == 0
    }
    best = max(allowed.values())
    plateau = [w for w, mrr in allowed.items() if mrr >= best - 1e-9]
    return plateau[len(plateau) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache", type=Path, default=ROOT / ".bench" / "rerank_judged.json")
    parser.add_argument("--embedder", default="")
    parser.add_argument("--candidates", type=int, default=3)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    embedder = args.embedder or Settings.model_fields["embedder"].default
    collected = collect(args.cache, embedder, args.candidates)
    by_split = {name: load_split(name)[1] for name in SPLITS}
    chosen = fit(collected, by_split["dev"])
    lines = [
        f"Embedder {embedder}, top {args.candidates} candidates, judged pointwise by the local "
        f"model; the weight is fitted on dev ({len(by_split['dev'])} queries) and held out on "
        f"test ({len(by_split['test'])}) and holdout ({len(by_split['holdout'])}). Chosen "
        f"weight: {chosen}. Judge time "
        f"{sum(v['judge_s'] for v in collected.values()) / len(collected):.1f} s a query.",
        "",
        "| split | order | R@1 | R@3 | MRR | answers pushed out of the top 3 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, subset in by_split.items():
        dense = ranks(collected, subset, None)
        for label, weight in (("dense", None), ("judge only (weight 1)", 1.0),
                              (f"blend, weight {chosen}", chosen)):  # fmt: skip
            row = metrics(ranks(collected, subset, weight), dense)
            lines.append(
                f"| {name} | {label} | {row['R@1']:.3f} | {row['R@3']:.3f} | {row['MRR']:.3f} "
                f"| {row['out of top 3']:.0f} |"
            )
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")


if __name__ == "__main__":
    main()
