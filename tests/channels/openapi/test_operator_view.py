"""The operator sees how each refund reached Alipay: its channel and, for OpenAPI, its out_request_no, in the
admin API, the dashboard and the CLI; one MAPI and one OpenAPI account refunding side by side in one app."""

from __future__ import annotations

import asyncio
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from click.testing import CliRunner, Result
from refund_adapter_generic.shop import SimulatedShop

from refund_adapter.channels.openapi.idempotency import out_request_no
from refund_adapter.cli import main
from refund_adapter.config import Config, parse_config
from refund_adapter.demo import DemoKeys
from refund_adapter.sandbox import TradeSeed, run_sandbox
from refund_adapter.testing import ADMIN_HEADERS, TEST_ADMIN_TOKEN, adapter_loop, local_config, wait_until

SECRET = "whsec_b3BlcmF0b3Itdmlldy10ZXN0LXNlY3JldA=="
TRADES = {"s-mapi": "2026120722001400011", "s-open": "2026120722001400012"}


def _raw(keys: DemoKeys, sandbox: Any, tmp_path: Path, port: int, shop_url: str) -> dict[str, Any]:
    shops = [{"id": shop, "secret": SECRET, "callback_url": shop_url + "/callback",
              "alipay_account": "modern" if shop == "s-open" else "main"} for shop in TRADES]
    raw = local_config(tmp_path / "refunds.db", port, partner="-", md5_key="-", gateway_url=sandbox.url,
                       platforms={"generic": {"shops": shops}})
    raw["alipay"] = {"accounts": keys.accounts("both", sandbox)}
    return raw


async def _cli(*args: str) -> Result:
    """The CLI in a thread of its own: it runs its own event loop, beside the running service's."""
    return await asyncio.to_thread(CliRunner().invoke, main, list(args))


async def _dashboard_page(base_url: str, path: str) -> str:
    """A dashboard page as a logged-in browser gets it (the dashboard takes a session, not a Bearer header)."""
    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=base_url)
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        async with browser.get(base_url + "/admin/login") as form:
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', await form.text())
        assert csrf is not None
        async with browser.post(base_url + "/admin/login", data={"csrf_token": csrf.group(1), "token": TEST_ADMIN_TOKEN,
                                                                 "next": path}) as resp:
            assert resp.status == 200 and resp.url.path == path
            return await resp.text()


async def test_each_refund_shows_its_channel_and_openapi_key(tmp_path: Path) -> None:
    keys = DemoKeys()
    seeds = [TradeSeed(trade_no, Decimal("100.00")) for trade_no in TRADES.values()]
    shop = SimulatedShop(SECRET)
    async with run_sandbox(keys.sandbox(time_scale=1000.0, trades=seeds)) as sandbox:
        written: dict[str, Any] = {}

        def config(port: int, _gateway_url: str, shop_url: str) -> Config:
            written.update(_raw(keys, sandbox, tmp_path, port, shop_url))
            return parse_config(written, env={})

        async with adapter_loop(config, sandbox=sandbox, shop=shop) as adapter:
            for shop_id, trade_no in TRADES.items():
                payload = {"refund_id": f"r-{shop_id}", "order_id": f"o-{shop_id}", "trade_no": trade_no,
                           "amount": "12.30", "currency": "CNY", "reason": "test"}
                assert await shop.send_refund(adapter.http, adapter.url, shop_id, payload) == 200

            async def reported() -> bool:
                return (await adapter.store.counts())["reports"].get("delivered") == 2

            await wait_until(reported, within=10, what="both refunds reported")
            async with adapter.http.get(adapter.url + "/-/refunds", headers=ADMIN_HEADERS) as resp:
                listed = {r["shop"]: r for r in await resp.json()}
            expected_key = out_request_no("generic", "s-open", "r-s-open")
            assert {shop_id: (r["state"], r["channel"], r["out_request_no"]) for shop_id, r in listed.items()} == {
                "s-mapi": ("succeeded", "mapi", None), "s-open": ("succeeded", "openapi", expected_key)}
            assert [call.refund.out_request_no for call in sandbox.state.openapi_calls] == [expected_key]
            assert len(sandbox.state.batches) == 1  # the MAPI refund's batch
            open_id = listed["s-open"]["id"]
            async with adapter.http.get(f"{adapter.url}/-/refunds/{open_id}", headers=ADMIN_HEADERS) as resp:
                assert (await resp.json())["out_request_no"] == expected_key
            page = await _dashboard_page(adapter.url, f"/admin/refunds/{open_id}")
            assert expected_key in page and "<code>openapi</code>" in page

            # A notify naming the OpenAPI refund's group is not believed, whatever it says.
            refund = await adapter.store.get_refund(open_id)
            assert refund is not None and refund.batch_id is not None
            forged = (f"notify_type=batch_refund_notify&batch_no={refund.batch_reference}&notify_id=x&success_num=1"
                      "&sign=x&sign_type=MD5")
            async with adapter.http.post(adapter.url + "/alipay/notify", data=forged.encode(),
                                         headers={"Content-Type": "application/x-www-form-urlencoded"}) as resp:
                assert await resp.text() == "fail"
            journal = await adapter.store.batch_journal(refund.batch_id)
            assert [e.detail["reason"] for e in journal if e.kind == "refund_refused"] == [
                f"batch {refund.batch_reference} is an OpenAPI group: no notify is about it"]

            path = tmp_path / "config.yaml"
            path.write_text(yaml.safe_dump(written), "utf-8")
            result = await _cli("refunds", "list", "--config", str(path), "--json")
            assert result.exit_code == 0, result.output
            rows = {row["shop"]: row for row in map(json.loads, result.output.splitlines())}
            assert (rows["s-open"]["channel"], rows["s-open"]["out_request_no"]) == ("openapi", expected_key)
            assert rows["s-mapi"]["channel"] == "mapi"
            shown = await _cli("refunds", "show", "--config", str(path), str(open_id))
            assert shown.exit_code == 0 and expected_key in shown.output
            table = await _cli("refunds", "list", "--config", str(path))
            assert "openapi" in table.output and "mapi" in table.output
