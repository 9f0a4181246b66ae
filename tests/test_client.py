"""xling.clients against real servers on loopback: both faces, deadlines, retries, splitting, auth.

Detection and languages run on the session server's local models; translation
runs on a server whose model is the fake Mistral API, configured with
``mistral_max_retries=0`` so that a scripted 429 or 503 reaches the client at
once, as RESOURCE_EXHAUSTED or UNAVAILABLE with the provider's Retry-After.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import xling.clients
from xling.clients import (
    AsyncClient,
    Client,
    DeadlineExceeded,
    InvalidArgument,
    Limits,
    RateLimited,
    RetryPolicy,
    Unauthenticated,
    Unavailable,
)
from xling.service.config import load_settings

from .conftest import ServerThread, french, mistral_backed_server
from .fakes.mistral_server import FakeMistralServer, chat, error, hang, translator
from .serve_process import free_port

SAMPLES = [
    ("de", "Guten Morgen zusammen, wie geht es euch?"),
    ("es", "Buenos días a todos, ¿cómo estáis?"),
    ("fr", "Merci beaucoup pour votre aide précieuse."),
    ("ja", "こんにちは、お元気ですか。"),
]


@pytest.fixture(scope="module")
def mistral_xling(
    fake: FakeMistralServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerThread]:
    thread = mistral_backed_server(
        fake, tmp_path_factory.mktemp("client-data"), mistral_max_retries=0
    )
    yield thread
    thread.stop()


@pytest.fixture
def model(mistral_xling: ServerThread, fake: FakeMistralServer) -> FakeMistralServer:
    """The fake behind ``mistral_xling``, back to a healthy "FR:" translator."""
    fake.reset()
    fake.set_default(chat(translator(french)))
    return fake


@pytest.fixture(scope="module")
def keyed(server: ServerThread) -> Iterator[ServerThread]:
    settings = load_settings(
        host="127.0.0.1", port=0, data_dir=server.settings.data_dir, api_keys="k1"
    )
    thread = ServerThread(settings, runtime=server.server.runtime)
    yield thread
    thread.stop()


def test_public_api() -> None:
    assert set(xling.clients.__all__) == {
        "AsyncClient", "Client", "DEFAULT_TARGET", "DEFAULT_TIMEOUT", "DeadlineExceeded",
        "InvalidArgument", "Limits", "NotFound", "RateLimited", "RetryPolicy", "TLSConfig",
        "Unauthenticated", "Unavailable", "Unimplemented", "XlingError",
    }  # fmt: skip
    assert all(hasattr(xling.clients, name) for name in xling.clients.__all__)
    assert (Path(xling.clients.__file__).parent / "py.typed").is_file()


async def test_both_faces_answer_alike(server: ServerThread) -> None:
    texts = [text for _, text in SAMPLES]
    with Client(server.target, timeout=30) as client:
        detected = client.detect_language(texts)
        languages = client.list_languages(display_language_code="de")
    async with AsyncClient(server.target, timeout=30) as client:
        assert await client.detect_language(texts) == detected
        assert await client.list_languages(display_language_code="de") == languages
    assert [d.languages[0].language_code for d in detected.detections] == [c for c, _ in SAMPLES]
    assert {lang.language_code: lang.display_name for lang in languages.languages}["fr"] == (
        "Französisch"
    )


async def test_translate_both_faces(mistral_xling: ServerThread, model: FakeMistralServer) -> None:
    options = {"target_language_code": "fr", "source_language_code": "en"}
    glossary = {"Dashboard": "Tableau de bord"}
    with Client(mistral_xling.target, timeout=30) as client:
        first = client.translate_text(["Open the Dashboard now"], glossary=glossary, **options)
    async with AsyncClient(mistral_xling.target, timeout=30) as client:
        again = await client.translate_text(
            ["Open the Dashboard now"], glossary=glossary, **options
        )
    assert first.translations[0].translated_text == "FR:Open the Tableau de bord now"
    assert again.translations[0].translated_text == first.translations[0].translated_text
    assert again.translations[0].cached


def test_more_items_than_a_request_holds_are_split(
    mistral_xling: ServerThread, model: FakeMistralServer
) -> None:
    contents = [f"Split segment number {i} of the long list" for i in range(2500)]
    with Client(mistral_xling.target, timeout=60) as client:
        response = client.translate_text(
            contents, target_language_code="fr", source_language_code="en"
        )
    assert [t.translated_text for t in response.translations] == [french(c) for c in contents]


async def test_split_detection_joins_in_order(server: ServerThread) -> None:
    count = 300  # three requests under these limits; detection is the slow part
    contents = [SAMPLES[i % len(SAMPLES)][1] for i in range(count)]
    async with AsyncClient(server.target, timeout=60, limits=Limits(max_items=128)) as client:
        response = await client.detect_language(contents)
    codes = [d.languages[0].language_code for d in response.detections]
    assert codes == [SAMPLES[i % len(SAMPLES)][0] for i in range(count)]


def test_more_characters_than_a_request_holds_are_split(client: Client) -> None:
    text = ("Das ist ein ganz gewöhnlicher deutscher Satz über das Wetter. " * 300)[:18_000]
    response = client.detect_language([text] * 30)  # 540,000 characters; the limit is 500,000
    assert [d.languages[0].language_code for d in response.detections] == ["de"] * 30


def test_violations_name_the_callers_index(
    mistral_xling: ServerThread, model: FakeMistralServer
) -> None:
    contents = [f"Violations segment {i}" for i in range(2500)]
    contents[2100] = "   "
    with Client(mistral_xling.target, timeout=60) as client, pytest.raises(InvalidArgument) as bad:
        client.translate_text(contents, target_language_code="fr", source_language_code="en")
    assert bad.value.field_violations == [("contents[2100]", "must not be empty")]
    assert bad.value.message.startswith("contents[2100]: ")
    unsplit = Client(mistral_xling.target, timeout=30, limits=None)
    with unsplit, pytest.raises(InvalidArgument) as bad:
        unsplit.translate_text(["Too many"] * 1025, target_language_code="fr")
    assert "contents" in dict(bad.value.field_violations)


def test_deadline_ends_a_hanging_call(
    mistral_xling: ServerThread, model: FakeMistralServer
) -> None:
    model.set_default(hang())
    started = time.monotonic()
    with Client(mistral_xling.target, timeout=30) as client, pytest.raises(DeadlineExceeded):
        client.translate_text(
            ["A sync call that hangs"], target_language_code="fr", source_language_code="en",
            timeout=1.0,
        )  # fmt: skip
    assert time.monotonic() - started < 2.5


async def test_client_timeout_ends_a_hanging_async_call(
    mistral_xling: ServerThread, model: FakeMistralServer
) -> None:
    model.set_default(hang())
    started = time.monotonic()
    async with AsyncClient(mistral_xling.target, timeout=1.0) as client:
        with pytest.raises(DeadlineExceeded):
            await client.translate_text(
                ["An async call that hangs"], target_language_code="fr", source_language_code="en"
            )
    assert time.monotonic() - started < 2.5


def test_unavailable_is_retried_until_the_server_listens(server: ServerThread) -> None:
    port = free_port()
    once = Client(f"127.0.0.1:{port}", timeout=5, retry=RetryPolicy.none())
    with once, pytest.raises(Unavailable):
        once.list_languages()
    late: list[ServerThread] = []

    def start_late() -> None:
        time.sleep(0.3)
        settings = load_settings(host="127.0.0.1", port=port, data_dir=server.settings.data_dir)
        late.append(ServerThread(settings, runtime=server.server.runtime))

    starter = threading.Thread(target=start_late)
    retrying = RetryPolicy(initial_backoff_s=0.2, max_backoff_s=2.0)
    try:
        with Client(f"127.0.0.1:{port}", timeout=10, retry=retrying) as client:
            starter.start()
            assert client.list_languages().languages
    finally:
        starter.join()
        for thread in late:
            thread.stop()


def test_unavailable_with_retry_info_is_retried(
    mistral_xling: ServerThread, model: FakeMistralServer
) -> None:
    model.script(error(503, retry_after=0.2))
    started = time.monotonic()
    with Client(mistral_xling.target, timeout=10) as client:
        response = client.translate_text(
            ["The backend was down for a moment"], target_language_code="fr",
            source_language_code="en",
        )  # fmt: skip
    assert response.translations[0].translated_text == french("The backend was down for a moment")
    assert time.monotonic() - started >= 0.2
    assert len(model.requests_to()) == 2


async def test_rate_limit_is_retried_after_the_servers_delay(
    mistral_xling: ServerThread, model: FakeMistralServer
) -> None:
    model.script(error(429, retry_after=0.3))
    started = time.monotonic()
    async with AsyncClient(mistral_xling.target, timeout=10) as client:
        response = await client.translate_text(
            ["The provider asked us to slow down"], target_language_code="fr",
            source_language_code="en",
        )  # fmt: skip
    assert response.translations[0].translated_text == french("The provider asked us to slow down")
    assert time.monotonic() - started >= 0.3
    assert len(model.requests_to()) == 2


def test_rate_limit_longer_than_the_deadline_is_raised_at_once(
    mistral_xling: ServerThread, model: FakeMistralServer
) -> None:
    model.set_default(error(429, retry_after=30))
    started = time.monotonic()
    with Client(mistral_xling.target, timeout=5) as client, pytest.raises(RateLimited) as caught:
        client.translate_text(["Limited for long"], target_language_code="fr")
    assert caught.value.retry_after == pytest.approx(30)
    assert time.monotonic() - started < 2.0
    assert len(model.requests_to()) == 1


async def test_api_key_is_sent_by_both_faces(keyed: ServerThread) -> None:
    with Client(keyed.target, api_key="k1", timeout=10) as client:
        assert client.list_languages().languages
    async with AsyncClient(keyed.target, api_key="k1", timeout=10) as client:
        assert (await client.detect_language(["Guten Morgen"])).detections
    async with AsyncClient(keyed.target, api_key="wrong", timeout=10) as client:
        with pytest.raises(Unauthenticated):
            await client.list_languages()
    with Client(keyed.target, timeout=10) as client, pytest.raises(Unauthenticated):
        client.list_languages()


def test_dns_target_with_round_robin(server: ServerThread) -> None:
    with Client(f"dns:///localhost:{server.server.port}", timeout=10) as client:
        assert client.list_languages().languages
