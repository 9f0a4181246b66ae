from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Document(_message.Message):
    __slots__ = ("id", "text", "title", "language_code", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    title: str
    language_code: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., title: _Optional[str] = ..., language_code: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class IndexDocumentsRequest(_message.Message):
    __slots__ = ("collection", "documents")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    documents: _containers.RepeatedCompositeFieldContainer[Document]
    def __init__(self, collection: _Optional[str] = ..., documents: _Optional[_Iterable[_Union[Document, _Mapping]]] = ...) -> None: ...

class IndexDocumentsResponse(_message.Message):
    __slots__ = ("indexed_count", "chunk_count")
    INDEXED_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    indexed_count: int
    chunk_count: int
    def __init__(self, indexed_count: _Optional[int] = ..., chunk_count: _Optional[int] = ...) -> None: ...

class DeleteDocumentsRequest(_message.Message):
    __slots__ = ("collection", "ids")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteDocumentsResponse(_message.Message):
    __slots__ = ("deleted_count",)
    DELETED_COUNT_FIELD_NUMBER: _ClassVar[int]
    deleted_count: int
    def __init__(self, deleted_count: _Optional[int] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("collection", "query", "query_language_code", "top_k", "language_codes", "metadata_filter", "rerank", "summarize", "summary_language_code", "translate_hits")
    class MetadataFilterEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    QUERY_LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_CODES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FILTER_FIELD_NUMBER: _ClassVar[int]
    RERANK_FIELD_NUMBER: _ClassVar[int]
    SUMMARIZE_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    TRANSLATE_HITS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    query: str
    query_language_code: str
    top_k: int
    language_codes: _containers.RepeatedScalarFieldContainer[str]
    metadata_filter: _containers.ScalarMap[str, str]
    rerank: bool
    summarize: bool
    summary_language_code: str
    translate_hits: bool
    def __init__(self, collection: _Optional[str] = ..., query: _Optional[str] = ..., query_language_code: _Optional[str] = ..., top_k: _Optional[int] = ..., language_codes: _Optional[_Iterable[str]] = ..., metadata_filter: _Optional[_Mapping[str, str]] = ..., rerank: _Optional[bool] = ..., summarize: _Optional[bool] = ..., summary_language_code: _Optional[str] = ..., translate_hits: _Optional[bool] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("document_id", "text", "title", "language_code", "score", "rerank_score", "translated_text", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RERANK_SCORE_FIELD_NUMBER: _ClassVar[int]
    TRANSLATED_TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    text: str
    title: str
    language_code: str
    score: float
    rerank_score: float
    translated_text: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, document_id: _Optional[str] = ..., text: _Optional[str] = ..., title: _Optional[str] = ..., language_code: _Optional[str] = ..., score: _Optional[float] = ..., rerank_score: _Optional[float] = ..., translated_text: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Summary(_message.Message):
    __slots__ = ("text", "language_code", "cited_document_ids")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    CITED_DOCUMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    text: str
    language_code: str
    cited_document_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, text: _Optional[str] = ..., language_code: _Optional[str] = ..., cited_document_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("query_language_code", "hits", "summary", "model")
    QUERY_LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    query_language_code: str
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    summary: Summary
    model: str
    def __init__(self, query_language_code: _Optional[str] = ..., hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ..., summary: _Optional[_Union[Summary, _Mapping]] = ..., model: _Optional[str] = ...) -> None: ...

class GetCollectionStatsRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class CollectionStats(_message.Message):
    __slots__ = ("document_count", "chunk_count", "dimension", "index_type", "languages", "embedder", "collection")
    class LanguagesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    DOCUMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    INDEX_TYPE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    document_count: int
    chunk_count: int
    dimension: int
    index_type: str
    languages: _containers.ScalarMap[str, int]
    embedder: str
    collection: str
    def __init__(self, document_count: _Optional[int] = ..., chunk_count: _Optional[int] = ..., dimension: _Optional[int] = ..., index_type: _Optional[str] = ..., languages: _Optional[_Mapping[str, int]] = ..., embedder: _Optional[str] = ..., collection: _Optional[str] = ...) -> None: ...
