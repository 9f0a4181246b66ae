"""Grounded summaries and what rerank and summary cost, on the local model.

Runs the queries of one split of tests/data/retrieval (``test`` by default: the
held-out clusters; ``holdout``: the 20 clusters written after dev and test had
chosen the settings) through a real server on the embedded defaults, as a client
would: Search with summarize, with and without rerank. A summary passes when
py3langid (an independent judge, not the server's detector), choosing among
the languages of the set's queries, reads it in the query's language and its
citations include the document that holds the answer.
Model calls and tokens per query come from the server's own Prometheus counters.

    python bench/summary_quality.py [--split dev|test|holdout] [--limit N] [--modes summary]
        [--markdown FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from py3langid.langid import MODEL_FILE, LanguageIdentifier

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.search_quality import SPLITS, eval_settings, load_set, load_split  # noqa: E402
from tests.conftest import ServerThread  # noqa: E402
from xling.clients import Client  # noqa: E402
from xling.v1 import search_pb2  # noqa: E402

MODES = {"summary": False, "rerank + summary": True}


def counters(server: ServerThread) -> tuple[float, float]:
    """Model calls and tokens so far on this server."""
    registry = server.server.metrics.registry
    calls = registry.get_sample_value("xling_model_calls_total", {"backend": "local"}) or 0.0
    tokens = sum(
        registry.get_sample_value("xling_model_tokens_total", {"backend": "local", "kind": kind})
        or 0.0
        for kind in ("prompt", "completion")
    )
    return calls, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument("--limit", type=int, default=0, help="first N queries of the split")
    parser.add_argument("--ids", default="", help="comma-separated query ids of the split only")
    parser.add_argument(
        "--modes", default=",".join(MODES), help="comma-separated: " + ", ".join(MODES)
    )
    parser.add_argument("--embedder", default="")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    documents, queries = load_split(args.split)
    # Among all 97 of its languages, py3langid reads a short Arabic answer as
    # Egyptian Arabic and "90 dias" as Extremaduran. The set's 12, not the split's:
    # dev has no Turkish question, and a Turkish answer must still read as Turkish.
    judge = LanguageIdentifier.from_model_file(MODEL_FILE)
    judge.set_languages(sorted({q["language"] for q in load_set()[1]}))
    if args.ids:
        queries = [q for q in queries if q["id"] in args.ids.split(",")]
    queries = queries[: args.limit or None]
    settings = eval_settings(args.embedder)
    server = ServerThread(settings)
    proto_docs = [
        search_pb2.Document(id=d.id, text=d.text, title=d.title, language_code=d.language_code)
        for d in documents
    ]
    rows = []
    with Client(server.target, timeout=900) as client:
        client.index_documents("eval", proto_docs)
        for mode in args.modes.split(","):
            rerank = MODES[mode]
            language_ok = cited_ok = 0
            seconds, calls, tokens = [], [], []
            for query in queries:
                before = counters(server)
                started = time.perf_counter()
                reply = client.search(
                    "eval", query["query"], top_k=5, rerank=rerank, summarize=True
                )
                seconds.append(time.perf_counter() - started)
                after = counters(server)
                calls.append(after[0] - before[0])
                tokens.append(after[1] - before[1])
                language = judge.classify(reply.summary.text)[0]
                language_ok += language == query["language"]
                cited_ok += query["relevant"][0] in reply.summary.cited_document_ids
                print(
                    f"{mode} {query['id']} [{language}] {reply.summary.text[:90]!r} "
                    f"cites {list(reply.summary.cited_document_ids)}",
                    file=sys.stderr,
                    flush=True,
                )
            n = len(queries)
            rows.append(
                f"| {mode} | {n} | {language_ok / n:.2f} | {cited_ok / n:.2f} "
                f"| {statistics.median(seconds):.1f} | {max(seconds):.1f} "
                f"| {statistics.mean(calls):.1f} | {statistics.mean(tokens):.0f} |"
            )
    model = server.server.runtime.chat_model.name
    server.stop()
    table = "\n".join(
        [
            f"Split {args.split} of tests/data/retrieval ({len(documents)} documents), "
            f"embedder {settings.embedder}, model {model}, summary over the best "
            f"{settings.summary_passages} documents "
            f"within {settings.summary_score_margin} of the best score, rerank of "
            f"the top {settings.resolved_rerank_candidates} with weight "
            f"{settings.resolved_rerank_weight}.",
            "",
            "| search | queries | summary in the query's language | cites the answer "
            "| s/query p50 | s/query max | model calls/query | tokens/query |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")


if __name__ == "__main__":
    main()
