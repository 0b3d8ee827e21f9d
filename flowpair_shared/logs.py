"""Structured (one JSON object per line) logging with per-task context.

``bind(flow_id=...)`` adds fields to every later record of the current task, so each RPC and
each relay delivery can be traced to a flow id.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

_fields: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "flowpair_log_fields", default=None
)


def bind(**fields: Any) -> None:
    """Attach fields to every later log record of this task."""
    _fields.set({**(_fields.get() or {}), **fields})


def current() -> Mapping[str, Any]:
    """The fields bound so far in this task (tracing names a span's flow from them). Never
    changed in place: ``bind`` replaces the mapping."""
    return _fields.get() or {}


def reset() -> contextvars.Token[dict[str, Any] | None]:
    return _fields.set({})


@contextlib.contextmanager
def scoped(**fields: Any) -> Iterator[None]:
    """Fields for the records inside the block only (one message of a batch), then the
    task's own again."""
    token = _fields.set({**(_fields.get() or {}), **fields})
    try:
        yield
    finally:
        _fields.reset(token)


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line: time, level, logger, message, context, extras."""

    _reserved = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_fields.get() or {})
        for key, value in vars(record).items():
            if key not in self._reserved and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure(service: str) -> None:
    """Send JSON lines to stderr at FLOWPAIR_LOG_LEVEL (default INFO)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("FLOWPAIR_LOG_LEVEL", "INFO").upper())
    for noisy in ("sqlalchemy", "asyncio", "grpc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
