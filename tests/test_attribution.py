"""Summary citations checked by the embedder (service/search/attribution.py), on
the suite's real embedder: a citation the answer does not rest on is replaced
by the passage nearest to the answer; right and empty citations stand."""

from __future__ import annotations

import asyncio

import pytest

from xling.index.embedders import create_embedder
from xling.service.config import Settings
from xling.service.executor import BlockingExecutor
from xling.service.search.attribution import attribute
from xling.service.search.judge import Answer, Passage

PASSAGES = [
    Passage("hours-fr", "Horaires\nLe musée ouvre à neuf heures et ferme à dix-huit heures."),
    Passage("tickets-de", "Eintritt\nEin Ticket für Erwachsene kostet zwölf Euro."),
    Passage("parking-en", "Parking\nThe car park next to the museum is free for visitors."),
]
ANSWER = "Una entrada para adultos cuesta doce euros."


@pytest.fixture(scope="module")
def embedder():
    settings = Settings()
    return create_embedder(
        settings.embedder, BlockingExecutor(workers=1, queue_size=4), threads=1, settings=settings
    )


def test_a_citation_of_another_passage_is_replaced_by_the_one_the_answer_rests_on(embedder):
    checked = asyncio.run(attribute(embedder, Answer(ANSWER, ["hours-fr"]), PASSAGES))
    assert checked == Answer(ANSWER, ["tickets-de"])


def test_citations_that_include_the_nearest_passage_stand(embedder):
    cited = Answer(ANSWER, ["hours-fr", "tickets-de"])
    assert asyncio.run(attribute(embedder, cited, PASSAGES)) == cited


def test_an_answer_that_cites_nothing_stays_uncited(embedder):
    uncited = Answer("Ningún pasaje responde a la pregunta.", [])
    assert asyncio.run(attribute(embedder, uncited, PASSAGES)) == uncited
