"""The embedded model's throughput with parallel decoding, and what it does to quality.

One TranslateText request of 24 short segments (French, German and Japanese
into English, the source detected) against an in-process server on the
embedded GGUF model, at ``local_parallel`` 1 (the baseline: one sequence at a
time, as before parallel slots), 2 and 4, in the same run, each with a fresh
translation memory. Segments go one a model call (the local model's packing)
and ``model_concurrency`` calls at a time, so with P slots P of them decode
together. Quality is the chrF (sacrebleu) of the outputs against reference
translations written for this benchmark.

    python bench/local_parallel_bench.py [--parallel 1 2 4] [--markdown docs/bench/local_model.md]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import sacrebleu
from corpus_bench import write_section
from provenance import provenance

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import ServerThread  # noqa: E402
from xling.clients import Client  # noqa: E402
from xling.service.config import load_settings  # noqa: E402

HEADING = "## Parallel decoding (local_parallel)"

# (source, reference English translation)
SEGMENTS = [
    ("Le chat dort sur le canapé depuis ce matin.",
     "The cat has been sleeping on the sofa since this morning."),
    ("Nous partons en vacances à la montagne cet été.",
     "We are going on holiday to the mountains this summer."),
    ("Pouvez-vous m'indiquer le chemin de la gare ?", "Can you show me the way to the station?"),
    ("La réunion commence dans dix minutes.", "The meeting starts in ten minutes."),
    ("J'ai oublié mon parapluie dans le bus.", "I forgot my umbrella on the bus."),
    ("Ce livre raconte l'histoire d'une famille paysanne.",
     "This book tells the story of a peasant family."),
    ("Le médecin m'a conseillé de me reposer.", "The doctor advised me to rest."),
    ("Les enfants adorent les crêpes au chocolat.", "The children love chocolate crêpes."),
    ("Der Zug nach Berlin hat heute Morgen Verspätung.",
     "The train to Berlin is late this morning."),
    ("Könnten Sie mir den Bericht bis Freitag schicken?",
     "Could you send me the report by Friday?"),
    ("Mein Bruder wohnt in einem kleinen Haus am See.",
     "My brother lives in a small house by the lake."),
    ("Das Museum ist am ersten Sonntag des Monats kostenlos.",
     "The museum is free on the first Sunday of the month."),
    ("Bitte schalten Sie das Licht aus, wenn Sie den Raum verlassen.",
     "Please turn off the light when you leave the room."),
    ("Wir haben unsere Datenschutzerklärung aktualisiert.", "We have updated our privacy policy."),
    ("Die Kinder spielen im Garten.", "The children are playing in the garden."),
    ("Dieses Restaurant serviert die beste Suppe der Stadt.",
     "This restaurant serves the best soup in town."),
    ("明日の会議は午後三時に始まります。", "Tomorrow's meeting starts at three in the afternoon."),
    ("駅までの道を教えていただけますか。", "Could you tell me the way to the station?"),
    ("この本はとても面白かったです。", "This book was very interesting."),
    ("週末は家族と海に行きました。", "I went to the sea with my family at the weekend."),
    ("新しいパソコンを買いたいと思っています。", "I am thinking of buying a new computer."),
    ("雨が降っているので傘を持って行きましょう。", "It is raining, so let's take an umbrella."),
    ("彼は毎朝公園を走っています。", "He runs in the park every morning."),
    ("このレストランの寿司はとても美味しいです。", "The sushi at this restaurant is very good."),
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Run:
    parallel: int
    seconds: float
    errors: int
    chrf: float

    @property
    def segments_per_s(self) -> float:
        return len(SEGMENTS) / self.seconds


def measure(parallel: int, model_dir: Path, work: Path) -> Run:
    settings = load_settings(
        port=0, data_dir=work / f"data-{parallel}", model_dir=model_dir, chat_backend="local",
        local_parallel=parallel, log_format="text", log_level="WARNING",
    )  # fmt: skip
    server = ServerThread(settings)
    try:
        with Client(server.target, timeout=1800) as client:
            started = time.perf_counter()
            response = client.translate_text([s for s, _ in SEGMENTS], target_language_code="en")
            seconds = time.perf_counter() - started
    finally:
        server.stop()
    outputs = [t.translated_text for t in response.translations]
    references = [r for _, r in SEGMENTS]
    chrf = sacrebleu.corpus_chrf(outputs, [references]).score
    errors = sum(1 for t in response.translations if t.error)
    run = Run(parallel, seconds, errors, chrf)
    print(f"parallel {parallel}: {run}", file=sys.stderr)
    return run


def table(runs: list[Run]) -> str:
    base = runs[0]
    rows = [
        "| local_parallel | seconds | segments/s | speed-up | chrF | chrF change | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        label = f"{run.parallel}" + (" (baseline)" if run is base else "")
        rows.append(
            f"| {label} | {run.seconds:.1f} | {run.segments_per_s:.3f} "
            f"| {run.segments_per_s / base.segments_per_s:.2f} | {run.chrf:.1f} "
            f"| {run.chrf - base.chrf:+.1f} | {run.errors} |"
        )
    return "\n".join(rows)


def add_model_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-dir", type=Path, default=ROOT / ".pytest_cache" / "xling-models",
        help="where the embedded model is assembled (the tests' cache by default)",
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 2, 4])
    add_model_dir_argument(parser)
    parser.add_argument("--markdown", type=Path, help="write the table into this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="parallel-bench-") as directory:
        runs = [measure(p, args.model_dir, Path(directory)) for p in args.parallel]
    result = table(runs)
    print(result)
    if args.markdown:
        setup = (
            f"{provenance()}\n\nOne request of {len(SEGMENTS)} short segments (French, German, "
            "Japanese into English, source detected) on the embedded model, "
            "`XLING_LOCAL_THREADS=2`, `XLING_MODEL_CONCURRENCY=4`, at each `local_parallel` "
            "in the same run, each with an empty translation memory; the first row, one "
            "sequence at a time, is how the model ran before parallel slots. chrF is "
            "sacrebleu's, against references written for the benchmark; at temperature 0.2 "
            "two runs of the same setting differ by about a point.\n\n"
        )
        write_section(args.markdown, HEADING, setup + result)


if __name__ == "__main__":
    main()
