"""SearchService: IndexDocuments, DeleteDocuments, Search, GetCollectionStats."""

from __future__ import annotations

import grpc

from xling.service import validation
from xling.service.errors import Unimplemented
from xling.service.runtime import Runtime
from xling.v1 import search_pb2, search_pb2_grpc

_NOT_YET = "{} is not implemented in this version of xling"


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def IndexDocuments(
        self, request: search_pb2.IndexDocumentsRequest, context: grpc.aio.ServicerContext
    ) -> search_pb2.IndexDocumentsResponse:
        validation.check_index(request, self._runtime.settings)
        raise Unimplemented(_NOT_YET.format("IndexDocuments"))

    async def DeleteDocuments(
        self, request: search_pb2.DeleteDocumentsRequest, context: grpc.aio.ServicerContext
    ) -> search_pb2.DeleteDocumentsResponse:
        validation.check_delete(request, self._runtime.settings)
        raise Unimplemented(_NOT_YET.format("DeleteDocuments"))

    async def Search(
        self, request: search_pb2.SearchRequest, context: grpc.aio.ServicerContext
    ) -> search_pb2.SearchResponse:
        validation.check_search(request, self._runtime.settings)
        raise Unimplemented(_NOT_YET.format("Search"))

    async def GetCollectionStats(
        self, request: search_pb2.GetCollectionStatsRequest, context: grpc.aio.ServicerContext
    ) -> search_pb2.CollectionStats:
        validation.check_stats(request)
        raise Unimplemented(_NOT_YET.format("GetCollectionStats"))
