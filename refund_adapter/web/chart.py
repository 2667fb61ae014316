"""The summary's chart, drawn on the server as inline SVG: a stacked bar per bucket of the refunds created in it,
by what became of them. No script and no chart library: the page is the picture (and the screenshot)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

# Stacked from the bottom; every other state is counted as "in flight".
STACKS: Final = ("succeeded", "failed", "rejected", "in_flight")
FINAL_STATES: Final = frozenset(STACKS) - {"in_flight"}
WIDTH: Final = 720
HEIGHT: Final = 180
AXIS: Final = 28  # room under the bars for the first and last bucket's labels


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    start: datetime
    total: int
    segments: tuple[tuple[str, float, float, int], ...]  # (stack, y, height, count)


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_height: int
    peak: int
    bars: tuple[Bar, ...]


def stacked(counts: Mapping[str, int]) -> dict[str, int]:
    """A bucket's counts by state folded into STACKS."""
    folded = dict.fromkeys(STACKS, 0)
    for state, n in counts.items():
        folded[state if state in FINAL_STATES else "in_flight"] += n
    return folded


def bar_chart(series: Sequence[tuple[datetime, Mapping[str, int]]]) -> Chart:
    """Geometry of the bars, scaled so the busiest bucket reaches the top."""
    plot = HEIGHT - AXIS
    folded = [(start, stacked(counts)) for start, counts in series]
    peak = max((sum(counts.values()) for _, counts in folded), default=0)
    slot = WIDTH / max(len(folded), 1)
    bars = []
    for index, (start, counts) in enumerate(folded):
        y = float(plot)
        segments = []
        for stack in STACKS:
            height = plot * counts[stack] / peak if peak else 0.0
            y -= height
            if counts[stack]:
                segments.append((stack, round(y, 1), round(height, 1), counts[stack]))
        bars.append(Bar(round(index * slot + slot * 0.1, 1), round(slot * 0.8, 1), start, sum(counts.values()),
                        tuple(segments)))
    return Chart(WIDTH, HEIGHT, plot, peak, tuple(bars))
