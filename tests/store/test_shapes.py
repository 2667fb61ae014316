"""Statements sized by powers of two: a list of any length pads to one of a dozen IN-list shapes, and rows to
insert split into chunks of those sizes, covering every row exactly once, in order."""

from __future__ import annotations

from refund_adapter.store.shapes import padding, power_of_two_chunks


def test_a_length_pads_to_the_next_power_of_two() -> None:
    assert [n + padding(n) for n in (1, 2, 3, 5, 8, 9, 500, 1000, 1024)] == [1, 2, 4, 8, 8, 16, 512, 1024, 1024]
    assert padding(0) == 0
    assert len({n + padding(n) for n in range(1, 1001)}) == 11


def test_chunks_are_powers_of_two_and_cover_every_item_once_in_order() -> None:
    for n in range(0, 1100):
        items = list(range(n))
        chunks = list(power_of_two_chunks(items))
        assert [x for chunk in chunks for x in chunk] == items
        assert all(len(chunk) & (len(chunk) - 1) == 0 for chunk in chunks)
        assert len(chunks) == bin(n).count("1")
