"""A Shopify refund paid through an OpenAPI account (`alipay.trade.refund`), on SQLite and PostgreSQL: from the
webhook to the tag and metafield on the order, paid once at the sandbox whatever Shopify resends."""

from __future__ import annotations

import json
from decimal import Decimal

from refund_adapter.channels.openapi.idempotency import out_request_no
from refund_adapter.config import Config, parse_config
from refund_adapter.demo import DemoKeys
from refund_adapter.sandbox import TradeSeed, run_sandbox
from refund_adapter.testing import adapter_loop, local_config, wait_until

from .conftest import section
from .fake_shopify import DOMAIN, TRADE_NO, FakeShopify, webhook_headers

DEADLINE = 10.0


async def test_a_refund_paid_through_openapi_ends_as_a_tag_and_a_metafield(
    fake: FakeShopify, store_url: str, tmp_path
) -> None:
    keys = DemoKeys()
    sandbox_config = keys.sandbox(time_scale=1000.0, trades=[TradeSeed(TRADE_NO, Decimal("100.00"))])
    async with run_sandbox(sandbox_config) as sandbox:

        def config(port: int, gateway_url: str, shop_url: str) -> Config:
            raw = local_config(tmp_path / "unused.db", port, partner="2088101122136241", md5_key="-",
                               gateway_url=gateway_url, platforms={"shopify": section(shop_url)},
                               store={"url": store_url}, platform_poll={"interval_seconds": 3600})
            raw["alipay"] = {"accounts": {"main": keys.accounts("openapi", sandbox)["modern"]}}
            return parse_config(raw, env={})

        async with adapter_loop(config, sandbox=sandbox, shop=fake.url) as adapter:
            payload = fake.add_refund(fake.add_order(450789469), 929361464, "30.00")
            raw = json.dumps(payload).encode()
            for _ in range(2):  # a retry from Shopify changes nothing
                async with adapter.http.post(adapter.url + "/webhooks/shopify", data=raw,
                                             headers=webhook_headers(raw)) as resp:
                    assert resp.status == 200
            order = "gid://shopify/Order/450789469"

            async def written_back() -> bool:
                return bool(fake.metafields) and (await adapter.store.counts())["reports"].get("delivered") == 1

            await wait_until(written_back, within=DEADLINE, what="the result on the order")
            assert fake.tags == {order: ["alipay-refund:succeeded"]}
            key = f"refund-929361464-{payload['transactions'][0]['id']}"
            value = fake.metafields[(order, "alipay_refund", key)]
            assert (value["status"], value["code"], value["amount"]) == ("succeeded", "SUCCESS", "30.00")
            refund = (await adapter.store.list_refunds(limit=1))[0]
            calls = [call.to_json() for call in sandbox.state.openapi_calls]
            assert [(c["trade_no"], c["amount"], c["out_request_no"]) for c in calls] == [
                (TRADE_NO, "30.00", out_request_no("shopify", DOMAIN, refund.request.platform_refund_id))]
            assert sandbox.state.ledger.trades[TRADE_NO].refund_count == 1
            assert sandbox.state.batches == {}  # nothing went through the MAPI face
