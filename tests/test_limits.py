"""Request limits, the collection limit and rate limits per key, against real servers.

The acceptance test of the limits: with keys configured, no key and a wrong
key are UNAUTHENTICATED and a right key is served; 1,500 contents or 3 MB of
text are refused with details; the server is healthy after all of it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from xling.clients import Client, InvalidArgument, RateLimited, RetryPolicy, Unauthenticated
from xling.service.config import load_settings
from xling.service.ratelimit import TokenBucket, request_chars
from xling.v1 import search_pb2, search_pb2_grpc, translation_pb2

from .conftest import ServerThread, mistral_backed_server
from .fakes.mistral_server import FakeMistralServer

KEYS = "team-a:key-a,team-b:key-b,team-c:key-c"


@pytest.fixture(scope="module")
def limited(
    fake: FakeMistralServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerThread]:
    server = mistral_backed_server(
        fake, tmp_path_factory.mktemp("data"), api_keys=KEYS, max_collections=2
    )
    yield server
    server.stop()


def rate_limited_server(limited: ServerThread, **limits: object) -> ServerThread:
    """A server with ``limits`` on the models of ``limited``; buckets are per server."""
    settings = load_settings(
        host="127.0.0.1", port=0, data_dir=limited.settings.data_dir, api_keys=KEYS, **limits
    )
    return ServerThread(settings, runtime=limited.server.runtime)


def client(server: ServerThread, key: str | None) -> Client:
    # No splitting and no retries: each test sees the server's own answer.
    return Client(server.target, api_key=key, timeout=30, limits=None, retry=RetryPolicy.none())


def assert_healthy(server: ServerThread, key: str = "key-a") -> None:
    with grpc.insecure_channel(server.target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with client(server, key) as c:
        assert c.detect_language(["Guten Morgen"]).detections[0].languages


def test_acceptance_keys_and_request_limits(limited: ServerThread) -> None:
    for key in (None, "wrong-key"):
        with client(limited, key) as c, pytest.raises(Unauthenticated):
            c.detect_language(["hello"])
    with client(limited, "key-a") as c:
        assert c.detect_language(["Guten Morgen"]).detections[0].languages

        with pytest.raises(InvalidArgument) as too_many:
            c.translate_text(["Hello"] * 1500, target_language_code="fr")
        assert too_many.value.field_violations == [
            ("contents", "has 1500 items; at most 1024 are allowed")
        ]

        # 3 MB of text: under the 8 MiB message limit, over the character limits.
        with pytest.raises(InvalidArgument) as too_long:
            c.translate_text(["x" * 20_000] * 150, target_language_code="fr")
        assert too_long.value.field_violations == [
            ("contents", "has 3000000 characters in all; at most 500000 are allowed")
        ]
        with pytest.raises(InvalidArgument) as one_huge:
            c.detect_language(["y" * 3_000_000])
        assert one_huge.value.field_violations == [
            ("contents[0]", "has 3000000 characters; at most 20000 are allowed"),
            ("contents", "has 3000000 characters in all; at most 500000 are allowed"),
        ]
    assert_healthy(limited)


def test_collections_beyond_the_limit_are_refused(limited: ServerThread) -> None:
    document = [{"id": "d1", "text": "Le chat dort sur le canapé.", "language_code": "fr"}]
    with client(limited, "key-b") as c:
        c.index_documents("first", document)
        c.index_documents("second", document)
    with grpc.insecure_channel(limited.target) as channel:
        stub = search_pb2_grpc.SearchServiceStub(channel)
        request = search_pb2.IndexDocumentsRequest(
            collection="third", documents=[search_pb2.Document(id="d1", text="Bonjour")]
        )
        with pytest.raises(grpc.RpcError) as caught:
            stub.IndexDocuments(request, metadata=[("authorization", "Bearer key-b")], timeout=30)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "maximum of 2 collections" in caught.value.details()
    (detail,) = rpc_status.from_call(caught.value).details
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info)
    assert info.reason == "MAX_COLLECTIONS"
    with client(limited, "key-b") as c:
        # Existing collections still take documents.
        assert c.index_documents("first", document).indexed_count == 1


def test_request_rate_is_limited_per_key(limited: ServerThread) -> None:
    server = rate_limited_server(
        limited, rate_limit_requests_per_s=0.2, rate_limit_requests_burst=2
    )
    try:
        with client(server, "key-a") as a, client(server, "key-b") as b:
            a.list_languages()
            a.list_languages()
            with pytest.raises(RateLimited) as caught:
                a.list_languages()
            assert 0 < caught.value.retry_after <= 5
            assert "team-a" in caught.value.message
            assert "key-a" not in caught.value.message
            # Another key has its own bucket.
            b.list_languages()
        assert_healthy(server, key="key-c")
    finally:
        server.stop()


def test_character_rate_is_limited_before_any_model_call(
    limited: ServerThread, fake: FakeMistralServer
) -> None:
    server = rate_limited_server(limited, rate_limit_chars_per_s=10, rate_limit_chars_burst=1000)
    try:
        with client(server, "key-c") as c:
            c.detect_language(["a" * 600])
            calls = len(fake.requests)
            with pytest.raises(RateLimited) as caught:
                c.translate_text(["Good morning " * 40], target_language_code="fr")
            # The bucket holds about 400 characters and refills 10 a second.
            assert 5 < caught.value.retry_after <= 20
            assert len(fake.requests) == calls
            with pytest.raises(RateLimited) as too_big:
                c.detect_language(["b" * 1500])
            assert too_big.value.retry_after is None
            assert "split it" in too_big.value.message
    finally:
        server.stop()


def test_without_keys_callers_share_one_bucket(limited: ServerThread) -> None:
    settings = load_settings(
        host="127.0.0.1", port=0, data_dir=limited.settings.data_dir,
        rate_limit_requests_per_s=0.1, rate_limit_requests_burst=1,
    )  # fmt: skip
    server = ServerThread(settings, runtime=limited.server.runtime)
    try:
        with client(server, None) as first, client(server, "any-key") as second:
            first.list_languages()
            with pytest.raises(RateLimited):
                second.list_languages()
    finally:
        server.stop()


def test_token_bucket_refills_at_its_rate() -> None:
    now = itertools.count(0.0, 0.5)  # each reading of the clock is half a second later
    bucket = TokenBucket(rate=2.0, burst=4, clock=lambda: next(now))
    assert bucket.delay(4) == 0  # t=0.5: full
    bucket.take(4)
    assert bucket.delay(4) == pytest.approx(1.5)  # t=1.0: 1 token back, 3 missing at 2/s
    assert bucket.delay(2) == 0  # t=1.5: 2 tokens
    bucket.take(2)
    assert bucket.delay(10) == pytest.approx(4.5)  # t=2.0: 1 token, 9 missing


def test_request_chars_counts_every_text_field() -> None:
    request = translation_pb2.TranslateTextRequest(
        contents=["Hello", "world"],
        target_language_code="fr",
        glossary=[translation_pb2.GlossaryEntry(source="Hello", target="Bonjour")],
    )
    assert request_chars(request) == 5 + 5 + 2 + 5 + 7
    search = search_pb2.SearchRequest(query="chat", metadata_filter={"team": "a"})
    assert request_chars(search) == 4 + 4 + 1
