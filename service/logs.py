"""The service's log lines: text for people (the default) or, with `AE_LOG_FORMAT=json`, one
JSON object a line for log shippers (Loki, Elasticsearch, Cloud Logging).

One handler on the root logger writes every line to stderr: the service's own ("service",
"service.access"), uvicorn's (it is given no logging config of its own, so its loggers
propagate here), warnings, and exceptions nothing caught. The access line comes from the
request middleware, which knows the request id, route and model version; uvicorn's own access
log stays off.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from types import TracebackType
from typing import Any, Literal

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# What a record may carry about its request (`extra=`), in the order a JSON line shows them.
REQUEST_FIELDS = (
    "request_id", "method", "route", "path", "status", "duration_ms", "model_version", "client"
)  # fmt: skip
# The ones a text line appends; its message already says method, path, status and duration.
TEXT_FIELDS = ("request_id", "route", "model_version", "client")

log = logging.getLogger("service")


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON: timestamp (RFC 3339, UTC), level, logger, message, the
    request's fields when it has them, and the exception's traceback as a field. ASCII only,
    so no character in a message can break the line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
        }
        fields = record.__dict__
        line.update((name, fields[name]) for name in REQUEST_FIELDS if _has(fields, name))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """The readable line, with a request's id, route and model version after the message."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = record.__dict__
        extra = "".join(f" {name}={fields[name]}" for name in TEXT_FIELDS if _has(fields, name))
        return super().formatMessage(record) + extra


def configure_logging(log_format: LogFormat, level: str) -> None:
    """Send every logger's lines through one stderr handler in `log_format`; calling it again
    (a worker process set up by uvicorn's supervisor) replaces that handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for previous in root.handlers[:]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)
    # A traceback printed by Python itself would be many lines outside any JSON object.
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def rfc3339(created: float) -> str:
    """`2026-01-31T12:34:56.789Z` for a `time.time()` reading."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{whole}.{int(created % 1 * 1000):03d}Z"


def _has(fields: dict[str, Any], name: str) -> bool:
    return fields.get(name) is not None


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad format string: keep the line (logging would print a traceback)
        return f"{record.msg} (arguments that do not fit it: {record.args!r})"


def _log_uncaught(
    kind: type[BaseException], exc: BaseException, traceback: TracebackType | None
) -> None:
    log.critical("uncaught %s", kind.__name__, exc_info=(kind, exc, traceback))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or args.exc_type is SystemExit:
        return
    thread = args.thread.name if args.thread else "a thread"
    log.critical(
        "uncaught %s in %s", args.exc_type.__name__, thread,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )  # fmt: skip
