"""The application's counters: events that leave no row to count later (a refused conflict, a contradicting
result), so the store's gauges cannot show them.

One `Metrics` per application, in its own `CollectorRegistry` and reached as `EngineContext.metrics` (never a
module global: two apps in one process, as in the tests, must not share counts). `GET /metrics` serves them
beside the gauges read from the store.

To add a counter: declare it in `Metrics.__init__` below (name without `_total`, help text saying what one
increment means, labels whose values are few and known in advance) and increment it where the event happens,
`ctx.metrics.<attribute>.labels(...).inc()`. tests/test_metrics.py checks every declared counter is served.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class Metrics:
    """The counters of one application."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.refund_conflicts = self._counter(
            "refund_adapter_refund_conflicts",
            "Redeliveries of a known refund with other content (amount, trade...), refused with a 409",
            ["platform"],
        )
        self.result_anomalies = self._counter(
            "refund_adapter_result_anomalies",
            "Results from Alipay contradicting what is recorded for a refund (not applied; refund flagged for"
            " review), by where they came from: refund (notify) or query",
            ["source"],
        )

    def _counter(self, name: str, documentation: str, labels: list[str]) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)
