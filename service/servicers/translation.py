"""TranslationService: TranslateText, DetectLanguage, ListLanguages."""

from __future__ import annotations

import time

import grpc

from xling.service import languages, validation
from xling.service.detection import Detector, LanguageScore
from xling.service.runtime import Runtime
from xling.v1 import translation_pb2, translation_pb2_grpc


def _detect_all(detector: Detector, texts: list[str]) -> list[list[LanguageScore]]:
    return [detector.detect(text) for text in texts]


class TranslationServicer(translation_pb2_grpc.TranslationServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def TranslateText(
        self, request: translation_pb2.TranslateTextRequest, context: grpc.aio.ServicerContext
    ) -> translation_pb2.TranslateTextResponse:
        runtime = self._runtime
        contents, options = validation.check_translate(
            request, runtime.settings, runtime.chat_model.name
        )
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        results = await runtime.translation.translate(contents, options, deadline=deadline)
        return translation_pb2.TranslateTextResponse(
            translations=[
                translation_pb2.Translation(
                    translated_text=r.translated_text,
                    detected_language_code=r.detected_language_code,
                    detected_language_confidence=r.detected_language_confidence,
                    model=r.model,
                    cached=r.cached,
                    error=r.error,
                )
                for r in results
            ]
        )

    async def DetectLanguage(
        self, request: translation_pb2.DetectLanguageRequest, context: grpc.aio.ServicerContext
    ) -> translation_pb2.DetectLanguageResponse:
        texts = validation.check_detect(request, self._runtime.settings)
        results = await self._runtime.executor.run(_detect_all, self._runtime.detector, texts)
        return translation_pb2.DetectLanguageResponse(
            detections=[
                translation_pb2.Detection(
                    languages=[
                        translation_pb2.DetectedLanguage(
                            language_code=score.language_code, confidence=score.confidence
                        )
                        for score in scores
                    ]
                )
                for scores in results
            ]
        )

    async def ListLanguages(
        self, request: translation_pb2.ListLanguagesRequest, context: grpc.aio.ServicerContext
    ) -> translation_pb2.ListLanguagesResponse:
        display = validation.check_list_languages(request)
        infos = await self._runtime.executor.run(
            languages.list_languages, display, self._runtime.detector.supported_languages()
        )
        return translation_pb2.ListLanguagesResponse(
            languages=[
                translation_pb2.Language(
                    language_code=info.language_code,
                    display_name=info.display_name,
                    supports_source=info.supports_source,
                    supports_target=info.supports_target,
                )
                for info in infos
            ]
        )
