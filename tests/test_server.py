"""The server on loopback: health, reflection, detection, languages, errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from xling.clients import Client, InvalidArgument
from xling.v1 import translation_pb2, translation_pb2_grpc

from .conftest import DATA, ServerThread


def test_health_overall_and_per_service(server: ServerThread) -> None:
    with grpc.insecure_channel(server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "xling.v1.TranslationService", "xling.v1.SearchService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
        with pytest.raises(grpc.RpcError) as caught:
            health.Check(health_pb2.HealthCheckRequest(service="no.Such"), timeout=5)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_services(server: ServerThread) -> None:
    with grpc.insecure_channel(server.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        reply = next(iter(stub.ServerReflectionInfo(iter([request]), timeout=5)))
        names = {service.name for service in reply.list_services_response.service}
    assert {
        "xling.v1.TranslationService",
        "xling.v1.SearchService",
        "grpc.health.v1.Health",
    } <= names


def test_request_id_is_echoed(server: ServerThread) -> None:
    with grpc.insecure_channel(server.target) as channel:
        stub = translation_pb2_grpc.TranslationServiceStub(channel)
        _, call = stub.DetectLanguage.with_call(
            translation_pb2.DetectLanguageRequest(contents=["hello world"]),
            metadata=(("x-request-id", "req-123"),),
            timeout=10,
        )
    assert ("x-request-id", "req-123") in call.initial_metadata()


def _heldout() -> list[tuple[str, str]]:
    lines = (DATA / "phrases_heldout.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [tuple(line.split("\t", 1)) for line in lines if line.strip()]  # type: ignore[misc]


def test_detect_language_heldout_accuracy(client: Client) -> None:
    rows = _heldout()
    response = client.detect_language([text for _, text in rows])
    assert len(response.detections) == len(rows)
    correct = 0
    for (expected, _), detection in zip(rows, response.detections, strict=True):
        confidences = [c.confidence for c in detection.languages]
        assert confidences == sorted(confidences, reverse=True)
        assert all(0.0 <= c <= 1.0 for c in confidences)
        correct += detection.languages[0].language_code == expected
    assert correct / len(rows) >= 0.95


def test_list_languages_display_names(client: Client) -> None:
    languages = {lang.language_code: lang for lang in client.list_languages().languages}
    assert languages["de"].display_name == "German"
    assert languages["zh-Hans"].supports_target
    french = {
        lang.language_code: lang.display_name
        for lang in client.list_languages(display_language_code="FR").languages
    }
    assert french["de"] == "allemand"
    chinese = client.list_languages(display_language_code="zh_Hans").languages
    assert {lang.language_code: lang.display_name for lang in chinese}["en"] == "英语"


def _violations(excinfo: pytest.ExceptionInfo[InvalidArgument]) -> dict[str, str]:
    return dict(excinfo.value.field_violations)


@pytest.fixture
def raw_detect(server: ServerThread) -> Iterator[Callable[[list[str]], dict[str, str]]]:
    """DetectLanguage without the client, which would split oversized requests;
    returns the field violations of the INVALID_ARGUMENT it must end with."""
    with grpc.insecure_channel(server.target) as channel:
        stub = translation_pb2_grpc.TranslationServiceStub(channel)

        def call(contents: list[str]) -> dict[str, str]:
            with pytest.raises(grpc.RpcError) as caught:
                stub.DetectLanguage(
                    translation_pb2.DetectLanguageRequest(contents=contents), timeout=30
                )
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            status = rpc_status.from_call(caught.value)
            assert status is not None
            bad_request = error_details_pb2.BadRequest()
            assert status.details[0].Unpack(bad_request)
            return {v.field: v.description for v in bad_request.field_violations}

        yield call


@pytest.mark.parametrize(
    ("contents", "field"),
    [
        ([], "contents"),
        (["ok", "  "], "contents[1]"),
        (["x"] * 1025, "contents"),
        (["a" * 30_000], "contents[0]"),
    ],
    ids=["empty-list", "empty-string", "1025-items", "long-item"],
)
def test_detect_bad_input(raw_detect, contents: list[str], field: str) -> None:  # type: ignore[no-untyped-def]
    assert field in raw_detect(contents)


def test_megabytes_of_text_are_refused(raw_detect) -> None:  # type: ignore[no-untyped-def]
    violations = raw_detect(["word " * 3_000] * 200)  # 3 MB in all
    assert "has 3000000 characters in all" in violations["contents"]


def test_message_over_transport_limit_is_resource_exhausted(server: ServerThread) -> None:
    with grpc.insecure_channel(server.target) as channel:
        stub = translation_pb2_grpc.TranslationServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.DetectLanguage(translation_pb2.DetectLanguageRequest(contents=["a" * 9_000_000]))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_translate_bad_input_reports_every_field(client: Client) -> None:
    with pytest.raises(InvalidArgument) as caught:
        client.translate_text(
            ["hello", ""],
            target_language_code="xx",
            source_language_code="en--",
            mime_type="application/pdf",
        )
    violations = _violations(caught)
    assert set(violations) == {
        "contents[1]",
        "target_language_code",
        "source_language_code",
        "mime_type",
    }
    assert "unknown language code" in violations["target_language_code"]


def test_translate_requires_target(client: Client) -> None:
    with pytest.raises(InvalidArgument) as caught:
        client.translate_text(["hello"], target_language_code="")
    assert _violations(caught) == {"target_language_code": "is required"}


def test_unknown_display_language(client: Client) -> None:
    with pytest.raises(InvalidArgument) as caught:
        client.list_languages(display_language_code="qq")
    assert "display_language_code" in _violations(caught)


def test_search_bad_input(client: Client) -> None:
    with pytest.raises(InvalidArgument) as caught:
        client.search("bad name!", "", top_k=101, language_codes=["zz"])
    assert set(_violations(caught)) == {"collection", "query", "top_k", "language_codes[0]"}


def test_unknown_method_is_unimplemented(server: ServerThread) -> None:
    with grpc.insecure_channel(server.target) as channel:
        call = channel.unary_unary("/xling.v1.TranslationService/NoSuchMethod")
        with pytest.raises(grpc.RpcError) as caught:
            call(b"", timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_server_healthy_after_errors(client: Client) -> None:
    for _ in range(3):
        with pytest.raises(InvalidArgument):
            client.detect_language([])
    assert (
        client.detect_language(["Bonjour tout le monde"]).detections[0].languages[0].language_code
        == "fr"
    )
