"""Untrusted text in logs and problems: one line, escaped, and never longer than the bound."""

from __future__ import annotations

from refund_adapter.untrusted import LOG_LINE_LIMIT, QUOTE_LIMIT, bounded, quote


def test_a_quote_is_one_escaped_line_of_bounded_size() -> None:
    assert quote("shop\n2026-12-07 INFO forged line") == "'shop\\n2026-12-07 INFO forged line'"
    assert quote("\udcff") == "'\\udcff'"  # a header that was not UTF-8: printable, encodable
    long = quote("x" * 1_000_000)
    assert len(long) <= QUOTE_LIMIT and long.endswith("(999842 more characters)")  # of the 1,000,002 of the repr


def test_bounded_keeps_short_text_and_cuts_long_text_to_the_limit() -> None:
    assert bounded("short") == "short"
    for size in (LOG_LINE_LIMIT + 1, 10**6):
        cut = bounded("y" * size)
        assert len(cut) <= LOG_LINE_LIMIT and cut.startswith("y" * 1000) and "more characters" in cut
