"""The Mistral backend against a real OpenAI-compatible server, not the fake.

llama.cpp's own HTTP server (xllamacpp's ``Server``, listening on loopback)
serves the embedded GGUF model; xling's Mistral backend (the mistralai SDK)
is pointed at it with ``mistral_server_url``, the way a deployment points it
at vLLM. Translation with JSON-schema output, pointwise rerank from
logprobs and a cited summary run end to end. Slow: every answer comes from
the 1.5B model on the CPU.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import xllamacpp

from xling.clients import Client
from xling.service.config import load_settings
from xling.service.models.embedded import resolve_gguf
from xling.v1 import search_pb2

from .conftest import ServerThread
from .serve_process import free_port

pytestmark = pytest.mark.slow

API_KEY = secrets.token_urlsafe(16)
DOCUMENTS = [
    search_pb2.Document(id="price", text="A ticket to the museum costs twelve euros."),
    search_pb2.Document(id="hours", text="The museum opens at nine in the morning."),
    search_pb2.Document(id="cafe", text="The museum café serves lunch until three."),
]


@pytest.fixture(scope="module")
def llama_url(model_cache: Path) -> Iterator[str]:
    """llama.cpp's HTTP server on the embedded model, behind an API key."""
    params = xllamacpp.CommonParams()
    params.model.path = str(resolve_gguf("qwen2.5-coder-1.5b-instruct-q4_k_m", model_cache))
    params.n_ctx = 4096
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = 2
    params.hostnames = ["127.0.0.1"]
    params.port = free_port()
    params.api_keys = [API_KEY]
    params.n_threads_http = 2
    params.ui = False
    params.cache_ram_mib = 0
    params.verbosity = 1
    server = xllamacpp.Server(params)
    try:
        yield f"http://127.0.0.1:{params.port}"
    finally:
        del server


@pytest.fixture(scope="module")
def client(llama_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    settings = load_settings(
        host="127.0.0.1", port=0, data_dir=tmp_path_factory.mktemp("real-server-data"),
        chat_backend="mistral", mistral_server_url=llama_url, mistral_api_key=API_KEY,
        mistral_timeout_s=600, mistral_max_retries=0, reranker="pointwise",
        pack_max_segments=4, log_format="text",
    )  # fmt: skip
    thread = ServerThread(settings)
    try:
        with Client(thread.target, timeout=900) as c:
            yield c
    finally:
        thread.stop()


@pytest.mark.timeout(900)
def test_translation_with_json_schema_output(client: Client) -> None:
    contents = [
        "Le musée ouvre à neuf heures.",
        "<p>Click <b>here</b> to buy a ticket.</p>",
        "The ticket costs 12 euros.",
    ]
    response = client.translate_text(contents, target_language_code="de", source_language_code="")
    results = list(response.translations)
    assert [r.detected_language_code for r in results] == ["fr", "en", "en"]
    assert all(r.model.startswith("mistral:") for r in results)
    ok = [(c, r.translated_text) for c, r in zip(contents, results, strict=True) if not r.error]
    assert len(ok) >= 2, results
    for source, text in ok:
        assert text.strip() and text != source
        for run in re.findall(r"\d+", source):
            assert run in text
        if source.startswith("<p>"):
            assert text.startswith("<p>") and text.endswith("</p>") and "<b>" in text


@pytest.mark.timeout(900)
def test_pointwise_rerank_and_summary(client: Client) -> None:
    client.index_documents("museum", DOCUMENTS)
    response = client.search(
        "museum", "How much is a ticket to the museum?", top_k=3, rerank=True, summarize=True
    )
    hits = list(response.hits)
    assert {h.document_id for h in hits} == {"price", "hours", "cafe"}
    scores = [h.rerank_score for h in hits]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) > 1, hits
    assert hits[0].document_id == "price", hits
    summary = response.summary
    assert re.search(r"\b(12|twelve)\b", summary.text, re.IGNORECASE), summary
    assert "price" in summary.cited_document_ids, summary
    assert set(summary.cited_document_ids) <= {h.document_id for h in hits}
