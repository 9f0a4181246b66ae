"""Prometheus metrics: real calls against a real server, then a scrape of its port."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from xling.clients import Client, InvalidArgument, RateLimited, Unauthenticated
from xling.service.config import load_settings

from .conftest import ServerThread, french, mistral_backed_server
from .fakes.mistral_server import FakeMistralServer, chat, error, translator

TRANSLATE = "/xling.v1.TranslationService/TranslateText"
DETECT = "/xling.v1.TranslationService/DetectLanguage"
INDEX = "/xling.v1.SearchService/IndexDocuments"


@pytest.fixture(scope="module")
def metered(
    fake: FakeMistralServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerThread]:
    fake.set_default(chat(translator(french)))
    server = mistral_backed_server(
        fake, tmp_path_factory.mktemp("data"), metrics_port=0, api_keys="team-a:key-a"
    )
    yield server
    server.stop()


def scrape(server: ServerThread) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the server's /metrics: (name, labels) -> value."""
    port = server.server.metrics_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_calls_are_counted_by_method_code_key_and_backend(
    metered: ServerThread, fake: FakeMistralServer
) -> None:
    with Client(metered.target, api_key="key-a", timeout=30) as client:
        client.translate_text(["Good morning", "Thank you"], target_language_code="fr")
        client.translate_text(["Good morning", "Thank you"], target_language_code="fr")
        fake.script(error(429, retry_after=0.1))
        client.translate_text(["See you tomorrow"], target_language_code="fr")
        with pytest.raises(InvalidArgument):
            client.detect_language([" "])
        client.index_documents(
            "news",
            [{"id": "a", "text": "Le chat dort.", "language_code": "fr"},
             {"id": "b", "text": "Der Hund bellt.", "language_code": "de"}],
        )  # fmt: skip
    with Client(metered.target, timeout=30) as anonymous, pytest.raises(Unauthenticated):
        anonymous.detect_language(["hello"])

    samples = scrape(metered)
    assert value(samples, "xling_rpcs_total", method=TRANSLATE, code="OK", key="team-a") == 3
    assert (
        value(samples, "xling_rpcs_total", method=DETECT, code="INVALID_ARGUMENT", key="team-a")
        == 1
    )
    assert (
        value(samples, "xling_rpcs_total", method=DETECT, code="UNAUTHENTICATED", key="anonymous")
        == 1
    )
    assert value(samples, "xling_rpcs_total", method=INDEX, code="OK", key="team-a") == 1
    assert value(samples, "xling_rpc_duration_seconds_count", method=TRANSLATE, code="OK") == 3
    assert value(samples, "xling_rpcs_in_flight", method=TRANSLATE) == 0
    # Two calls reached the model; the second after one retry of a 429.
    assert value(samples, "xling_model_calls_total", backend="mistral") == 2
    assert value(samples, "xling_model_retries_total", backend="mistral") == 1
    assert value(samples, "xling_model_call_duration_seconds_count", backend="mistral") == 2
    assert value(samples, "xling_model_tokens_total", backend="mistral", kind="prompt") > 0
    assert value(samples, "xling_model_tokens_total", backend="mistral", kind="completion") > 0
    assert value(samples, "xling_model_queue_depth", backend="mistral") == 0
    assert value(samples, "xling_translation_cache_lookups_total", result="hit") == 2
    assert value(samples, "xling_translation_cache_lookups_total", result="miss") == 3
    assert value(samples, "xling_index_chunks", collection="news") == 2
    assert value(samples, "xling_blocking_queue_depth") == 0


def test_model_errors_are_counted_by_error(metered: ServerThread, fake: FakeMistralServer) -> None:
    before = value(
        scrape(metered), "xling_model_errors_total", backend="mistral", error="ResourceExhausted"
    )
    fake.script(error(429, retry_after=60))
    # The 60 s Retry-After does not fit the call's deadline: it fails at once.
    with (
        Client(metered.target, api_key="key-a", timeout=30) as client,
        pytest.raises(RateLimited),
    ):
        client.translate_text(["Good night"], target_language_code="fr")
    after = value(
        scrape(metered), "xling_model_errors_total", backend="mistral", error="ResourceExhausted"
    )
    assert (after or 0) - (before or 0) == 1


def test_each_server_counts_its_own_calls(metered: ServerThread) -> None:
    settings = load_settings(
        host="127.0.0.1", port=0, data_dir=metered.settings.data_dir, metrics_port=0
    )
    other = ServerThread(settings, runtime=metered.server.runtime)
    try:
        assert other.server.metrics_port != metered.server.metrics_port
        with Client(other.target, timeout=30) as client:
            client.list_languages()
        samples = scrape(other)
        method = "/xling.v1.TranslationService/ListLanguages"
        assert value(samples, "xling_rpcs_total", method=method, code="OK", key="anonymous") == 1
        assert value(samples, "xling_rpcs_total", method=TRANSLATE, code="OK", key="team-a") is None
    finally:
        other.stop()


def test_no_metrics_port_unless_configured(metered: ServerThread) -> None:
    settings = load_settings(host="127.0.0.1", port=0, data_dir=metered.settings.data_dir)
    assert settings.metrics_port is None
    quiet = ServerThread(settings, runtime=metered.server.runtime)
    try:
        assert quiet.server.metrics_port is None
    finally:
        quiet.stop()
