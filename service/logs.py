"""Structured logging: JSON lines carrying the current request's id and key name.

Request text is logged only at DEBUG: at INFO and above a line names the
method, code, latency and key name, never what the caller sent.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

# Set by the request interceptor for the duration of each call.
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
# The name of the API key of the call (never the key itself).
key_name_var: ContextVar[str] = ContextVar("key_name", default="-")


class RequestContextFilter(logging.Filter):
    """Adds the current call's request id and key name to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.key = key_name_var.get()
        return True


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Routes all logs to stderr, as JSON lines or as readable text."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestContextFilter())
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(key)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(key)s] %(message)s"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
