"""The search side of the service: indexing with detection, hybrid retrieval,
model rerank, hit translation and a cited summary.

Retrieval runs a dense (embedding) and, when weighted, a lexical (BM25)
search over the collection and fuses their rankings. The lexical side
rescues exact names and numbers in monolingual collections, but across
languages it favours passages that share the query's language and words,
which is the bias cross-lingual search must fight, so it is off by default.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from xling.index.backend import SearchIndex
from xling.index.chunking import with_title
from xling.index.embedders.base import Embedder
from xling.index.models import ChunkHit, CollectionInfo, DocumentInput
from xling.service.detection import UNDETERMINED, Detector
from xling.service.errors import DeadlineExceeded
from xling.service.executor import BlockingExecutor
from xling.service.models.base import ChatModel
from xling.service.search import judge
from xling.service.search.attribution import attribute
from xling.service.search.fusion import reciprocal_rank_fusion
from xling.service.search.rerankers.base import Reranker
from xling.service.search.rerankers.blend import blend
from xling.service.translation.pipeline import TranslateOptions, TranslationPipeline

DEFAULT_TOP_K = 10
# Answers in an unknown language fall back to English.
FALLBACK_LANGUAGE = "en"


@dataclass(frozen=True, slots=True)
class SearchQuery:
    collection: str
    query: str
    query_language_code: str = ""
    top_k: int = DEFAULT_TOP_K
    language_codes: tuple[str, ...] = ()
    metadata_filter: Mapping[str, str] = field(default_factory=dict)
    rerank: bool = False
    summarize: bool = False
    summary_language_code: str = ""
    translate_hits: bool = False


@dataclass(slots=True)
class Hit:
    chunk: ChunkHit
    score: float
    rerank_score: float | None = None
    translated_text: str = ""


@dataclass(slots=True)
class SearchResult:
    query_language_code: str
    hits: list[Hit]
    summary: judge.Answer | None = None
    summary_language_code: str = ""
    model: str = ""


class SearchPipeline:
    def __init__(
        self,
        *,
        collections: SearchIndex,
        embedder: Embedder,
        detector: Detector,
        executor: BlockingExecutor,
        model: ChatModel,
        reranker: Reranker,
        translation: TranslationPipeline,
        candidates: int = 50,
        rerank_candidates: int = 8,
        rerank_weight: float = 1.0,
        summary_passages: int = 3,
        summary_score_margin: float | None = None,
        dense_weight: float = 1.0,
        lexical_weight: float = 0.0,
    ) -> None:
        self.collections = collections
        self._embedder = embedder
        self._detector = detector
        self._executor = executor
        self._model = model
        self._reranker = reranker
        self._translation = translation
        self._candidates = candidates
        self._rerank_candidates = rerank_candidates
        self._rerank_weight = rerank_weight
        self._summary_passages = summary_passages
        self._summary_score_margin = summary_score_margin
        self._weights = (dense_weight, lexical_weight)

    async def index(self, collection: str, documents: Sequence[DocumentInput]) -> tuple[int, int]:
        """Detects missing document languages, then upserts durably."""
        undetected = [d for d in documents if not d.language_code]
        if undetected:
            codes = await self._executor.run(
                lambda: [self._detector.detect(f"{d.title}\n{d.text}", 1)[0] for d in undetected]
            )
            detected = {
                d.id: score.language_code for d, score in zip(undetected, codes, strict=True)
            }
            documents = [
                DocumentInput(d.id, d.text, d.title, detected[d.id], d.metadata)
                if not d.language_code
                else d
                for d in documents
            ]
        return await self.collections.index(collection, list(documents))

    async def delete(self, collection: str, ids: Sequence[str]) -> int:
        return await self.collections.delete(collection, list(ids))

    async def stats(self, collection: str) -> CollectionInfo:
        return await self.collections.info(collection)

    async def search(self, query: SearchQuery, *, deadline: float | None) -> SearchResult:
        language = query.query_language_code or await self._detect(query.query)
        vector = (await self._embedder.embed_queries([query.query]))[0]
        filters: dict[str, Any] = {
            "language_codes": query.language_codes,
            "metadata_filter": query.metadata_filter,
        }
        dense, lexical = await asyncio.gather(
            self._retrieve(self.collections.dense_search, 0, query.collection, vector, filters),
            self._retrieve(
                self.collections.lexical_search, 1, query.collection, query.query, filters
            ),
        )
        # The weights, not what each retriever found, pick the score's meaning.
        if all(self._weights):
            by_id = {hit.chunk_id: hit for hit in (*dense, *lexical)}
            fused = reciprocal_rank_fusion(
                [[h.chunk_id for h in dense], [h.chunk_id for h in lexical]], weights=self._weights
            )
            hits = [Hit(by_id[chunk_id], score) for chunk_id, score in fused]
        else:
            # One retriever: its own score (cosine or BM25) says more than a rank.
            hits = [Hit(chunk, chunk.score) for chunk in dense or lexical]
        result = SearchResult(language, hits)
        if query.rerank and hits:
            await self._rerank(query, result, deadline)
        result.hits = result.hits[: query.top_k or DEFAULT_TOP_K]
        answer_language = language if language != UNDETERMINED else FALLBACK_LANGUAGE
        tasks = []
        if query.translate_hits and result.hits:
            tasks.append(self._translate_hits(result.hits, answer_language, deadline))
        if query.summarize and result.hits:
            result.summary_language_code = query.summary_language_code or answer_language
            tasks.append(self._summarize(query, result, deadline))
        await asyncio.gather(*tasks)
        if query.rerank or query.summarize or query.translate_hits:
            result.model = self._model.name
        return result

    async def _retrieve(
        self,
        retriever: Callable[..., Awaitable[list[ChunkHit]]],
        weight_index: int,
        collection: str,
        query: object,
        filters: dict[str, Any],
    ) -> list[ChunkHit]:
        if self._weights[weight_index] == 0:
            return []
        return await retriever(collection, query, self._candidates, **filters)

    async def _detect(self, text: str) -> str:
        scores = await self._executor.run(self._detector.detect, text, 1)
        return scores[0].language_code

    async def _rerank(
        self, query: SearchQuery, result: SearchResult, deadline: float | None
    ) -> None:
        head = result.hits[: self._rerank_candidates]
        passages = [judge.Passage(str(h.chunk.chunk_id), _passage_text(h.chunk)) for h in head]
        judged = await self._reranker.score(query.query, passages, timeout_s=_remaining(deadline))
        blended = blend(
            [h.score for h in head], [judged[p.id] for p in passages], self._rerank_weight
        )
        for hit, score in zip(head, blended, strict=True):
            hit.rerank_score = score
        # Stable sort: equal scores keep their retrieval order.
        head.sort(key=lambda h: h.rerank_score or 0.0, reverse=True)
        result.hits = head + result.hits[self._rerank_candidates :]

    async def _translate_hits(self, hits: list[Hit], target: str, deadline: float | None) -> None:
        by_source: dict[str, list[Hit]] = {}
        for hit in hits:
            by_source.setdefault(hit.chunk.language_code or "", []).append(hit)
        for source, group in by_source.items():
            options = TranslateOptions(
                target_language_code=target,
                source_language_code=source if source != UNDETERMINED else "",
            )
            results = await self._translation.translate(
                [h.chunk.text for h in group], options, deadline=deadline
            )
            for hit, translated in zip(group, results, strict=True):
                hit.translated_text = translated.translated_text

    async def _summarize(
        self, query: SearchQuery, result: SearchResult, deadline: float | None
    ) -> None:
        # Citations name documents; a document's passages are judged together. Only the
        # best few go to the model: a small one mixes in facts from the lower hits, and
        # cites a passage far below the best one as readily as the best.
        floor = self._summary_floor(result.hits)
        texts: dict[str, list[str]] = {}
        for rank, hit in enumerate(result.hits):
            if rank and hit.score < floor:
                continue
            if hit.chunk.document_id in texts or len(texts) < self._summary_passages:
                texts.setdefault(hit.chunk.document_id, []).append(_passage_text(hit.chunk))
        passages = [judge.Passage(doc_id, "\n".join(parts)) for doc_id, parts in texts.items()]
        language = result.summary_language_code
        answer = await judge.summarize(
            self._model, query.query, passages, language_code=language,
            timeout_s=_remaining(deadline),
        )  # fmt: skip
        # Attributed as the model wrote it: translated into the asker's language, the
        # answer drew near a distractor in that language rather than the passage it
        # restates (the embedder's same-language pull).
        answer = await attribute(self._embedder, answer, passages)
        written_in = await self._detect(answer.text)
        if written_in not in (language, UNDETERMINED):
            # Small models drift into a passage's language; the translator brings it back.
            (translated,) = await self._translation.translate(
                [answer.text],
                TranslateOptions(
                    target_language_code=language,
                    source_language_code=written_in,
                    protect_numbers=False,
                ),
                deadline=deadline,
            )
            if translated.translated_text:
                answer = judge.Answer(translated.translated_text, answer.citations)
        result.summary = answer

    def _summary_floor(self, hits: list[Hit]) -> float:
        """The least retrieval score a hit below the first needs to reach the summary."""
        # Only cosine similarities have a scale that one margin fits; fused ranks
        # and BM25 scores do not.
        dense_only = self._weights[1] == 0
        if self._summary_score_margin is None or not dense_only:
            return -math.inf
        return max(hit.score for hit in hits) - self._summary_score_margin


def _passage_text(chunk: ChunkHit) -> str:
    return with_title(chunk.title, chunk.text)


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlineExceeded("deadline exceeded before the model call")
    return remaining
