"""API keys: health stays open, every other RPC needs a configured key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from xling.clients import Client, Unauthenticated
from xling.service.config import load_settings

from .conftest import ServerThread


@pytest.fixture(scope="module")
def keyed_server(
    server: ServerThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerThread]:
    keys_file = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys_file.write_text("# team keys\nfile-key\n")
    settings = load_settings(
        host="127.0.0.1", port=0, data_dir=server.settings.data_dir,
        api_keys="env-key-1,env-key-2", api_keys_file=keys_file,
    )  # fmt: skip
    # Shares the session server's loaded models on its own event loop.
    keyed = ServerThread(settings, runtime=server.server.runtime)
    yield keyed
    keyed.stop()


@pytest.mark.parametrize("key", [None, "wrong-key", "env-key-1x", ""])
def test_missing_or_wrong_key_is_unauthenticated(
    keyed_server: ServerThread, key: str | None
) -> None:
    with (
        Client(keyed_server.target, api_key=key, timeout=10) as client,
        pytest.raises(Unauthenticated) as caught,
    ):
        client.detect_language(["hello"])
    assert "wrong-key" not in caught.value.message


@pytest.mark.parametrize("key", ["env-key-1", "env-key-2", "file-key"])
def test_configured_keys_are_served(keyed_server: ServerThread, key: str) -> None:
    with Client(keyed_server.target, api_key=key, timeout=10) as client:
        assert client.list_languages().languages


def test_health_needs_no_key(keyed_server: ServerThread) -> None:
    with grpc.insecure_channel(keyed_server.target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_unreadable_keys_file_is_a_configuration_error(tmp_path: Path) -> None:
    from xling.service.auth import load_key_digests
    from xling.service.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as caught:
        load_key_digests(load_settings(api_keys_file=tmp_path / "missing.txt"))
    assert caught.value.setting == "api_keys_file"
