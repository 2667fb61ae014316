"""The application's counters and latencies: events that leave no row to count later (a webhook answered, a
notify refused, a report attempt, a gateway call's duration), so the store's gauges cannot show them.

One `Metrics` per application, in its own `CollectorRegistry` and reached as `EngineContext.metrics` (never a
module global: two apps in one process, as in the tests, must not share counts). `GET /metrics` serves them
beside the gauges read from the store (web/admin.py). docs/operations.md lists them all with their meaning, and
docs/grafana/refund-adapter.json charts them (tests/test_grafana.py keeps both in step with what is served).

To add a counter: declare it in `Metrics.__init__` below (name without `_total`, help text saying what one
increment means, labels whose values are few and known in advance: a label value taken from a request would let
any sender grow the registry without bound) and increment it where the event happens,
`ctx.metrics.<attribute>.labels(...).inc()`. tests/test_metrics.py checks every declared metric is served.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric

# Alipay's gateway answers within tens of milliseconds when well; the HTTP client gives up after 15 s by default.
GATEWAY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)
UNKNOWN_PLATFORM = "unknown"  # the label of a webhook for a platform no plugin serves (the URL's name is not used)


class Metrics:
    """The counters and histograms of one application."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.webhooks = self._counter(
            "refund_adapter_webhooks",
            "Platform webhooks answered, by outcome: accepted (a new refund stored), duplicate (every refund already"
            " stored alike), conflict (409), ignored (nothing to refund), refused (see webhook_refusals),"
            " unavailable (the store failed: 503), error (a plugin broke its contract: 500)",
            ["platform", "outcome"],
        )
        self._webhook_children: dict[tuple[str, str], Counter] = {}
        self.webhook_refusals = self._counter(
            "refund_adapter_webhook_refusals",
            "Platform webhooks refused (4xx), by the problem type answered (bad-signature, invalid-amount, ...)",
            ["platform", "type"],
        )
        self.refund_conflicts = self._counter(
            "refund_adapter_refund_conflicts",
            "Redeliveries of a known refund with other content (amount, trade...), refused with a 409",
            ["platform"],
        )
        self.batches_submitted = self._counter(
            "refund_adapter_batches_submitted",
            "Batch submits to Alipay, by what the answer proved: accepted, processing, duplicate (the batch_no was"
            " taken earlier), rejected, detail_refused, unknown (no usable answer), error (the submit raised); for an"
            " OpenAPI account: settled (every refund's verdict known), unknown, rate_limited",
            ["account", "outcome"],
        )
        self.gateway_latency = Histogram(
            "refund_adapter_gateway_request_duration_seconds",
            "Time from sending a request to Alipay's gateway to its answer (or its failure), by service: submit,"
            " query, notify_verify (MAPI); refund, refund_query (OpenAPI)",
            ["service"],
            buckets=GATEWAY_BUCKETS,
            registry=self.registry,
        )
        self.notifies = self._counter(
            "refund_adapter_notifies",
            "Alipay notifies received, by kind (refund, dback) and outcome: accepted, duplicate (already recorded),"
            " anomaly (a result contradicting the record: flagged for review), forged (bad signature), unverified"
            " (notify_verify did not confirm it, or did not answer), unknown_batch, unknown_account, malformed,"
            " mismatch (signed, but not about the batch we sent), unavailable (the store failed: Alipay resends)",
            ["kind", "outcome"],
        )
        self.result_anomalies = self._counter(
            "refund_adapter_result_anomalies",
            "Results from Alipay contradicting what is recorded for a refund (not applied; refund flagged for"
            " review), by where they came from: refund (notify) or query",
            ["source"],
        )
        self.report_attempts = self._counter(
            "refund_adapter_report_attempts",
            "Attempts to report a final result to its platform, by outcome: delivered, retry (failed, tried again"
            " later), dead (given up: a dead letter)",
            ["platform", "outcome"],
        )

    def webhook_answered(self, platform: str, outcome: str) -> None:
        """Count one webhook answer. The ingest path's counter keeps its labelled children: `labels()` validates
        and locks on every call (2 µs, measured), a kept child's `inc()` costs a quarter of that."""
        child = self._webhook_children.get((platform, outcome))
        if child is None:
            child = self._webhook_children[(platform, outcome)] = self.webhooks.labels(platform, outcome)
        child.inc()

    def _counter(self, name: str, documentation: str, labels: list[str]) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)


def snapshot(registry: CollectorRegistry) -> list[list[Any]]:
    """The registry's families as JSON-ready lists: what the engine's own process sends the web process's
    /metrics (engine/remote.py)."""
    return [[family.name, family.documentation, family.type, family.unit,
             [[sample.name, sample.labels, sample.value] for sample in family.samples]]
            for family in registry.collect()]


def from_snapshot(data: list[list[Any]]) -> list[Metric]:
    families = []
    for name, documentation, type_, unit, samples in data:
        family = Metric(name, documentation, type_, unit)
        for sample_name, labels, value in samples:
            family.add_sample(sample_name, labels, value)
        families.append(family)
    return families


def merged(*sources: Iterable[Metric]) -> list[Metric]:
    """Families of several processes as one: samples of the same name and labels are added up (a counter counted
    in both processes is their sum), but a `_created` time is the first one's."""
    families: dict[str, tuple[Metric, dict[tuple[str, tuple[tuple[str, str], ...]], float]]] = {}
    for source in sources:
        for family in source:
            target, values = families.setdefault(
                family.name, (Metric(family.name, family.documentation, family.type, family.unit), {}))
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in values:
                    values[key] = sample.value
                elif not sample.name.endswith("_created"):
                    values[key] += sample.value
    for target, values in families.values():
        for (name, labels), value in values.items():
            target.add_sample(name, dict(labels), value)
    return [target for target, _ in families.values()]
