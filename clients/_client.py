"""The blocking face of the xling client; the logic lives in ``_base``."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import grpc

from xling.clients._base import BaseClient, DocumentLike, Glossary, Plan, Response
from xling.clients._errors import XlingError, from_rpc_error, with_item_offset
from xling.v1 import search_pb2, translation_pb2


class Client(BaseClient):
    """A blocking client for TranslationService and SearchService; safe across threads.

    Usage::

        from xling.clients import Client

        with Client("localhost:50051", api_key="...", timeout=30) as client:
            response = client.translate_text(["Guten Morgen"], target_language_code="en")
            print(response.translations[0].translated_text)

    Responses are the protobuf messages of ``xling.v1``; failures raise an
    ``XlingError`` subclass. See ``BaseClient`` for the options.
    """

    def _open(self) -> None:
        credentials = self._credentials()
        if credentials is None:
            self._channel = grpc.insecure_channel(self.target, options=self._options)
        else:
            self._channel = grpc.secure_channel(self.target, credentials, options=self._options)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _send(self, plan: Plan[Response], timeout: float | None) -> Response:
        method = self._channel.unary_unary(
            plan.path,
            request_serializer=type(plan.requests[0]).SerializeToString,
            response_deserializer=plan.response_type.FromString,
        )
        responses = []
        for request, offset in zip(plan.requests, plan.offsets, strict=True):
            try:
                responses.append(self._call(method, request, self._deadline(timeout)))
            except XlingError as error:
                raise with_item_offset(error, offset) from None
        return plan.join(responses)

    def _call(self, method: grpc.UnaryUnaryMultiCallable, request: Any, deadline: float) -> Any:
        retries = 0
        while True:
            try:
                return method(request, timeout=self._remaining(deadline), metadata=self._metadata)
            except grpc.RpcError as exc:
                error = from_rpc_error(exc)
            delay = self._retry_delay(error, retries, deadline)
            if delay is None:
                raise error
            retries += 1
            time.sleep(delay)

    def translate_text(
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
        return self._send(plan, timeout)

    def detect_language(
        self, contents: Iterable[str], *, timeout: float | None = None
    ) -> translation_pb2.DetectLanguageResponse:
        return self._send(self._detect_language_plan(contents), timeout)

    def list_languages(
        self, *, display_language_code: str = "", timeout: float | None = None
    ) -> translation_pb2.ListLanguagesResponse:
        return self._send(self._list_languages_plan(display_language_code), timeout)

    def index_documents(
        self,
        collection: str,
        documents: Iterable[DocumentLike],
        *,
        timeout: float | None = None,
    ) -> search_pb2.IndexDocumentsResponse:
        """``documents`` are ``Document`` messages or mappings of its fields."""
        return self._send(self._index_documents_plan(collection, documents), timeout)

    def delete_documents(
        self, collection: str, ids: Iterable[str], *, timeout: float | None = None
    ) -> search_pb2.DeleteDocumentsResponse:
        return self._send(self._delete_documents_plan(collection, ids), timeout)

    def search(
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
        return self._send(plan, timeout)

    def get_collection_stats(
        self, collection: str, *, timeout: float | None = None
    ) -> search_pb2.CollectionStats:
        return self._send(self._stats_plan(collection), timeout)
