"""The adapter's `GET /metrics`, parsed, for tests that assert on counters."""

from __future__ import annotations

import aiohttp

from .config import ADMIN_HEADERS

Samples = dict[str, dict[frozenset[tuple[str, str]], float]]  # sample (or family) name -> labels -> value


async def metric_samples(http: aiohttp.ClientSession, base_url: str) -> Samples:
    """`GET /metrics` of the adapter at `base_url`, parsed by prometheus-client's parser. Every family is there
    under its own name too, so a labelled counter never incremented (served without samples) is seen declared."""
    from prometheus_client.parser import text_string_to_metric_families

    async with http.get(base_url + "/metrics", headers=ADMIN_HEADERS) as resp:
        assert resp.status == 200, await resp.text()
        text = await resp.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        samples.setdefault(family.name, {})
        for sample in family.samples:
            samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return samples


async def metric_value(http: aiohttp.ClientSession, base_url: str, name: str, **labels: str) -> float:
    """One sample of `GET /metrics`; 0 for a labelled counter whose labels were never incremented."""
    return (await metric_samples(http, base_url)).get(name, {}).get(frozenset(labels.items()), 0.0)
