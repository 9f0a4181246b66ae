"""Summary citations checked by the embedder (service/search/attribution.py), on
the suite's real embedder: a citation the answer does not rest on is replaced
by the passage nearest to the answer; right and empty citations stand."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from xling.index.embedders import create_embedder
from xling.index.embedders.base import Embedder
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
def executor() -> Iterator[BlockingExecutor]:
    executor = BlockingExecutor(workers=1, queue_size=4)
    yield executor
    executor.shutdown()


@pytest.fixture(scope="module")
def embedder(executor: BlockingExecutor) -> Embedder:
    settings = Settings()
    return create_embedder(settings.embedder, executor, threads=1, settings=settings)


async def test_a_citation_of_another_passage_is_replaced_by_the_one_the_answer_rests_on(
    embedder: Embedder,
) -> None:
    checked = await attribute(embedder, Answer(ANSWER, ["hours-fr"]), PASSAGES)
    assert checked == Answer(ANSWER, ["tickets-de"])


async def test_citations_that_include_the_nearest_passage_stand(embedder: Embedder) -> None:
    cited = Answer(ANSWER, ["hours-fr", "tickets-de"])
    assert await attribute(embedder, cited, PASSAGES) == cited


async def test_an_answer_that_cites_nothing_stays_uncited(embedder: Embedder) -> None:
    uncited = Answer("Ningún pasaje responde a la pregunta.", [])
    assert await attribute(embedder, uncited, PASSAGES) == uncited
