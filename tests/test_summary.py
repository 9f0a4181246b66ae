"""What the summary is written from, and how an answer in the wrong language
comes back: a real server whose model is the fake Mistral API, with the
summary and translation requests it sends read off the wire."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from xling.clients import Client
from xling.service.search.judge import SUMMARY_FREQUENCY_PENALTY
from xling.service.search.pipeline import SearchPipeline, SearchQuery
from xling.service.search.rerankers.pointwise import PointwiseReranker
from xling.v1 import search_pb2

from .conftest import ServerThread, mistral_backed_server
from .fakes.mistral_server import FakeMistralServer, RecordedRequest, chat, search_model

QUESTION = "What water temperature is best for green tea?"
DOCUMENTS = [
    search_pb2.Document(
        id="tea", text="Green tea is best made with water at about 80 degrees.", language_code="en"
    ),
    search_pb2.Document(
        id="marathon", text="The city marathon starts at 8 a.m. on Sunday.", language_code="en"
    ),
]


@pytest.fixture(scope="module")
def tea_server(
    fake: FakeMistralServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerThread]:
    thread = mistral_backed_server(fake, tmp_path_factory.mktemp("summary-data"))
    with Client(thread.target, timeout=60) as client:
        client.index_documents("tea", DOCUMENTS)
    yield thread
    thread.stop()


def summary_requests(fake: FakeMistralServer) -> list[dict[str, Any]]:
    bodies = [json.loads(r.user_text) for r in fake.requests_to() if r.user_text]
    return [body for body in bodies if "question" in body]


def answer_with(text: str) -> Callable[[RecordedRequest], str]:
    """A model that answers ``text`` citing the first passage and translates by prefixing "EN:"."""
    return search_model(
        translate=lambda t: f"EN:{t}",
        answer=lambda question, ids: {"answer": text, "citations": ids[:1]},
    )


def without_margin(server: ServerThread) -> SearchPipeline:
    """``server``'s search pipeline with no summary margin: every hit reaches the summary."""
    runtime = server.server.runtime
    return SearchPipeline(
        collections=runtime.search.collections, embedder=runtime.embedder,
        detector=runtime.detector, executor=runtime.executor, model=runtime.chat_model,
        reranker=PointwiseReranker(runtime.chat_model), translation=runtime.translation,
        summary_score_margin=None,
    )  # fmt: skip


def test_a_passage_far_below_the_best_stays_out_of_the_summary(
    tea_server: ServerThread, fake: FakeMistralServer
) -> None:
    fake.reset()
    fake.set_default(chat(answer_with("Green tea wants water at about 80 degrees.")))
    with Client(tea_server.target, timeout=60) as client:
        response = client.search("tea", QUESTION, top_k=2, summarize=True)
    assert [hit.document_id for hit in response.hits] == ["tea", "marathon"]
    assert response.hits[0].score - response.hits[1].score > 0.1
    (request,) = summary_requests(fake)
    assert [p["id"] for p in request["passages"]] == ["tea"]
    assert list(response.summary.cited_document_ids) == ["tea"]

    # Without the margin the same search shows the model both passages.
    fake.reset()
    fake.set_default(chat(answer_with("Green tea wants water at about 80 degrees.")))
    tea_server.run(
        without_margin(tea_server).search(
            SearchQuery("tea", QUESTION, top_k=2, summarize=True), deadline=None
        )
    )
    (request,) = summary_requests(fake)
    assert [p["id"] for p in request["passages"]] == ["tea", "marathon"]


def test_an_answer_in_another_language_is_translated_with_its_numbers_as_written(
    tea_server: ServerThread, fake: FakeMistralServer
) -> None:
    """A small model drops a number's token (⟦0⟧) where it keeps the number, so
    the summary's translation sends numbers as they are, and still checks them."""
    fake.reset()
    german = "Für grünen Tee nimmt man am besten Wasser mit etwa 80 Grad."
    fake.set_default(chat(answer_with(german)))
    with Client(tea_server.target, timeout=60) as client:
        response = client.search("tea", QUESTION, top_k=2, summarize=True)
    assert response.summary.language_code == "en"
    assert response.summary.text == f"EN:{german}"
    (translation,) = [
        json.loads(r.user_text) for r in fake.requests_to() if "segments" in r.user_text
    ]
    assert translation["segments"][0]["text"] == german
    assert translation["target_language"] == "English"


def test_only_the_summary_asks_the_model_not_to_repeat_itself(
    tea_server: ServerThread, fake: FakeMistralServer
) -> None:
    """A loop ("Salmon, salmon, ...") is a summary's failure; a translation must
    be free to repeat what its source repeats."""
    fake.reset()
    fake.set_default(chat(answer_with("Für grünen Tee nimmt man Wasser mit etwa 80 Grad.")))
    with Client(tea_server.target, timeout=60) as client:
        client.search("tea", QUESTION, top_k=2, summarize=True)
    penalties = {
        "summary" if "question" in r.user_text else "translation": r.fields.get("frequency_penalty")
        for r in fake.requests_to()
        if r.user_text
    }
    assert penalties == {"summary": SUMMARY_FREQUENCY_PENALTY, "translation": None}


def test_citations_are_checked_against_the_answer_as_the_model_wrote_it(
    tea_server: ServerThread, fake: FakeMistralServer
) -> None:
    """Translated into the asker's language, an answer drew nearer a distractor in
    that language than the foreign passage it restates; attribution reads the
    model's own words."""
    with Client(tea_server.target, timeout=60) as client:
        client.index_documents(
            "brew",
            [
                search_pb2.Document(
                    id="black-en",
                    text="Black tea is best brewed with boiling water, at 100 degrees.",
                    language_code="en",
                ),
                search_pb2.Document(
                    id="green-de",
                    text="Grüntee brüht man am besten mit Wasser von etwa 80 Grad auf.",
                    language_code="de",
                ),
            ],
        )
    fake.reset()
    german = "Grüner Tee wird am besten mit Wasser von etwa 80 Grad aufgebrüht."
    english = "Green tea is best brewed with water at about 80 degrees."
    fake.set_default(
        chat(
            search_model(
                translate=lambda text: english if text == german else text,
                # Out of habit, the first passage.
                answer=lambda question, ids: {"answer": german, "citations": ids[:1]},
            )
        )
    )
    result = tea_server.run(
        without_margin(tea_server).search(
            SearchQuery("brew", QUESTION, top_k=2, summarize=True), deadline=None
        )
    )
    (request,) = summary_requests(fake)
    assert [p["id"] for p in request["passages"]] == ["black-en", "green-de"]
    assert result.summary is not None
    assert result.summary.text == english
    assert result.summary.citations == ["green-de"]
