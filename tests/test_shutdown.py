"""SIGTERM: health turns NOT_SERVING, in-flight calls finish, then the process exits."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import grpc
import pytest

from xling.clients import Client, XlingError

from .serve_process import ServeProcess


def test_sigterm_drains_in_flight_calls(tmp_path: Path, model_cache: Path) -> None:
    server = ServeProcess(tmp_path / "data", model_cache, XLING_GRACE_PERIOD_S="60")
    try:
        # The local model takes seconds a sentence: still running when SIGTERM arrives.
        contents = [
            "The library opens at eight in the morning on weekdays.",
            "Please bring your card when you borrow a book.",
        ]
        results: dict[str, object] = {}

        def call() -> None:
            with Client(server.target, timeout=300) as client:
                results["response"] = client.translate_text(contents, target_language_code="fr")

        started = threading.Thread(target=call)
        started.start()
        time.sleep(1.0)
        assert started.is_alive(), "the in-flight call finished before SIGTERM; make it slower"
        server.terminate()
        time.sleep(0.5)
        assert started.is_alive(), "the in-flight call finished before the drain was observed"
        with Client(server.target, timeout=5) as late, pytest.raises(XlingError) as refused:
            late.detect_language(["hello"])
        assert refused.value.code == grpc.StatusCode.UNAVAILABLE
        started.join(timeout=300)
        response = results["response"]
        translations = response.translations  # type: ignore[attr-defined]
        assert len(translations) == len(contents)
        assert all(t.translated_text and not t.error for t in translations), translations
        code, stderr = server.wait()
        assert code == 0, stderr
        events = [
            json.loads(line)["message"] for line in stderr.splitlines() if line.startswith("{")
        ]
        assert events.index("draining") < events.index("stopped")
    finally:
        server.kill()


def test_model_that_cannot_load_stops_the_server(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as caught:
        ServeProcess(
            tmp_path / "data", tmp_path / "models", XLING_LOCAL_MODEL=str(tmp_path / "nope.gguf")
        )
    assert "local_model" in str(caught.value)
