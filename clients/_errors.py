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

import re

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class XlingError(Exception):
    """A failed call: ``code`` is the gRPC status, ``message`` the server's words.

    Usage::

        try:
            client.translate_text(texts, target_language_code="fr")
        except RateLimited as error:
            time.sleep(error.retry_after or 1.0)
        except XlingError as error:
            print(error.code.name, error.message, error.field_violations)
    """

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


# Fields of split requests whose violations name an item by its index.
_ITEM_FIELD = re.compile(r"^(contents|ids|documents(?:\.text)?)\[(\d+)\]")


def with_item_offset(error: XlingError, offset: int) -> XlingError:
    """``error`` from a part of a split request, its item indexes made the caller's.

    The part starting at item ``offset`` reports ``contents[3]``; the caller
    sent that item as ``contents[offset + 3]``.
    """
    if not offset:
        return error

    def shift(text: str) -> str:
        return _ITEM_FIELD.sub(lambda m: f"{m[1]}[{int(m[2]) + offset}]", text, count=1)

    return type(error)(
        error.code,
        shift(error.message),
        field_violations=[(shift(field), text) for field, text in error.field_violations],
        retry_after=error.retry_after,
    )
