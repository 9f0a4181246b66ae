"""The exception tree of xling and its mapping to gRPC status codes.

Pipelines raise these; the server's interceptor turns them into a status with
``google.rpc`` details (``to_rpc_status``), and the Python client maps the
codes back to the same classes. Nothing else in the server picks status codes.

    XlingError                   INTERNAL
    ├── InvalidArgument          INVALID_ARGUMENT + BadRequest field violations
    ├── Unauthenticated          UNAUTHENTICATED
    ├── NotFound                 NOT_FOUND + ResourceInfo
    ├── ResourceExhausted        RESOURCE_EXHAUSTED + RetryInfo
    ├── DeadlineExceeded         DEADLINE_EXCEEDED
    ├── Unavailable              UNAVAILABLE (+ RetryInfo when known)
    └── Unimplemented            UNIMPLEMENTED

``ConfigurationError`` is not a request error: it stops the server at start
and names the setting to change.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

ERROR_DOMAIN = "xling.dev"


class ConfigurationError(Exception):
    """A setting is wrong or a model cannot load; the server does not start."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{message} (setting: {setting}, env XLING_{setting.upper()})")
        self.setting = setting


class XlingError(Exception):
    """Base of every error a request can end with."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> list[any_pb2.Any]:
        """``google.rpc`` detail messages, packed, for the status."""
        return []


class InvalidArgument(XlingError):
    """Bad input. Carries one violation per bad field, such as ``contents[3]``."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: Iterable[tuple[str, str]]) -> None:
        self.violations = list(violations)
        if not self.violations:
            raise ValueError("InvalidArgument needs at least one violation")
        first_field, first_description = self.violations[0]
        more = len(self.violations) - 1
        suffix = f" (and {more} more)" if more else ""
        super().__init__(f"{first_field}: {first_description}{suffix}")

    def details(self) -> list[any_pb2.Any]:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
                for field, description in self.violations
            ]
        )
        return [_pack(bad_request)]


class Unauthenticated(XlingError):
    code = grpc.StatusCode.UNAUTHENTICATED


class NotFound(XlingError):
    code = grpc.StatusCode.NOT_FOUND

    def __init__(self, resource_type: str, resource_name: str) -> None:
        super().__init__(f"{resource_type} not found: {resource_name}")
        self.resource_type = resource_type
        self.resource_name = resource_name

    def details(self) -> list[any_pb2.Any]:
        info = error_details_pb2.ResourceInfo(
            resource_type=self.resource_type, resource_name=self.resource_name
        )
        return [_pack(info)]


class _Retryable(XlingError):
    """An error the caller may retry after ``retry_after_s`` seconds."""

    def __init__(
        self, message: str, *, retry_after_s: float | None = None, reason: str = ""
    ) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.reason = reason

    def details(self) -> list[any_pb2.Any]:
        details = []
        if self.retry_after_s is not None:
            delay = duration_pb2.Duration()
            delay.FromNanoseconds(int(self.retry_after_s * 1e9))
            details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
        if self.reason:
            details.append(
                _pack(error_details_pb2.ErrorInfo(reason=self.reason, domain=ERROR_DOMAIN))
            )
        return details


class ResourceExhausted(_Retryable):
    """A rate limit, a full queue or the model provider's quota."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(_Retryable):
    """A backend is down after retries, or the server is shutting down."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(XlingError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unimplemented(XlingError):
    code = grpc.StatusCode.UNIMPLEMENTED


def _pack(message) -> any_pb2.Any:  # type: ignore[no-untyped-def]
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_rpc_status(error: XlingError) -> status_pb2.Status:
    """The ``google.rpc.Status`` for an error, with its details."""
    return status_pb2.Status(
        code=getattr(code_pb2, error.code.name), message=error.message, details=error.details()
    )
