"""EmbeddingGemma-300M three ways, in one run: torch fp32 (sentence-transformers,
the ``embeddinggemma`` embedder), ONNX Runtime fp32 (exported here from the
same weights by ``service/models/gemma_onnx.py``, or reused with ``--fp32``)
and ONNX Runtime int8 (the default ``embeddinggemma-int8``, as ``make
install`` exported it).

Each variant runs in a child process of its own, on one thread (the server
gives each inference call one), and reports: start (interpreter start to a
warm model, imports included), RSS after start, one query at a time (p50
over the 42 queries of tests/data/retrieval), queries in batches of 16 (ms a
query), passages/s (the 258 documents of tests/data/retrieval in the model
card's document format, batches as the embedder makes them), R@1 and MRR of
dense retrieval on that set (whole documents, no chunking or fusion: the
service's own figures are tests/test_search_quality.py's), and the vectors of
a drift corpus: the 258 documents with and without their titles, the
sentences of those that have several, the 582 phrases of
tests/data/phrases_*.tsv and examples/data (1,142 texts, 12 languages).
Drift is the cosine of int8 vectors to fp32 ones over that corpus.

torch fp32 is the baseline; ratios are against it, in the same run.

    python bench/embedder_bench.py [--fp32 PATH] [--markdown docs/bench/embedders.md]
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import psutil  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
MODEL_CACHE = ROOT / ".pytest_cache" / "xling-models"
VARIANTS = ("torch fp32", "ONNX fp32", "ONNX int8")
BATCH = 16


def documents() -> list[dict[str, str]]:
    lines = (DATA / "retrieval" / "docs.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line]


def queries() -> list[dict[str, object]]:
    lines = (DATA / "retrieval" / "queries.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line]


def passage(title: str, text: str) -> str:
    return f"title: {title or 'none'} | text: {text}"


def drift_corpus() -> list[str]:
    """Multilingual passages from the repository's own data, in document format."""
    texts = []
    for doc in documents():
        # With its title and without, as a chunk of an untitled document is.
        texts += [passage(doc["title"], doc["text"]), passage("", doc["text"])]
        sentences = [s for s in re.split(r"(?<=[.!?。！？])\s*", doc["text"]) if len(s) > 8]
        if len(sentences) > 1:
            texts += [passage("", sentence) for sentence in sentences]
    for name in ("phrases_tune.tsv", "phrases_heldout.tsv"):
        rows = (DATA / name).read_text().splitlines()[1:]
        texts += [passage("", row.split("\t", 1)[1]) for row in rows if "\t" in row]
    for line in (ROOT / "examples" / "data" / "docs.jsonl").read_text().splitlines():
        doc = json.loads(line)
        texts.append(passage(doc["title"], doc["text"]))
    return list(dict.fromkeys(texts))


def measure(variant: str, folder: Path, model: Path | None, weights: Path, out: Path) -> None:
    """In the child: loads one variant, times it, writes figures and vectors to ``out``."""
    if variant == "torch fp32":
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(1)
        st = SentenceTransformer(str(weights), device="cpu", local_files_only=True)
        prompt = st.prompts.get("query", "")

        def encode(texts: list[str]) -> np.ndarray:
            return st.encode(texts, prompt="", batch_size=32, normalize_embeddings=True)

    else:
        from xling.index.embedders.embeddinggemma_onnx import OnnxSession

        session = OnnxSession(folder, model)
        prompt = session.query_prompt
        encode = session.encode
    encode(["warm-up"])
    started_s = time.perf_counter() - STARTED
    rss = psutil.Process().memory_info().rss
    asked = [prompt + str(q["query"]) for q in queries()]
    singles = []
    for text in asked:
        began = time.perf_counter()
        encode([text])
        singles.append(time.perf_counter() - began)
    began = time.perf_counter()
    query_vectors = np.concatenate(
        [encode(asked[i : i + BATCH]) for i in range(0, len(asked), BATCH)]
    )
    batched_s = (time.perf_counter() - began) / len(asked)
    docs = [passage(d["title"], d["text"]) for d in documents()]
    began = time.perf_counter()
    doc_vectors = encode(docs)
    passages_s = len(docs) / (time.perf_counter() - began)
    corpus = drift_corpus()
    known = dict(zip(docs, doc_vectors, strict=True))
    rest = [t for t in corpus if t not in known]
    known |= dict(zip(rest, encode(rest), strict=True))
    np.save(out.with_suffix(".npy"), np.stack([known[t] for t in corpus]).astype(np.float32))
    ids = [d["id"] for d in documents()]
    ranks = []
    for query, vector in zip(queries(), query_vectors, strict=True):
        order = np.argsort(-(doc_vectors @ vector))[:10]
        top = [ids[i] for i in order]
        relevant = query["relevant"][0]  # type: ignore[index]
        ranks.append(1 / (top.index(relevant) + 1) if relevant in top else 0.0)
    out.write_text(
        json.dumps(
            {
                "start_s": started_s,
                "rss_mib": rss / 2**20,
                "single_p50_ms": statistics.median(singles) * 1000,
                "batched_ms": batched_s * 1000,
                "passages_s": passages_s,
                "r_at_1": sum(r == 1 for r in ranks) / len(ranks),
                "mrr": sum(ranks) / len(ranks),
            }
        )
    )


def cosines(a: np.ndarray, b: np.ndarray) -> str:
    c = np.sum(a * b, axis=1)
    return f"{c.mean():.4f} / {np.percentile(c, 1):.4f} / {c.min():.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", type=Path, help="write the report here")
    parser.add_argument("--measure", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--weights", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--fp32", type=Path, help="an fp32 export to reuse instead of exporting")
    args = parser.parse_args()
    if args.measure:
        measure(args.measure, args.folder, args.model, args.weights, args.out)
        return

    from provenance import provenance

    from xling.service.models import gemma_onnx
    from xling.service.models.wheelhouse import FOLDER_CATALOG, resolve_folder

    weights = resolve_folder(FOLDER_CATALOG["embeddinggemma-300m"], MODEL_CACHE)
    folder = gemma_onnx.locate(MODEL_CACHE)
    results: dict[str, dict[str, float]] = {}
    vectors: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="embedder-bench-") as work:
        fp32 = args.fp32 or Path(work) / "fp32.onnx"
        if args.fp32 is None:
            began = time.perf_counter()
            gemma_onnx.export_fp32(weights, fp32)
            print(f"fp32 export: {time.perf_counter() - began:.0f} s", flush=True)
        models = {"torch fp32": None, "ONNX fp32": fp32, "ONNX int8": None}
        for variant in VARIANTS:
            out = Path(work) / f"{variant.replace(' ', '-')}.json"
            command = [sys.executable, __file__, "--measure", variant, "--folder", str(folder),
                       "--weights", str(weights), "--out", str(out)]  # fmt: skip
            if models[variant] is not None:
                command += ["--model", str(models[variant])]
            subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            results[variant] = json.loads(out.read_text())
            vectors[variant] = np.load(out.with_suffix(".npy"))
            print(variant, results[variant], flush=True)
        sizes = {
            "ONNX fp32": fp32.stat().st_size,
            "ONNX int8": (folder / gemma_onnx.MODEL_FILE).stat().st_size,
            "torch fp32": sum(p.stat().st_size for p in weights.rglob("*.safetensors")),
        }
    manifest = json.loads((folder / "xling-onnx.json").read_text())
    base = results["torch fp32"]
    corpus = drift_corpus()
    lines = [
        "EmbeddingGemma-300M, one thread per variant, each in a process of its own; ratios "
        "against torch fp32 in the same run (higher is better for speed).",
        "",
        f"- int8 model: {folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder.name}"
        f", exported by `make install` (its check on a fixed sample: mean cosine to torch "
        f"{manifest['int8_mean_cosine']}); the fp32 graph exported here the same way",
        "",
        "| variant | start s | RSS MiB | 1 query p50 ms | batched ms/query | passages/s "
        "| speed-up 1 query / batched / passages | weights MB | R@1 | MRR |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for variant in VARIANTS:
        r = results[variant]
        lines.append(
            f"| {variant} | {r['start_s']:.1f} | {r['rss_mib']:.0f} | {r['single_p50_ms']:.1f} "
            f"| {r['batched_ms']:.1f} | {r['passages_s']:.1f} "
            f"| {base['single_p50_ms'] / r['single_p50_ms']:.1f}x / "
            f"{base['batched_ms'] / r['batched_ms']:.1f}x / "
            f"{r['passages_s'] / base['passages_s']:.1f}x "
            f"| {sizes[variant] / 1e6:.0f} | {r['r_at_1']:.3f} | {r['mrr']:.3f} |"
        )
    lines += [
        "",
        f"Drift over {len(corpus)} multilingual passages (tests/data/retrieval documents with "
        "and without titles and their sentences, tests/data/phrases_*.tsv, examples/data): "
        "cosine mean / 1st percentile / min.",
        "",
        "| pair | cosine mean / p1 / min |",
        "|---|---|",
        f"| ONNX int8 to ONNX fp32 | {cosines(vectors['ONNX int8'], vectors['ONNX fp32'])} |",
        f"| ONNX int8 to torch fp32 | {cosines(vectors['ONNX int8'], vectors['torch fp32'])} |",
        f"| ONNX fp32 to torch fp32 | {cosines(vectors['ONNX fp32'], vectors['torch fp32'])} |",
    ]
    body = "\n".join(lines) + "\n"
    print(body)
    if args.markdown:
        args.markdown.write_text(f"{provenance()}\n\n{body}")


if __name__ == "__main__":
    main()
