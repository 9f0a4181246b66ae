"""The asyncio face of the xling client; the logic lives in ``_base``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

import grpc

from xling.clients._base import BaseClient, DocumentLike, Glossary, Plan, Response
from xling.clients._errors import XlingError, from_rpc_error, with_item_offset
from xling.v1 import search_pb2, translation_pb2


class AsyncClient(BaseClient):
    """An asyncio client for TranslationService and SearchService.

    Usage::

        from xling.clients import AsyncClient

        async with AsyncClient("localhost:50051", timeout=30) as client:
            response = await client.detect_language(["Guten Morgen"])
            print(response.detections[0].languages[0].language_code)

    Same options, responses and errors as ``Client``. The channel opens on the
    first call, in the running event loop, and belongs to that loop.
    """

    def _open(self) -> None:
        self._channel: grpc.aio.Channel | None = None

    def _connected(self) -> grpc.aio.Channel:
        if self._channel is None:
            credentials = self._credentials()
            if credentials is None:
                self._channel = grpc.aio.insecure_channel(self.target, options=self._options)
            else:
                self._channel = grpc.aio.secure_channel(
                    self.target, credentials, options=self._options
                )
        return self._channel

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def _send(self, plan: Plan[Response], timeout: float | None) -> Response:
        method = self._connected().unary_unary(
            plan.path,
            request_serializer=type(plan.requests[0]).SerializeToString,
            response_deserializer=plan.response_type.FromString,
        )
        responses = []
        for request, offset in zip(plan.requests, plan.offsets, strict=True):
            try:
                responses.append(await self._call(method, request, self._deadline(timeout)))
            except XlingError as error:
                raise with_item_offset(error, offset) from None
        return plan.join(responses)

    async def _call(
        self, method: grpc.aio.UnaryUnaryMultiCallable, request: Any, deadline: float
    ) -> Any:
        retries = 0
        while True:
            try:
                return await method(
                    request, timeout=self._remaining(deadline), metadata=self._metadata
                )
            except grpc.RpcError as exc:
                error = from_rpc_error(exc)
            delay = self._retry_delay(error, retries, deadline)
            if delay is None:
                raise error
            retries += 1
            await asyncio.sleep(delay)

    async def translate_text(
        self,
        contents: Iterable[str],
        *,
        target_language_code: str,
        source_language_code: str = "",
        mime_type: str = "",
        glossary: Glossary = (),
        do_not_translate: Iterable[str] = (),
        formality: translation_pb2.Formality.ValueType = translation_pb2.FORMALITY_UNSPECIFIED,
        context: str = "",
        model: str = "",
        timeout: float | None = None,
    ) -> translation_pb2.TranslateTextResponse:
        """One translation per content, in order; ``glossary`` maps source to target terms."""
        plan = self._translate_text_plan(
            contents,
            target_language_code=target_language_code,
            source_language_code=source_language_code,
            mime_type=mime_type,
            glossary=glossary,
            do_not_translate=do_not_translate,
            formality=formality,
            context=context,
            model=model,
        )
        return await self._send(plan, timeout)

    async def detect_language(
        self, contents: Iterable[str], *, timeout: float | None = None
    ) -> translation_pb2.DetectLanguageResponse:
        return await self._send(self._detect_language_plan(contents), timeout)

    async def list_languages(
        self, *, display_language_code: str = "", timeout: float | None = None
    ) -> translation_pb2.ListLanguagesResponse:
        return await self._send(self._list_languages_plan(display_language_code), timeout)

    async def index_documents(
        self,
        collection: str,
        documents: Iterable[DocumentLike],
        *,
        timeout: float | None = None,
    ) -> search_pb2.IndexDocumentsResponse:
        """``documents`` are ``Document`` messages or mappings of its fields."""
        return await self._send(self._index_documents_plan(collection, documents), timeout)

    async def delete_documents(
        self, collection: str, ids: Iterable[str], *, timeout: float | None = None
    ) -> search_pb2.DeleteDocumentsResponse:
        return await self._send(self._delete_documents_plan(collection, ids), timeout)

    async def search(
        self,
        collection: str,
        query: str,
        *,
        top_k: int = 0,
        query_language_code: str = "",
        language_codes: Iterable[str] = (),
        metadata_filter: Mapping[str, str] | None = None,
        rerank: bool = False,
        summarize: bool = False,
        summary_language_code: str = "",
        translate_hits: bool = False,
        timeout: float | None = None,
    ) -> search_pb2.SearchResponse:
        """``top_k`` 0 means the server's default (10)."""
        plan = self._search_plan(
            collection,
            query,
            top_k=top_k,
            query_language_code=query_language_code,
            language_codes=language_codes,
            metadata_filter=metadata_filter,
            rerank=rerank,
            summarize=summarize,
            summary_language_code=summary_language_code,
            translate_hits=translate_hits,
        )
        return await self._send(plan, timeout)

    async def get_collection_stats(
        self, collection: str, *, timeout: float | None = None
    ) -> search_pb2.CollectionStats:
        return await self._send(self._stats_plan(collection), timeout)
