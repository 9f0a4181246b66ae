"""Language detection on short phrases: accuracy, speed and calibration.

Measures top-1 accuracy on tests/data/phrases_heldout.tsv and single-thread
detections per second for langdetect (the baseline), fastText (lid.176.ftz),
py3langid, the script rules and the ensemble, all in this run, and the
ensemble's calibration on the held-out phrases (expected calibration error,
10 bins, and a reliability table).

    python bench/detect_bench.py [--quick | --smoke] [--markdown docs/bench/detection.md]
    python bench/detect_bench.py --fit

``--fit`` instead grid-searches the ensemble's weights on
tests/data/phrases_tune.tsv alone and prints them for
``xling.service.detection.ensemble.FITTED_WEIGHTS``; it never reads the
held-out phrases.
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from provenance import provenance
from py3langid.langid import MODEL_FILE, LanguageIdentifier

from xling.service.detection import LanguageScore, create_detector
from xling.service.detection.ensemble import EnsembleDetector, EnsembleWeights, Evidence
from xling.service.detection.script_rules import ranked

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
_PY3LANGID_CODES = {"no": "nb", "arz": "ar", "ary": "ar", "wuu": "zh", "yue": "zh"}


def load_phrases(name: str) -> list[tuple[str, str]]:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()[1:]
    return [(lang, text) for lang, text in (line.split("\t", 1) for line in lines if line)]


class Py3langid:
    """py3langid (a langid.py fork) behind the detector interface, for comparison."""

    name = "py3langid"

    def __init__(self) -> None:
        self._identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)

    def detect(self, text: str, top_k: int = 3) -> list[LanguageScore]:
        return [
            LanguageScore(_PY3LANGID_CODES.get(lang, lang), float(prob))
            for lang, prob in self._identifier.rank(text)[:top_k]
        ]


@dataclass
class Row:
    name: str
    accuracy: float
    per_second: float


def measure(
    name: str,
    detect: Callable[[str], list[LanguageScore]],
    phrases: Sequence[tuple[str, str]],
    min_seconds: float,
) -> tuple[Row, list[LanguageScore]]:
    tops = [detect(text)[0] for _, text in phrases]
    accuracy = sum(top.language_code == lang for top, (lang, _) in zip(tops, phrases, strict=True))
    speed = _speed(detect, [text for _, text in phrases], min_seconds)
    return Row(name, accuracy / len(phrases), speed), tops


def _speed(
    detect: Callable[[str], list[LanguageScore]], texts: list[str], min_seconds: float
) -> float:
    """Detections per second over whole passes, for at least ``min_seconds``."""
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_seconds or done == 0:
        for text in texts:
            detect(text)
        done += len(texts)
    return done / elapsed


def calibration(
    tops: Sequence[LanguageScore], phrases: Sequence[tuple[str, str]], bins: int = 10
) -> tuple[float, list[tuple[str, int, float, float]]]:
    """Expected calibration error of top-1 confidences, and per non-empty bin:
    range, count, mean confidence, accuracy."""
    table: list[tuple[str, int, float, float]] = []
    error = 0.0
    for index in range(bins):
        low, high = index / bins, (index + 1) / bins
        members = [
            (top.confidence, top.language_code == lang)
            for top, (lang, _) in zip(tops, phrases, strict=True)
            if low <= top.confidence < high or (index == bins - 1 and top.confidence == 1.0)
        ]
        if not members:
            continue
        confidence = sum(c for c, _ in members) / len(members)
        accuracy = sum(ok for _, ok in members) / len(members)
        error += len(members) / len(tops) * abs(confidence - accuracy)
        table.append((f"{low:.1f}-{high:.1f}", len(members), confidence, accuracy))
    return error, table


def render(
    rows: list[Row],
    ece: float,
    reliability: list[tuple[str, int, float, float]],
    phrases: Sequence[tuple[str, str]],
) -> str:
    base = next(row for row in rows if row.name == "langdetect")
    languages = len({lang for lang, _ in phrases})
    lines = [
        provenance(),
        "",
        f"Top-1 accuracy on {len(phrases)} held-out short phrases (2-6 words, {languages}"
        " languages; tests/data/phrases_heldout.tsv) and single-thread detections per second;"
        " langdetect, the baseline, is measured in the same run. py3langid is a comparison"
        " only: it is not part of the service's detectors.",
        "",
        "| detector | top-1 accuracy | vs langdetect | detections/s | vs langdetect |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {row.name} | {row.accuracy:.3f} | {row.accuracy / base.accuracy:.2f}x"
        f" | {row.per_second:,.0f} | {row.per_second / base.per_second:.2f}x |"
        for row in rows
    ]
    lines += [
        "",
        f"Ensemble calibration on the held-out phrases: expected calibration error {ece:.3f}"
        " (top-1 confidence, 10 bins).",
        "",
        "| confidence | phrases | mean confidence | accuracy |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {rng} | {count} | {conf:.3f} | {acc:.3f} |" for rng, count, conf, acc in reliability
    ]
    return "\n".join(lines) + "\n"


def run(min_seconds: float, markdown: Path | None) -> None:
    phrases = load_phrases("phrases_heldout.tsv")
    detect: dict[str, Callable[[str], list[LanguageScore]]] = {
        "langdetect": create_detector("langdetect", seed=0).detect,
        "fasttext": create_detector("fasttext").detect,
        "py3langid": Py3langid().detect,
        "script": create_detector("script").detect,
        "ensemble": create_detector("ensemble", seed=0).detect,  # last: its tops are kept
    }
    rows: list[Row] = []
    tops: list[LanguageScore] = []
    for name, function in detect.items():
        row, tops = measure(name, function, phrases, min_seconds)
        rows.append(row)
        print(f"{name:>10}: accuracy {row.accuracy:.3f}, {row.per_second:,.0f}/s", flush=True)
    ece, reliability = calibration(tops, phrases)
    table = render(rows, ece, reliability, phrases)
    print(table)
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(table, encoding="utf-8")


def _score(
    ensemble: EnsembleDetector,
    evidence: list[Evidence],
    langs: list[str],
    weights: EnsembleWeights,
) -> tuple[float, float]:
    """Top-1 accuracy and mean log-loss of ``weights`` on gathered evidence."""
    correct, loss = 0, 0.0
    for item, lang in zip(evidence, langs, strict=True):
        scores = ensemble.combine(item, weights)
        correct += ranked(scores, 1)[0].language_code == lang
        loss -= math.log(max(scores.get(lang, 0.0), 1e-6))
    return correct / len(langs), loss / len(langs)


def fit() -> None:
    phrases = load_phrases("phrases_tune.tsv")
    langs = [lang for lang, _ in phrases]
    ensemble = EnsembleDetector(seed=0)
    evidence = [ensemble.gather(text) for _, text in phrases]
    best: tuple[float, float, EnsembleWeights] | None = None
    grid = itertools.product(
        (0.25, 0.5, 0.75),  # langdetect
        (1e-3, 3e-3, 1e-2),  # floor
        (8.0, 12.0, 16.0, 24.0),  # function words
        # fastText-only penalty, capped: the tune set has no text in those
        # languages, so it cannot show what a higher one costs them.
        (0.0, 1.0, 2.0),
        (1.0, 2.0, 4.0),  # latin letter penalty
        (2.0, 6.0),  # other letter penalty
    )
    for ld, floor, words, only, latin, other in grid:
        weights = EnsembleWeights(ld, floor, words, only, latin, other, 1.0)
        accuracy, loss = _score(ensemble, evidence, langs, weights)
        if best is None or (accuracy, -loss) > (best[0], -best[1]):
            best = (accuracy, loss, weights)
    assert best is not None
    accuracy, loss, weights = best
    temperatures = [0.25 * 1.1**step for step in range(40)]
    losses = {
        t: _score(ensemble, evidence, langs, replace(weights, temperature=t))[1]
        for t in temperatures
    }
    temperature = min(losses, key=losses.__getitem__)
    weights = replace(weights, temperature=round(temperature, 3))
    tops = [ranked(ensemble.combine(item, weights), 1)[0] for item in evidence]
    ece, _ = calibration(tops, phrases)
    print(f"tune: {len(phrases)} phrases, accuracy {accuracy:.3f}")
    print(f"log-loss {loss:.3f} at T=1, {losses[temperature]:.3f} at T={temperature:.3f}")
    print(f"expected calibration error on tune {ece:.3f}")
    print(weights)
    for item, (lang, text) in zip(evidence, phrases, strict=True):
        top = ranked(ensemble.combine(item, weights), 1)[0]
        if top.language_code != lang:
            print(f"  miss {lang} -> {top.language_code} ({top.confidence:.2f}): {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--quick", action="store_true", help="speed runs of 0.3 s")
    speed.add_argument("--smoke", action="store_true", help="one pass per detector (tests)")
    parser.add_argument("--markdown", type=Path, help="write the table to this file")
    parser.add_argument("--fit", action="store_true", help="fit the ensemble on the tune set")
    args = parser.parse_args()
    if args.fit:
        fit()
    else:
        run(0.0 if args.smoke else 0.3 if args.quick else 3.0, args.markdown)


if __name__ == "__main__":
    main()
