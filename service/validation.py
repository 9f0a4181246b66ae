"""Request validation, once, at the edge.

Each ``check_*`` function takes a protobuf request, collects every problem as
a (field path, description) violation and raises one ``InvalidArgument`` with
all of them, or returns the request's values normalized for the pipelines.
Servicers call these first and hold no checks of their own.
"""

from __future__ import annotations

from collections.abc import Sequence

from xling.index.manager import DocumentInput
from xling.service import languages
from xling.service.config import Settings
from xling.service.errors import InvalidArgument
from xling.service.search.pipeline import DEFAULT_TOP_K, SearchQuery
from xling.service.translation.pipeline import TranslateOptions
from xling.v1 import search_pb2, translation_pb2

MIME_TYPES = ("text/plain", "text/html")
DEFAULT_COLLECTION = "default"
MAX_TOP_K = 100
MAX_COLLECTION_NAME = 64
MAX_ID_CHARS = 512
# Glossary and do-not-translate terms become one regular expression per request, whose
# compilation takes milliseconds a term: bounded, so one request cannot hold a CPU for minutes.
MAX_TERMS = 256
MAX_TERM_CHARS = 256
# Each language code or metadata pair is one clause of the store's SQL filter, and SQLite
# refuses expressions nested deeper than 1000.
MAX_FILTER_ITEMS = 100


class _Violations:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, description: str) -> None:
        self.items.append((field, description))

    def language(self, field: str, code: str, *, target: bool = False) -> str:
        """The normalized code, or "" after recording a violation."""
        try:
            normalized = languages.normalize(code)
        except ValueError as exc:
            self.add(field, str(exc))
            return ""
        if target and not languages.is_target(normalized):
            self.add(field, f"translation into {normalized!r} is not supported; see ListLanguages")
            return ""
        return normalized

    def texts(self, field: str, texts: Sequence[str], limits: Settings) -> None:
        """Item count, empty items and character limits of a list of texts."""
        if not texts:
            self.add(field, "must contain at least one item")
            return
        if len(texts) > limits.max_items:
            self.add(field, f"has {len(texts)} items; at most {limits.max_items} are allowed")
            return
        total = 0
        for i, text in enumerate(texts):
            total += len(text)
            if not text.strip():
                self.add(f"{field}[{i}]", "must not be empty")
            elif len(text) > limits.max_item_chars:
                self.add(
                    f"{field}[{i}]",
                    f"has {len(text)} characters; at most {limits.max_item_chars} are allowed",
                )
        if total > limits.max_request_chars:
            self.add(
                field,
                f"has {total} characters in all; at most {limits.max_request_chars} are allowed",
            )

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)


_FORMALITY = {
    translation_pb2.FORMALITY_UNSPECIFIED: "",
    translation_pb2.FORMALITY_MORE: "more",
    translation_pb2.FORMALITY_LESS: "less",
}


def check_translate(
    request: translation_pb2.TranslateTextRequest, limits: Settings, model_name: str
) -> tuple[list[str], TranslateOptions]:
    """The contents and options; ``model_name`` is the configured chat model's."""
    v = _Violations()
    v.texts("contents", request.contents, limits)
    source = ""
    if request.source_language_code:
        source = v.language("source_language_code", request.source_language_code)
    target = ""
    if not request.target_language_code:
        v.add("target_language_code", "is required")
    else:
        target = v.language("target_language_code", request.target_language_code, target=True)
    mime_type = request.mime_type or "text/plain"
    if mime_type not in MIME_TYPES:
        v.add("mime_type", f"must be one of {', '.join(MIME_TYPES)}; got {request.mime_type!r}")
    terms = len(request.glossary) + len(request.do_not_translate)
    if terms > MAX_TERMS:
        v.add(
            "glossary" if request.glossary else "do_not_translate",
            f"glossary and do_not_translate have {terms} terms together; "
            f"at most {MAX_TERMS} are allowed",
        )
    for i, entry in enumerate(request.glossary):
        if not entry.source.strip() or not entry.target.strip():
            v.add(f"glossary[{i}]", "source and target must both be non-empty")
        elif max(len(entry.source), len(entry.target)) > MAX_TERM_CHARS:
            v.add(f"glossary[{i}]", f"source and target have at most {MAX_TERM_CHARS} characters")
    for i, term in enumerate(request.do_not_translate):
        if not term.strip():
            v.add(f"do_not_translate[{i}]", "must not be empty")
        elif len(term) > MAX_TERM_CHARS:
            v.add(f"do_not_translate[{i}]", f"has more than {MAX_TERM_CHARS} characters")
    if len(request.context) > limits.max_item_chars:
        v.add("context", f"has more than {limits.max_item_chars} characters")
    if request.formality not in _FORMALITY:
        v.add("formality", f"unknown value {request.formality}")
    backend = model_name.split(":")[0]
    if request.model and request.model not in (model_name, backend):
        v.add("model", f"{request.model!r} is not configured; this server runs {model_name!r}")
    v.raise_if_any()
    options = TranslateOptions(
        target_language_code=target,
        source_language_code=source,
        mime_type=mime_type,
        glossary=tuple((g.source.strip(), g.target.strip()) for g in request.glossary),
        do_not_translate=tuple(t.strip() for t in request.do_not_translate),
        formality=_FORMALITY[request.formality],
        context=request.context,
    )
    return list(request.contents), options


def check_detect(request: translation_pb2.DetectLanguageRequest, limits: Settings) -> list[str]:
    v = _Violations()
    v.texts("contents", request.contents, limits)
    v.raise_if_any()
    return list(request.contents)


def check_list_languages(request: translation_pb2.ListLanguagesRequest) -> str:
    v = _Violations()
    display = v.language("display_language_code", request.display_language_code or "en")
    v.raise_if_any()
    return display


def _collection(v: _Violations, name: str) -> str:
    name = name or DEFAULT_COLLECTION
    if len(name) > MAX_COLLECTION_NAME or not name.replace("-", "").replace("_", "").isalnum():
        v.add(
            "collection",
            f"must be 1-{MAX_COLLECTION_NAME} letters, digits, '-' or '_'; got {name[:80]!r}",
        )
    return name


def check_index(
    request: search_pb2.IndexDocumentsRequest, limits: Settings
) -> tuple[str, list[DocumentInput]]:
    v = _Violations()
    collection = _collection(v, request.collection)
    v.texts("documents.text", [d.text for d in request.documents], limits)
    seen: set[str] = set()
    documents = []
    for i, document in enumerate(request.documents):
        if not document.id or len(document.id) > MAX_ID_CHARS:
            v.add(f"documents[{i}].id", f"must be 1-{MAX_ID_CHARS} characters")
        elif document.id in seen:
            v.add(f"documents[{i}].id", f"duplicate id {document.id!r} in one request")
        seen.add(document.id)
        language = ""
        if document.language_code:
            language = v.language(f"documents[{i}].language_code", document.language_code)
        if len(document.title) > limits.max_item_chars:
            v.add(f"documents[{i}].title", f"has more than {limits.max_item_chars} characters")
        documents.append(
            DocumentInput(
                id=document.id,
                text=document.text,
                title=document.title,
                language_code=language,
                metadata=dict(document.metadata),
            )
        )
    v.raise_if_any()
    return collection, documents


def check_delete(
    request: search_pb2.DeleteDocumentsRequest, limits: Settings
) -> tuple[str, list[str]]:
    v = _Violations()
    collection = _collection(v, request.collection)
    if not request.ids:
        v.add("ids", "must contain at least one id")
    elif len(request.ids) > limits.max_items:
        v.add("ids", f"has {len(request.ids)} items; at most {limits.max_items} are allowed")
    v.raise_if_any()
    return collection, list(dict.fromkeys(request.ids))


def check_search(request: search_pb2.SearchRequest, limits: Settings) -> SearchQuery:
    v = _Violations()
    collection = _collection(v, request.collection)
    if not request.query.strip():
        v.add("query", "must not be empty")
    elif len(request.query) > limits.max_item_chars:
        v.add("query", f"has more than {limits.max_item_chars} characters")
    if not 0 <= request.top_k <= MAX_TOP_K:
        v.add("top_k", f"must be between 1 and {MAX_TOP_K} (0 means 10); got {request.top_k}")
    query_language = summary_language = ""
    if request.query_language_code:
        query_language = v.language("query_language_code", request.query_language_code)
    if request.summary_language_code:
        summary_language = v.language(
            "summary_language_code", request.summary_language_code, target=True
        )
    codes: list[str] = []
    if len(request.language_codes) > MAX_FILTER_ITEMS:
        v.add("language_codes", f"has more than {MAX_FILTER_ITEMS} codes")
    else:
        codes = [
            v.language(f"language_codes[{i}]", c) for i, c in enumerate(request.language_codes)
        ]
    if len(request.metadata_filter) > MAX_FILTER_ITEMS:
        v.add("metadata_filter", f"has more than {MAX_FILTER_ITEMS} pairs")
    v.raise_if_any()
    return SearchQuery(
        collection=collection,
        query=request.query,
        query_language_code=query_language,
        top_k=request.top_k or DEFAULT_TOP_K,
        language_codes=tuple(languages.base(c) for c in codes),
        metadata_filter=dict(request.metadata_filter),
        rerank=request.rerank,
        summarize=request.summarize,
        summary_language_code=summary_language,
        translate_hits=request.translate_hits,
    )


def check_stats(request: search_pb2.GetCollectionStatsRequest) -> str:
    v = _Violations()
    collection = _collection(v, request.collection)
    v.raise_if_any()
    return collection
