"""One-line JSON replies against free whitespace, on the embedded model.

The translation prompt and reply schema of the pipeline, one segment a call
(the local model's packing), sent to llama.cpp two ways in the same run: the
schema as ``response_format`` (llama.cpp lets the model choose its
whitespace; the baseline, as the local backend sent it before) and as an
llguidance grammar with whitespace fixed to one line (what the local backend
sends now). Reports seconds, generated tokens and chrF for each.

    python bench/local_json_bench.py [--markdown docs/bench/local_model.md]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import sacrebleu
import xllamacpp
from corpus_bench import write_section
from local_parallel_bench import SEGMENTS, add_model_dir_argument
from provenance import provenance

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xling.service.models.embedded import resolve_gguf  # noqa: E402
from xling.service.models.local_llama import one_line_grammar, server_params  # noqa: E402
from xling.service.prompts import json_data  # noqa: E402
from xling.service.prompts import load as load_prompt  # noqa: E402
from xling.service.translation.pipeline import (  # noqa: E402
    FORMALITY_INSTRUCTIONS,
    _reply_schema,
)

HEADING = "## One-line JSON replies"
MODEL = "qwen2.5-coder-1.5b-instruct-q4_k_m"


def start(model_dir: Path) -> xllamacpp.Server:
    """llama.cpp as the local backend starts it, one slot, no prompt cache."""
    socket_path = Path(tempfile.mkdtemp(prefix="json-bench-")) / "llama.sock"
    gguf_path = resolve_gguf(MODEL, model_dir)
    return xllamacpp.Server(server_params(gguf_path, socket_path, n_ctx=4096, threads=2))


def request(text: str, mode: str) -> dict[str, object]:
    system = load_prompt("translate").render(
        target_language="English", formality=FORMALITY_INSTRUCTIONS[""]
    )
    schema = _reply_schema(["s0"])
    body: dict[str, object] = {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": json_data({"segments": [{"id": "s0", "text": text}]})},
        ],
        "temperature": 0.0,
        "max_tokens": 256,
    }
    if mode == "response_format":
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "reply", "schema": schema, "strict": True},
        }
    else:
        body["grammar"] = one_line_grammar(schema)
    return body


def run(server: xllamacpp.Server, mode: str) -> tuple[float, int, float]:
    seconds, tokens, outputs = 0.0, 0, []
    for text, _ in SEGMENTS:
        started = time.perf_counter()
        reply = server.handle_chat_completions(request(text, mode))
        seconds += time.perf_counter() - started
        tokens += reply["usage"]["completion_tokens"]
        outputs.append(
            json.loads(reply["choices"][0]["message"]["content"])["translations"][0]["text"]
        )
    chrf = sacrebleu.corpus_chrf(outputs, [[r for _, r in SEGMENTS]]).score
    print(f"{mode}: {seconds:.1f} s, {tokens} tokens, chrF {chrf:.1f}", file=sys.stderr)
    return seconds, tokens, chrf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_dir_argument(parser)
    parser.add_argument("--markdown", type=Path, help="write the table into this file")
    args = parser.parse_args()
    server = start(args.model_dir)
    for mode in ("response_format", "grammar"):  # first use of each compiles its engine
        server.handle_chat_completions(request("Bonjour.", mode))
    base = run(server, "response_format")
    compact = run(server, "grammar")
    rows = [
        "| reply | seconds | generated tokens | speed-up | chrF |",
        "|---|---|---|---|---|",
        f"| schema as response_format (baseline) | {base[0]:.1f} | {base[1]} | 1.00 "
        f"| {base[2]:.1f} |",
        f"| one-line grammar | {compact[0]:.1f} | {compact[1]} | {base[0] / compact[0]:.2f} "
        f"| {compact[2]:.1f} |",
    ]
    result = "\n".join(rows)
    print(result)
    if args.markdown:
        setup = (
            f"{provenance()}\n\nThe {len(SEGMENTS)} segments of the parallel-decoding bench, "
            "one a call, temperature 0, 2 threads, one slot, the translation prompt and reply "
            "schema of the pipeline, both ways in the same run.\n\n"
        )
        write_section(args.markdown, HEADING, setup + result)


if __name__ == "__main__":
    main()
