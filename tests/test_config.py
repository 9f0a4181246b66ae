"""Settings: defaults, TOML file, XLING_* environment and flags, in that order."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from xling.service.config import load_settings


def test_defaults_need_no_network_or_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "MISTRAL_API_KEY",
        "XLING_MISTRAL_API_KEY",
        "XLING_MISTRAL_SERVER_URL",
        "XLING_CONFIG",
        "XLING_EMBEDDER",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.port == 50051
    assert settings.resolved_chat_backend == "local"
    assert settings.embedder == "embeddinggemma-int8"
    assert settings.resolved_model_dir == Path("xling-data/models")


def test_precedence_flag_over_env_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "xling.toml"
    config.write_text('port = 6000\nworkers = 3\nlog_format = "text"\n')
    monkeypatch.setenv("XLING_PORT", "7000")
    monkeypatch.setenv("XLING_WORKERS", "5")
    settings = load_settings(config, port=8000, host=None)
    assert settings.port == 8000  # flag
    assert settings.workers == 5  # environment
    assert settings.log_format == "text"  # file
    assert settings.host == "127.0.0.1"  # default; a None flag falls through


def test_mistral_key_selects_backend_and_stays_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISTRAL_API_KEY", "sk-secret-value")
    settings = load_settings()
    assert settings.resolved_chat_backend == "mistral"
    assert "sk-secret-value" not in repr(settings)


def test_api_keys_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XLING_API_KEYS", "k1, k2,,")
    assert [k.get_secret_value() for k in load_settings().api_keys] == ["k1", "k2"]


def test_bad_values_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        load_settings(port=70000)
    config = tmp_path / "typo.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(ValidationError):
        load_settings(config)
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "missing.toml")
