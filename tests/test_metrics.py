"""`GET /metrics`: the gauges read from the store and every counter declared in refund_adapter/metrics.py, each
application with counters of its own."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from refund_adapter.config import parse_config
from refund_adapter.metrics import Metrics, from_snapshot, merged, snapshot
from refund_adapter.testing import free_port, local_config, metric_samples, metric_value, serve
from refund_adapter.web.app import create_app
from refund_adapter.web.keys import ENGINE


async def test_every_declared_counter_is_served_beside_the_gauges_and_counts_per_application(tmp_path: Path) -> None:
    declared = {family.name for family in Metrics().registry.collect()}
    assert {"refund_adapter_refund_conflicts", "refund_adapter_result_anomalies"} <= declared
    ports = [free_port(), free_port()]
    apps = [create_app(parse_config(local_config(tmp_path / f"{port}.db", port, partner="2088101122136241",
                                                 md5_key="k" * 32, gateway_url="http://127.0.0.1:9/gateway.do",
                                                 platforms={}), env={}), run_engine=False)
            for port in ports]
    async with serve(apps[0], port=ports[0]) as first, serve(apps[1], port=ports[1]) as second, \
            aiohttp.ClientSession() as http:
        served = await metric_samples(http, first)
        assert declared <= served.keys()
        assert served["refund_adapter_refunds_in_review"] == {frozenset(): 0.0}
        assert {"refund_adapter_refunds", "refund_adapter_reports", "refund_adapter_batches"} <= served.keys()

        apps[0][ENGINE].metrics.refund_conflicts.labels(platform="generic").inc()
        apps[0][ENGINE].metrics.refund_conflicts.labels(platform="generic").inc()
        apps[0][ENGINE].metrics.result_anomalies.labels(source="query").inc()
        name = "refund_adapter_refund_conflicts_total"
        assert await metric_value(http, first, name, platform="generic") == 2
        assert await metric_value(http, first, "refund_adapter_result_anomalies_total", source="query") == 1
        assert await metric_value(http, second, name, platform="generic") == 0  # another app: its own counts


def test_the_engine_process_counters_merge_with_the_web_process_ones() -> None:
    """What the web process serves when the engine counts in a process of its own: one family per name, samples of
    the same labels added up, the rest side by side; a round trip through the engine's JSON report loses nothing."""
    web, engine = Metrics(), Metrics()
    web.result_anomalies.labels(source="refund").inc()
    engine.result_anomalies.labels(source="query").inc(2)
    web.gateway_latency.labels(service="notify_verify").observe(0.02)
    engine.gateway_latency.labels(service="notify_verify").observe(0.2)
    engine.gateway_latency.labels(service="submit").observe(0.03)
    families = {f.name: f for f in merged(web.registry.collect(), from_snapshot(snapshot(engine.registry)))}
    assert len(families) == len(list(web.registry.collect()))

    def value(family: str, sample: str, **labels: str) -> float:
        (found,) = [s.value for s in families[family].samples if s.name == sample and s.labels == labels]
        return found

    assert value("refund_adapter_result_anomalies", "refund_adapter_result_anomalies_total", source="refund") == 1
    assert value("refund_adapter_result_anomalies", "refund_adapter_result_anomalies_total", source="query") == 2
    latency = "refund_adapter_gateway_request_duration_seconds"
    assert value(latency, latency + "_count", service="notify_verify") == 2
    assert value(latency, latency + "_bucket", service="notify_verify", le="0.025") == 1
    assert value(latency, latency + "_count", service="submit") == 1
    (web_created,) = [s.value for f in web.registry.collect() if f.name == latency for s in f.samples
                      if s.name.endswith("_created") and s.labels == {"service": "notify_verify"}]
    assert value(latency, latency + "_created", service="notify_verify") == web_created  # a time: not added up
