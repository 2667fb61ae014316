"""`GET /metrics`: the gauges read from the store and every counter declared in refund_adapter/metrics.py, each
application with counters of its own."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from refund_adapter.config import parse_config
from refund_adapter.metrics import Metrics
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
