"""The components one server process shares: settings, thread pool, models.

Everything loads at start, so a model that cannot load stops the server with
a ``ConfigurationError`` naming the setting to change, rather than failing the
first request.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from xling.index.backend import create_search_index
from xling.index.embedders import create_embedder
from xling.index.embedders.base import Embedder
from xling.index.embedders.cache import QueryCache
from xling.service.config import Settings
from xling.service.detection import Detector, create_detector
from xling.service.errors import ConfigurationError
from xling.service.executor import BlockingExecutor
from xling.service.models import create_chat_model
from xling.service.models.base import ChatModel
from xling.service.models.gated import GatedChatModel
from xling.service.search.pipeline import SearchPipeline
from xling.service.search.rerankers import create_reranker
from xling.service.translation.memory import TranslationMemory
from xling.service.translation.packing import PackLimits
from xling.service.translation.pipeline import TranslationPipeline

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    executor: BlockingExecutor
    detector: Detector
    chat_model: ChatModel
    embedder: Embedder
    memory: TranslationMemory
    translation: TranslationPipeline
    search: SearchPipeline

    @classmethod
    async def start(cls, settings: Settings) -> Runtime:
        # FAISS and torch read these when first imported.
        os.environ.setdefault("OMP_NUM_THREADS", str(settings.omp_num_threads))
        os.environ.setdefault("MKL_NUM_THREADS", str(settings.omp_num_threads))
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        executor = BlockingExecutor(workers=settings.workers, queue_size=settings.queue_size)
        started = time.perf_counter()
        try:
            detector = create_detector(settings.detector, seed=settings.detector_seed)
        except ValueError as exc:
            raise ConfigurationError("detector", str(exc)) from exc
        chat_model = GatedChatModel(
            await executor.run(create_chat_model, settings, executor),
            max_active=settings.model_concurrency,
            max_waiting=settings.model_queue_size,
        )
        # An in-process embedder runs one batch at a time (concurrent calls
        # join the next batch), so it may use every worker's threads.
        embedder = await executor.run(
            create_embedder,
            settings.embedder,
            executor,
            threads=settings.workers * settings.omp_num_threads,
            settings=settings,
        )
        if settings.query_cache_size:
            embedder = QueryCache(embedder, size=settings.query_cache_size)
        log.info(
            "models loaded",
            extra={
                "detector": detector.name,
                "chat_model": chat_model.name,
                "embedder": embedder.name,
                "seconds": round(time.perf_counter() - started, 2),
            },
        )
        memory = TranslationMemory(settings.data_dir / "translation-memory.sqlite3")
        translation = TranslationPipeline(
            model=chat_model,
            pack_limits=_pack_limits(settings),
            detector=detector,
            executor=executor,
            memory=memory,
            temperature=settings.translation_temperature,
        )
        collections = create_search_index(settings, embedder, executor)
        await collections.start()
        search = SearchPipeline(
            collections=collections,
            embedder=embedder,
            detector=detector,
            executor=executor,
            model=chat_model,
            reranker=create_reranker(
                settings.reranker, chat_model, backend=settings.resolved_chat_backend
            ),
            translation=translation,
            candidates=settings.search_candidates,
            rerank_candidates=settings.resolved_rerank_candidates,
            rerank_weight=settings.resolved_rerank_weight,
            summary_passages=settings.summary_passages,
            summary_score_margin=settings.summary_score_margin,
            dense_weight=settings.dense_weight,
            lexical_weight=settings.lexical_weight,
        )
        return cls(settings, executor, detector, chat_model, embedder, memory, translation, search)

    async def aclose(self) -> None:
        await self.search.collections.close()
        await self.chat_model.aclose()
        await self.embedder.aclose()
        self.executor.shutdown()
        self.memory.close()


def _pack_limits(settings: Settings) -> PackLimits:
    # A small local model translates best one segment at a time (docs/models.md);
    # remote APIs gain from sharing one call's instructions across many segments.
    default = 32 if settings.resolved_chat_backend == "mistral" else 1
    return PackLimits(
        max_segments=settings.pack_max_segments or default, max_tokens=settings.pack_max_tokens
    )
