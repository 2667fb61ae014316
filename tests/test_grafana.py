"""docs/grafana/refund-adapter.json charts exactly what `/metrics` serves: every metric name it queries is served,
and every family served is on a panel (a metric nobody can see is not worth its cost, nor is a panel of a name
that was renamed)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from refund_adapter.config import parse_config
from refund_adapter.testing import ADMIN_HEADERS, free_port, local_config, serve
from refund_adapter.web.app import create_app

DASHBOARD = Path(__file__).resolve().parent.parent / "docs" / "grafana" / "refund-adapter.json"
SERVED_AS = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def _queries(node: object) -> list[str]:
    """Every PromQL text of the dashboard: panel targets and template variable queries."""
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k in ("expr", "query") and isinstance(v, str)]
        return found + [q for v in node.values() for q in _queries(v)]
    if isinstance(node, list):
        return [q for v in node for q in _queries(v)]
    return []


async def _metrics_text(tmp_path: Path) -> str:
    port = free_port()
    config = parse_config(local_config(tmp_path / "r.db", port, partner="2088101122136241", md5_key="k" * 32,
                                       gateway_url="http://127.0.0.1:9/gateway.do", platforms={}), env={})
    async with serve(create_app(config, run_engine=False), port=port) as url, aiohttp.ClientSession() as http, \
            http.get(url + "/metrics", headers=ADMIN_HEADERS) as resp:
        assert resp.status == 200
        return await resp.text()


async def test_the_dashboard_queries_exactly_the_served_metrics(tmp_path: Path) -> None:
    text = await _metrics_text(tmp_path)
    types = Counter(line.split()[2] for line in text.splitlines() if line.startswith("# TYPE "))
    assert [name for name, n in types.items() if n > 1] == []  # two families of one name: Prometheus refuses the scrape
    families = list(text_string_to_metric_families(text))
    served = {family.name + suffix for family in families for suffix in SERVED_AS[family.type]}
    referenced = {name for query in _queries(json.loads(DASHBOARD.read_text())) for name in
                  re.findall(r"\brefund_adapter_[a-z_]+", query)}
    assert referenced - served == set(), "the dashboard queries names /metrics does not serve"
    unseen = {family.name for family in families
              if not any(family.name + suffix in referenced for suffix in SERVED_AS[family.type])}
    assert unseen == set(), "families served but on no panel of the dashboard"
    assert len(families) >= 15
