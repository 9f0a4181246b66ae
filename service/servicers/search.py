"""SearchService: IndexDocuments, DeleteDocuments, Search, GetCollectionStats."""

from __future__ import annotations

import time

import grpc

from xling.service import validation
from xling.service.runtime import Runtime
from xling.v1 import search_pb2, search_pb2_grpc


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def IndexDocuments(
        self, request: search_pb2.IndexDocumentsRequest, context: grpc.aio.ServicerContext
    ) -> search_pb2.IndexDocumentsResponse:
        collection, documents = validation.check_index(request, self._runtime.settings)
        indexed, chunks = await self._runtime.search.index(collection, documents)
        return search_pb2.IndexDocumentsResponse(indexed_count=indexed, chunk_count=chunks)

    async def DeleteDocuments(
        self, request: search_pb2.DeleteDocumentsRequest, context: grpc.aio.ServicerContext
    ) -> search_pb2.DeleteDocumentsResponse:
        collection, ids = validation.check_delete(request, self._runtime.settings)
        deleted = await self._runtime.search.delete(collection, ids)
        return search_pb2.DeleteDocumentsResponse(deleted_count=deleted)

    async def Search(
        self, request: search_pb2.SearchRequest, context: grpc.aio.ServicerContext
    ) -> search_pb2.SearchResponse:
        query = validation.check_search(request, self._runtime.settings)
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        result = await self._runtime.search.search(query, deadline=deadline)
        response = search_pb2.SearchResponse(
            query_language_code=result.query_language_code,
            model=result.model,
            hits=[
                search_pb2.SearchHit(
                    document_id=hit.chunk.document_id,
                    text=hit.chunk.text,
                    title=hit.chunk.title,
                    language_code=hit.chunk.language_code,
                    score=hit.score,
                    rerank_score=hit.rerank_score,
                    translated_text=hit.translated_text,
                    metadata=hit.chunk.metadata,
                )
                for hit in result.hits
            ],
        )
        if result.summary is not None:
            response.summary.CopyFrom(
                search_pb2.Summary(
                    text=result.summary.text,
                    language_code=result.summary_language_code,
                    cited_document_ids=result.summary.citations,
                )
            )
        return response

    async def GetCollectionStats(
        self, request: search_pb2.GetCollectionStatsRequest, context: grpc.aio.ServicerContext
    ) -> search_pb2.CollectionStats:
        collection = validation.check_stats(request)
        info = await self._runtime.search.stats(collection)
        return search_pb2.CollectionStats(
            collection=info.name,
            document_count=info.document_count,
            chunk_count=info.chunk_count,
            dimension=info.dimension,
            index_type=info.index_type,
            languages=info.languages,
            embedder=info.embedder,
        )
