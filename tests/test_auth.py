"""API keys: health stays open, every other RPC needs a configured key, and
logs name the key without ever showing it."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from xling.clients import Client, Unauthenticated
from xling.service.auth import KeyRing, parse_key
from xling.service.config import load_settings
from xling.service.errors import ConfigurationError
from xling.service.logs import RequestContextFilter

from .conftest import ServerThread, mistral_backed_server
from .fakes.mistral_server import FakeMistralServer

KEYS = ("env-key-1", "env-key-2", "file-key")
BARE_KEY_NAME = "key-" + hashlib.sha256(b"env-key-2").hexdigest()[:8]


@pytest.fixture(scope="module")
def keyed_server(
    fake: FakeMistralServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerThread]:
    keys_file = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys_file.write_text("# team keys\nbatch-jobs:file-key\n")
    keyed = mistral_backed_server(
        fake, tmp_path_factory.mktemp("data"),
        api_keys="team-a:env-key-1,env-key-2", api_keys_file=keys_file,
    )  # fmt: skip
    yield keyed
    keyed.stop()


@pytest.mark.parametrize("key", [None, "wrong-key", "env-key-1x", "team-a:env-key-1", ""])
def test_missing_or_wrong_key_is_unauthenticated(
    keyed_server: ServerThread, key: str | None
) -> None:
    with (
        Client(keyed_server.target, api_key=key, timeout=10) as client,
        pytest.raises(Unauthenticated) as caught,
    ):
        client.detect_language(["hello"])
    assert "wrong-key" not in caught.value.message


@pytest.mark.parametrize("key", KEYS)
def test_configured_keys_are_served(keyed_server: ServerThread, key: str) -> None:
    with Client(keyed_server.target, api_key=key, timeout=10) as client:
        assert client.list_languages().languages


def test_health_needs_no_key(keyed_server: ServerThread) -> None:
    with grpc.insecure_channel(keyed_server.target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_logs_name_the_key_and_never_show_it(
    keyed_server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(RequestContextFilter())
    for key in (*KEYS, "wrong-key", "not-a-key:env-key-1"):
        with (
            Client(keyed_server.target, api_key=key, timeout=10) as client,
            contextlib.suppress(Unauthenticated),
        ):
            client.detect_language(["Guten Morgen"])

    def served() -> list[tuple[str, str]]:
        lines = [r for r in caplog.records if r.getMessage() == "rpc"]
        return [(r.key, r.code) for r in lines if r.method.endswith("/DetectLanguage")]

    # The server logs a call just after answering it.
    deadline = time.monotonic() + 5
    while len(served()) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served() == [
        ("team-a", "OK"), (BARE_KEY_NAME, "OK"), ("batch-jobs", "OK"),
        ("anonymous", "UNAUTHENTICATED"), ("anonymous", "UNAUTHENTICATED"),
    ]  # fmt: skip
    for record in caplog.records:
        logged = repr(record.__dict__)
        for secret in (*KEYS, "wrong-key"):
            assert secret not in logged, f"{secret!r} logged by {record.name}: {logged}"


def test_bare_keys_get_a_stable_name_and_named_keys_keep_theirs() -> None:
    assert parse_key("env-key-2").name == BARE_KEY_NAME
    assert parse_key("team-a:env-key-1").name == "team-a"
    assert parse_key("team-a:env-key-1") == parse_key("team-a:env-key-1")
    # Not a valid name before the colon: the whole entry is the key.
    assert parse_key("bad name:key").name.startswith("key-")
    assert "env-key-1" not in repr(parse_key("team-a:env-key-1"))


def test_duplicate_key_names_are_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as caught:
        KeyRing.from_settings(load_settings(api_keys="ops:key-one,ops:key-two"))
    assert caught.value.setting == "api_keys"
    assert "key-one" not in str(caught.value)


def test_unreadable_keys_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        KeyRing.from_settings(load_settings(api_keys_file=tmp_path / "missing.txt"))
    assert caught.value.setting == "api_keys_file"
