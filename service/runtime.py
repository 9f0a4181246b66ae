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

from xling.index.embedders import create_embedder
from xling.index.embedders.base import Embedder
from xling.service.config import Settings
from xling.service.detection import Detector, create_detector
from xling.service.errors import ConfigurationError
from xling.service.executor import BlockingExecutor
from xling.service.models import create_chat_model
from xling.service.models.base import ChatModel

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    executor: BlockingExecutor
    detector: Detector
    chat_model: ChatModel
    embedder: Embedder

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
        chat_model = await executor.run(create_chat_model, settings, executor)
        embedder = await executor.run(
            create_embedder, settings.embedder, executor, threads=settings.omp_num_threads
        )
        log.info(
            "models loaded",
            extra={
                "detector": detector.name,
                "chat_model": chat_model.name,
                "embedder": embedder.name,
                "seconds": round(time.perf_counter() - started, 2),
            },
        )
        return cls(settings, executor, detector, chat_model, embedder)

    async def aclose(self) -> None:
        await self.chat_model.aclose()
        self.executor.shutdown()
