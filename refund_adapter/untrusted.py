"""Untrusted text on its way into a log line or a problem's `detail`: escaped and cut to a bounded size.

Anyone can send a request, so anything a request carries (a header, a path, a body field) is quoted through
`quote` wherever a message names it, and `bounded` caps whole lines: a megabyte body must not become a megabyte
log line, and a newline in a header must not forge a second log line.
"""

from __future__ import annotations

LOG_LINE_LIMIT = 2048  # characters of one log line or problem detail that a request can influence
QUOTE_LIMIT = 200  # characters of one untrusted value quoted in such a line


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """`repr(value)` (control characters, newlines and lone surrogates escaped), shortened to about `limit`."""
    return bounded(repr(value), limit)


def bounded(text: str, limit: int = LOG_LINE_LIMIT) -> str:
    """`text`, or as much of it as fits in `limit` characters with a note of how many were cut."""
    if len(text) <= limit:
        return text
    kept = max(limit - _NOTE_ROOM, 0)
    return f"{text[:kept]}... ({len(text) - kept} more characters)"


_NOTE_ROOM = 40  # "... (N more characters)" for any N a request can reach
