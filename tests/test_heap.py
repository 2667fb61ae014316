"""`settle_heap`: what serve does to the cyclic collector once it has started."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from refund_adapter.heap import YOUNG_THRESHOLD, settle_heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_garbage_left_by_start_up_is_collected_and_the_living_are_frozen(restored_gc: None) -> None:
    garbage, kept = Node(), Node()
    garbage.other, kept.other = garbage, kept  # two cycles: only `kept` is still referenced
    dead = weakref.ref(garbage)
    del garbage
    frozen_before = gc.get_freeze_count()
    settle_heap()
    assert dead() is None  # a cycle from start-up is freed, not frozen for the process's lifetime
    assert gc.get_freeze_count() > frozen_before
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert kept.other is kept
