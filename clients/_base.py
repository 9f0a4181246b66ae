"""What the sync and async clients share: configuration, requests, splitting, retries.

``BaseClient`` turns each method's arguments into a ``Plan``: the RPC, one
request per part of a split, and how to join the parts' responses. The faces
in ``_client.py`` and ``_async_client.py`` only send a plan's requests, the
one in a blocking way and the other awaiting, and ask ``_retry_delay``
whether a failure is worth another try.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf.message import Message

from xling.clients._config import (
    DEFAULT_LIMITS,
    DEFAULT_TARGET,
    DEFAULT_TIMEOUT,
    Limits,
    RetryPolicy,
    TLSConfig,
    channel_options,
)
from xling.clients._errors import RateLimited, Unavailable, XlingError
from xling.clients._splitting import Item, split_ranges
from xling.v1 import search_pb2, translation_pb2

log = logging.getLogger(__name__)

Response = TypeVar("Response", bound=Message)
Glossary = Mapping[str, str] | Iterable[translation_pb2.GlossaryEntry]
DocumentLike = search_pb2.Document | Mapping[str, Any]

_TRANSLATION = "/xling.v1.TranslationService/"
_SEARCH = "/xling.v1.SearchService/"


@dataclass(frozen=True, slots=True)
class Plan(Generic[Response]):
    """One method call: the RPC, its requests and how their responses combine.

    ``offsets[i]`` is the index, in the caller's list, of the first item of
    ``requests[i]``; errors of that part are reported at the caller's indexes.
    """

    path: str
    response_type: type[Response]
    requests: list[Message]
    offsets: list[int]
    join: Callable[[list[Response]], Response]


def _only(responses: list[Response]) -> Response:
    (response,) = responses
    return response


def _concatenate(field: str) -> Callable[[list[Response]], Response]:
    def join(responses: list[Response]) -> Response:
        first = responses[0]
        for response in responses[1:]:
            getattr(first, field).extend(getattr(response, field))
        return first

    return join


def _sum(*fields: str) -> Callable[[list[Response]], Response]:
    def join(responses: list[Response]) -> Response:
        first = responses[0]
        for name in fields:
            setattr(first, name, sum(getattr(r, name) for r in responses))
        return first

    return join


class BaseClient:
    """Configuration and request building for ``Client`` and ``AsyncClient``.

    ``timeout`` is the deadline in seconds of each RPC, retries included; a
    request split into several RPCs gives each its own. ``api_key`` is sent as
    ``authorization: Bearer KEY``. ``target`` is ``HOST:PORT`` or any gRPC
    name such as ``dns:///xling.svc:50051``; ``load_balancing`` spreads calls
    over every address the name resolves to.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        tls: TLSConfig | None = None,
        retry: RetryPolicy | None = None,
        limits: Limits | None = DEFAULT_LIMITS,
        load_balancing: str = "round_robin",
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive; got {timeout}")
        self.target = target
        self.timeout = timeout
        self._tls = tls
        self._retry = retry or RetryPolicy()
        self._limits = limits
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {api_key}"),) if api_key else ()
        )
        max_message_bytes = (limits or DEFAULT_LIMITS).max_message_bytes
        self._options = channel_options(self._retry, load_balancing, max_message_bytes)
        if tls is not None:
            self._options += tls.channel_options()
        self._open()

    def _open(self) -> None:
        """Prepares the face's channel: at once (sync) or on first use (async)."""
        raise NotImplementedError

    # Shared by the faces

    def _credentials(self) -> grpc.ChannelCredentials | None:
        return self._tls.credentials() if self._tls else None

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    @staticmethod
    def _remaining(deadline: float) -> float:
        return max(deadline - time.monotonic(), 0.0)

    def _retry_delay(self, error: XlingError, retries: int, deadline: float) -> float | None:
        """Seconds to wait before retrying after ``error``, or None to give up.

        Retries what the server asked to retry later (``RetryInfo`` on
        RESOURCE_EXHAUSTED or UNAVAILABLE), and only when the wait ends before
        the deadline: otherwise the caller learns of the failure at once.
        """
        if not isinstance(error, RateLimited | Unavailable) or error.retry_after is None:
            return None
        if retries >= self._retry.retry_info_retries:
            return None
        # Jitter keeps clients limited together from all coming back together.
        delay = error.retry_after * random.uniform(1.0, 1.1)  # noqa: S311 - not crypto
        if time.monotonic() + delay >= deadline:
            return None
        log.info("%s; retry %d in %.2f s", error, retries + 1, delay)
        return delay

    # Plans

    def _split(
        self,
        path: str,
        response_type: type[Response],
        template: Message,
        field: str,
        items: Sequence[Item],
        *,
        chars: Callable[[Item], int],
        join: Callable[[list[Response]], Response],
    ) -> Plan[Response]:
        if self._limits is None:
            ranges = [range(len(items))]
        else:
            ranges = split_ranges(
                items, limits=self._limits, base_bytes=template.ByteSize(), chars=chars
            )
        requests = []
        for part in ranges:
            request = type(template)()
            request.CopyFrom(template)
            getattr(request, field).extend(items[part.start : part.stop])
            requests.append(request)
        return Plan(path, response_type, requests, [r.start for r in ranges], join)

    def _translate_text_plan(
        self,
        contents: Iterable[str],
        *,
        target_language_code: str,
        source_language_code: str,
        mime_type: str,
        glossary: Glossary,
        do_not_translate: Iterable[str],
        formality: translation_pb2.Formality.ValueType,
        context: str,
        model: str,
    ) -> Plan[translation_pb2.TranslateTextResponse]:
        if isinstance(glossary, Mapping):
            entries = [
                translation_pb2.GlossaryEntry(source=source, target=target)
                for source, target in glossary.items()
            ]
        else:
            entries = list(glossary)
        template = translation_pb2.TranslateTextRequest(
            target_language_code=target_language_code,
            source_language_code=source_language_code,
            mime_type=mime_type,
            glossary=entries,
            do_not_translate=list(do_not_translate),
            formality=formality,
            context=context,
            model=model,
        )
        return self._split(
            _TRANSLATION + "TranslateText",
            translation_pb2.TranslateTextResponse,
            template,
            "contents",
            list(contents),
            chars=len,
            join=_concatenate("translations"),
        )

    def _detect_language_plan(
        self, contents: Iterable[str]
    ) -> Plan[translation_pb2.DetectLanguageResponse]:
        return self._split(
            _TRANSLATION + "DetectLanguage",
            translation_pb2.DetectLanguageResponse,
            translation_pb2.DetectLanguageRequest(),
            "contents",
            list(contents),
            chars=len,
            join=_concatenate("detections"),
        )

    def _list_languages_plan(
        self, display_language_code: str
    ) -> Plan[translation_pb2.ListLanguagesResponse]:
        request = translation_pb2.ListLanguagesRequest(display_language_code=display_language_code)
        return Plan(
            _TRANSLATION + "ListLanguages",
            translation_pb2.ListLanguagesResponse,
            [request],
            [0],
            _only,
        )

    def _index_documents_plan(
        self, collection: str, documents: Iterable[DocumentLike]
    ) -> Plan[search_pb2.IndexDocumentsResponse]:
        docs = [
            d if isinstance(d, search_pb2.Document) else search_pb2.Document(**d) for d in documents
        ]
        return self._split(
            _SEARCH + "IndexDocuments",
            search_pb2.IndexDocumentsResponse,
            search_pb2.IndexDocumentsRequest(collection=collection),
            "documents",
            docs,
            chars=lambda doc: len(doc.text),
            join=_sum("indexed_count", "chunk_count"),
        )

    def _delete_documents_plan(
        self, collection: str, ids: Iterable[str]
    ) -> Plan[search_pb2.DeleteDocumentsResponse]:
        return self._split(
            _SEARCH + "DeleteDocuments",
            search_pb2.DeleteDocumentsResponse,
            search_pb2.DeleteDocumentsRequest(collection=collection),
            "ids",
            list(ids),
            chars=lambda _: 0,  # ids count against items and bytes only
            join=_sum("deleted_count"),
        )

    def _search_plan(
        self,
        collection: str,
        query: str,
        *,
        top_k: int,
        query_language_code: str,
        language_codes: Iterable[str],
        metadata_filter: Mapping[str, str] | None,
        rerank: bool,
        summarize: bool,
        summary_language_code: str,
        translate_hits: bool,
    ) -> Plan[search_pb2.SearchResponse]:
        request = search_pb2.SearchRequest(
            collection=collection,
            query=query,
            top_k=top_k,
            query_language_code=query_language_code,
            language_codes=list(language_codes),
            metadata_filter=dict(metadata_filter or {}),
            rerank=rerank,
            summarize=summarize,
            summary_language_code=summary_language_code,
            translate_hits=translate_hits,
        )
        return Plan(_SEARCH + "Search", search_pb2.SearchResponse, [request], [0], _only)

    def _stats_plan(self, collection: str) -> Plan[search_pb2.CollectionStats]:
        request = search_pb2.GetCollectionStatsRequest(collection=collection)
        return Plan(
            _SEARCH + "GetCollectionStats", search_pb2.CollectionStats, [request], [0], _only
        )
