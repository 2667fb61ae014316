"""Statement shapes: a statement whose text grows with the number of values (an IN list, a multi-row VALUES) is a new
prepared statement for each length, and each connection keeps the ones it prepared (sqlite3's statement cache,
asyncpg's). Sizes are therefore rounded to powers of two: a dozen shapes per statement, whatever the lengths."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def padding(n: int) -> int:
    """How many values to add to `n` to reach the next power of two (0 for 0)."""
    return (1 << (n - 1).bit_length()) - n if n else 0


def power_of_two_chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """`items` in consecutive chunks whose sizes are powers of two, largest first (13: 8, 4, 1): for statements
    where a value repeated would be a row written twice."""
    start = 0
    while start < len(items):
        size = 1 << ((len(items) - start).bit_length() - 1)
        yield items[start : start + size]
        start += size
