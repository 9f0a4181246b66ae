"""Errors a client call can raise, mapped from gRPC status codes and details.

XlingError                  any failed call; .code, .message
├── InvalidArgument         .field_violations: list of (field, description)
├── Unauthenticated
├── NotFound
├── RateLimited             RESOURCE_EXHAUSTED; .retry_after (seconds or None)
├── Unavailable             .retry_after
├── DeadlineExceeded
└── Unimplemented
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class XlingError(Exception):
    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        field_violations: list[tuple[str, str]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.field_violations = field_violations or []
        self.retry_after = retry_after


class InvalidArgument(XlingError):
    pass


class Unauthenticated(XlingError):
    pass


class NotFound(XlingError):
    pass


class RateLimited(XlingError):
    pass


class Unavailable(XlingError):
    pass


class DeadlineExceeded(XlingError):
    pass


class Unimplemented(XlingError):
    pass


_CLASSES: dict[grpc.StatusCode, type[XlingError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RateLimited,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
}


def from_rpc_error(error: grpc.RpcError) -> XlingError:
    """The ``XlingError`` for a failed call, with its ``google.rpc`` details read."""
    code: grpc.StatusCode = error.code()  # type: ignore[attr-defined]
    message: str = error.details() or ""  # type: ignore[attr-defined]
    violations: list[tuple[str, str]] = []
    retry_after: float | None = None
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations += [(v.field, v.description) for v in bad_request.field_violations]
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry_info = error_details_pb2.RetryInfo()
            detail.Unpack(retry_info)
            retry_after = retry_info.retry_delay.ToNanoseconds() / 1e9
    cls = _CLASSES.get(code, XlingError)
    return cls(code, message, field_violations=violations, retry_after=retry_after)
