"""`channel: mapi_pwd` with the engine in a process of its own (the default, `engine.own_process`): the batch waits
for approval, the web process makes the link (admin API), the operator confirms it at the sandbox, and the engine
process settles and reports the refund. The web process issues the approval in the store (its next query time);
the engine process's query loop, and the notify the web process records, take it from there."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import aiohttp
import yaml
from refund_adapter_generic.shop import SimulatedShop

from refund_adapter.chaos import ServeProcess
from refund_adapter.sandbox import SandboxConfig, TradeSeed, run_sandbox
from refund_adapter.testing import ADMIN_HEADERS, free_port, serve, wait_until

from .test_engine_process import MD5_KEY, PARTNER, SECRET, payload, write_config

PASSWORD = "654321"


async def test_a_batch_approved_from_the_web_process_is_settled_by_the_engine_process(tmp_path: Path) -> None:
    trade = TradeSeed(trade_no=payload(0)["trade_no"], amount=Decimal("10.00"))
    shop = SimulatedShop(SECRET)
    async with (run_sandbox(SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, time_scale=1000.0, trades=[trade],
                                          payment_password=PASSWORD)) as sandbox,
                serve(shop.app()) as shop_url):
        port = free_port()
        path = write_config(tmp_path, port, sandbox.url, shop_url,
                            {"channel": "mapi_pwd", "seller_user_id": PARTNER},
                            alipay_query={"first_query_after_seconds": 0.2, "schedule_seconds": [0.2],
                                          "interval_seconds": 0.2})
        assert "engine" not in yaml.safe_load(path.read_text("utf-8"))  # own_process: the default
        process = ServeProcess(path, port)
        await process.start()
        try:
            async with aiohttp.ClientSession() as session:
                assert await shop.send_refund(session, process.url, "s1", payload(0)) == 200
                waiting: list[dict[str, object]] = []

                async def formed() -> bool:
                    async with session.get(process.url + "/-/batches?state=awaiting_approval",
                                           headers=ADMIN_HEADERS) as resp:
                        waiting[:] = await resp.json()
                    return bool(waiting)

                await wait_until(formed, within=30, what="a batch awaiting approval")
                async with session.post(f"{process.url}/-/batches/{waiting[0]['id']}/approve-url",
                                        headers=ADMIN_HEADERS) as resp:
                    assert resp.status == 200, await resp.text()
                    link = await resp.json()
                async with session.get(link["url"]) as resp:
                    assert resp.status == 200
                    page = await resp.text()
                token = re.search(r'name="token" value="([^"]+)"', page)
                assert token is not None, page
                async with session.post(sandbox.base_url + "/pwd/confirm",
                                        data={"token": token.group(1), "password": PASSWORD}) as resp:
                    assert "SUCCESS" in await resp.text()

                async def reported() -> bool:
                    return len(shop.results) == 1

                await wait_until(reported, within=30, what="the approved refund reported")
                async with session.get(f"{process.url}/-/batches/{waiting[0]['id']}", headers=ADMIN_HEADERS) as resp:
                    assert (await resp.json())["state"] == "completed"
        finally:
            await process.kill()
