"""What aiohttp's HTTP layer logs about requests it could not even parse (a byte that is not ASCII in the path,
an invalid header name, a Content-Length past 64 bits, a body that is not in its Content-Encoding, found while
draining a body no handler read): one bounded line, not an ERROR with a traceback.

Such a request reaches no route: aiohttp answers it 400 itself (plain text, before any handler) and logs it through
the logger its server is given, `SERVER_LOGGER` here. Anything else it logs, a handler's crash above all, is
passed on unchanged.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import RequestPayloadError

from ..untrusted import quote

MALFORMED = "refused a malformed HTTP request"


class _ProtocolLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    def log(self, level: int, msg: object, *args: object, exc_info: Any = None, **kwargs: Any) -> None:
        error = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1] if exc_info else None
        if isinstance(error, HttpProcessingError | RequestPayloadError):  # the request is malformed, not the server
            # At most INFO: aiohttp logs a bad method (a port scanner, TLS on a plain port) at DEBUG, and keeps it.
            self.logger.log(min(level, logging.INFO), "%s: %s", MALFORMED, quote(str(error)))
            return
        self.logger.log(level, msg, *args, exc_info=exc_info, **kwargs)


SERVER_LOGGER = _ProtocolLogger(logging.getLogger("aiohttp.server"))
