"""The synchronous xling client.

Usage::

    from xling.clients import Client

    with Client("localhost:50051", api_key="...") as client:
        response = client.detect_language(["Guten Morgen"])
        print(response.detections[0].languages[0].language_code)

Every call has a deadline (``timeout`` seconds, per client or per call) and
raises an ``XlingError`` subclass on failure. Responses are the protobuf
messages of ``xling.v1``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from xling.clients._errors import from_rpc_error
from xling.v1 import search_pb2, search_pb2_grpc, translation_pb2, translation_pb2_grpc

Response = TypeVar("Response")

DEFAULT_TARGET = "localhost:50051"
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class TLSConfig:
    """Server verification and, for mutual TLS, the client's own certificate."""

    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: Path | None) -> bytes | None:
            return path.read_bytes() if path else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_cert),
            private_key=read(self.client_key),
            certificate_chain=read(self.client_cert),
        )


class Client:
    """A blocking client for TranslationService and SearchService."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        tls: TLSConfig | None = None,
    ) -> None:
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        self._timeout = timeout
        if tls is None:
            self._channel = grpc.insecure_channel(target)
        else:
            self._channel = grpc.secure_channel(target, tls.credentials())
        self._translation = translation_pb2_grpc.TranslationServiceStub(self._channel)
        self._search = search_pb2_grpc.SearchServiceStub(self._channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return method(
                request,
                timeout=self._timeout if timeout is None else timeout,
                metadata=self._metadata,
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def translate_text(
        self,
        contents: Iterable[str],
        *,
        target_language_code: str,
        source_language_code: str = "",
        mime_type: str = "",
        timeout: float | None = None,
        **options: Any,
    ) -> translation_pb2.TranslateTextResponse:
        """``options`` are the other TranslateTextRequest fields (glossary, context, ...)."""
        request = translation_pb2.TranslateTextRequest(
            contents=list(contents),
            target_language_code=target_language_code,
            source_language_code=source_language_code,
            mime_type=mime_type,
            **options,
        )
        return self._call(self._translation.TranslateText, request, timeout)

    def detect_language(
        self, contents: Iterable[str], *, timeout: float | None = None
    ) -> translation_pb2.DetectLanguageResponse:
        request = translation_pb2.DetectLanguageRequest(contents=list(contents))
        return self._call(self._translation.DetectLanguage, request, timeout)

    def list_languages(
        self, *, display_language_code: str = "", timeout: float | None = None
    ) -> translation_pb2.ListLanguagesResponse:
        request = translation_pb2.ListLanguagesRequest(display_language_code=display_language_code)
        return self._call(self._translation.ListLanguages, request, timeout)

    def index_documents(
        self,
        collection: str,
        documents: Iterable[search_pb2.Document | Mapping[str, Any]],
        *,
        timeout: float | None = None,
    ) -> search_pb2.IndexDocumentsResponse:
        docs = [
            d if isinstance(d, search_pb2.Document) else search_pb2.Document(**d) for d in documents
        ]
        request = search_pb2.IndexDocumentsRequest(collection=collection, documents=docs)
        return self._call(self._search.IndexDocuments, request, timeout)

    def delete_documents(
        self, collection: str, ids: Iterable[str], *, timeout: float | None = None
    ) -> search_pb2.DeleteDocumentsResponse:
        request = search_pb2.DeleteDocumentsRequest(collection=collection, ids=list(ids))
        return self._call(self._search.DeleteDocuments, request, timeout)

    def search(
        self, collection: str, query: str, *, timeout: float | None = None, **options: Any
    ) -> search_pb2.SearchResponse:
        """``options`` are the other SearchRequest fields (top_k, rerank, ...)."""
        request = search_pb2.SearchRequest(collection=collection, query=query, **options)
        return self._call(self._search.Search, request, timeout)

    def get_collection_stats(
        self, collection: str, *, timeout: float | None = None
    ) -> search_pb2.CollectionStats:
        request = search_pb2.GetCollectionStatsRequest(collection=collection)
        return self._call(self._search.GetCollectionStats, request, timeout)
