"""How the service logs: one line per event, as text for a terminal or as JSON lines for journald/Loki
(`logging.format`), each line of a request carrying its request id.

The request id is taken from the request's `X-Request-Id` when it is sane (bounded, printable ASCII: it is
written into every line of the request, so a sender must not be able to forge lines or grow them) or made here,
and kept in a context variable: aiohttp runs each request in a task of its own, so the id follows the handler
into everything it awaits and never leaks into another request. The engine's lines name the refund (id, and
its key where first seen) instead: together they follow a refund from its webhook to its report.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

REQUEST_ID_HEADER = "X-Request-Id"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,64}")  # what proxies and clients send: uuids, hex, base64
NO_REQUEST = "-"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default=NO_REQUEST)
# Made ids: a random prefix per process and a counter. Unique enough to grep, and far cheaper than a uuid4
# on the ingest path.
_prefix = os.urandom(4).hex()
_sequence = itertools.count(1)


def bind_request_id(headers: Mapping[str, str]) -> str:
    """Make the request's id current for the rest of its handler, and return it."""
    given = headers.get(REQUEST_ID_HEADER)
    rid = given if given is not None and _SANE_REQUEST_ID.fullmatch(given) else f"{_prefix}-{next(_sequence)}"
    request_id.set(rid)
    return rid


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (`-` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


# The attributes every LogRecord has; anything else on a record came from `extra=` and goes into the JSON line.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id, the `extra=` fields,
    and the traceback of an exception as one string (a multi-line traceback stays one event in Loki)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", NO_REQUEST),
        }
        line.update((key, value) for key, value in vars(record).items() if key not in _STANDARD)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


WRITE, NOTICE, SKIP = "write", "notice", "skip"


@dataclass
class LineSampler:
    """At most `burst` lines of one kind a second, as production loggers sample (zap's production default: the
    first 100 a second). A line per stored webhook costs serve about a sixth of its CPU per webhook at full load
    (docs/performance.md) and, past journald's default rate limit (10,000 lines in 30 s), would make it drop the
    warnings and errors of the same moments. At real refund rates nothing is skipped; in a flood the counters
    (`refund_adapter_webhooks_total`) still count every one."""

    burst: int = 100
    clock: Callable[[], float] = time.monotonic
    _second: int = -1
    _lines: int = 0

    def take(self) -> str:
        """WRITE this line; NOTICE: skip it and say that the rest of this second's are skipped; or SKIP it."""
        second = int(self.clock())
        if second != self._second:
            self._second, self._lines = second, 0
        self._lines += 1
        return WRITE if self._lines <= self.burst else NOTICE if self._lines == self.burst + 1 else SKIP


def configure_logging(level: str, fmt: str = "text") -> None:
    """Send the root logger's lines to stderr (journald takes them from there) in `fmt`, replacing any handler."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
