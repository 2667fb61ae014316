"""One end-to-end run as an on-call engineer would observe it: the adapter with every kind of secret configured,
the Alipay sandbox and the shop behind recording proxies (so every `sign` that crossed the wire is known), a day's
mix of webhooks (new, repeated, conflicting, forged for each platform) and a forged notify; every log line the
process wrote at DEBUG, formatted as text and as JSON, and `/metrics` parsed after the last report."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from refund_adapter_generic.shop import SimulatedShop

from refund_adapter.config import parse_config
from refund_adapter.demo import PARTNER, SHOP_ID, Scenario
from refund_adapter.logs import TEXT_FORMAT, JsonFormatter, RequestIdFilter
from refund_adapter.sandbox import SandboxConfig, run_sandbox
from refund_adapter.testing import TEST_ADMIN_TOKEN, Samples, free_port, metric_samples, serve, wait_until
from refund_adapter.web.app import create_app

REFUNDS = 8  # refund 7 refunds a closed trade: it fails (demo.Scenario)


class LineCollector(logging.Handler):
    """Every record, formatted both ways the service can write it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.addFilter(RequestIdFilter())
        self._text, self._json = logging.Formatter(TEXT_FORMAT), JsonFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines += [self._text.format(record), self._json.format(record)]


@contextlib.contextmanager
def every_line_at_debug() -> Iterator[LineCollector]:
    root, collector = logging.getLogger(), LineCollector()
    level = root.level
    root.addHandler(collector)
    root.setLevel(logging.DEBUG)
    try:
        yield collector
    finally:
        root.removeHandler(collector)
        root.setLevel(level)


@dataclass
class Wire:
    """A proxy that forwards every request to `target` and keeps each `sign` parameter it saw (query or form)."""

    target: str = ""
    signs: set[str] = field(default_factory=set)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._forward)
        return app

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        for text in (request.query_string, body.decode("latin-1")):
            self.signs.update(value for key, value in parse_qsl(text, encoding="latin-1") if key == "sign")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with aiohttp.ClientSession() as http, http.request(
            request.method, self.target + request.path_qs, data=body, headers=headers
        ) as resp:
            return web.Response(status=resp.status, body=await resp.read(),
                                content_type=resp.content_type, charset=resp.charset)


def _failing_api() -> web.Application:
    """Every request answered 500 with a body naming what it was asked: a plugin that logs the failed request's
    URL (WooCommerce's `auth: query` puts its API keys there) or the answer would put the secret in the log."""

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500, text=f"failed {request.method} {request.path_qs}")

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", fail)
    return app


@dataclass
class Observed:
    samples: Samples
    lines: list[str]
    secrets: dict[str, str]  # what each secret is -> a part of it that must never be logged
    signs: set[str]  # every MD5 `sign` seen between the adapter and the sandbox
    batches: int  # as the sandbox received them


def _rsa_pems(folder: Path) -> tuple[Path, Path, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    (folder / "private.pem").write_text(private)
    (folder / "public.pem").write_text(public)
    return folder / "private.pem", folder / "public.pem", private.splitlines()[5]  # a line of the key's body


async def observed_run(tmp_path: Path) -> Observed:
    md5_key = secrets.token_hex(16)
    generic_secret = base64.b64encode(secrets.token_bytes(24)).decode()
    shopify_secret, shopify_token = secrets.token_hex(20), "shpat_" + secrets.token_hex(16)
    wc_secret, wc_key, wc_consumer_secret = secrets.token_hex(20), "ck_" + secrets.token_hex(20), "cs_" + \
        secrets.token_hex(20)
    admin_token = TEST_ADMIN_TOKEN  # what metric_samples sends
    private_pem, public_pem, private_line = _rsa_pems(tmp_path)
    scenarios = [Scenario(i) for i in range(REFUNDS)]
    shop = SimulatedShop("whsec_" + generic_secret)
    to_sandbox, to_adapter = Wire(), Wire()
    with every_line_at_debug() as log:
        async with (
            serve(_failing_api()) as closed,  # the other platforms' APIs and the RSA account's gateway: all fail
            run_sandbox(SandboxConfig(partner=PARTNER, md5_key=md5_key, time_scale=100.0,
                                      trades=[s.seed for s in scenarios])) as sandbox,
            serve(shop.app()) as shop_url,
            serve(to_sandbox.app()) as sandbox_wire,
            serve(to_adapter.app()) as adapter_wire,
            aiohttp.ClientSession() as http,
        ):
            to_sandbox.target = sandbox.base_url
            port = free_port()
            to_adapter.target = f"http://127.0.0.1:{port}"
            config = parse_config({
                "server": {"host": "127.0.0.1", "port": port, "public_url": adapter_wire, "admin_token": admin_token},
                "store": {"url": f"sqlite:///{tmp_path / 'refunds.db'}"},
                "alipay": {"accounts": {
                    "main": {"partner": PARTNER, "sign_type": "MD5", "md5_key": md5_key,
                             "gateway_url": sandbox_wire + sandbox.url.removeprefix(sandbox.base_url)},
                    "rsa": {"partner": "2088101122136242", "sign_type": "RSA", "private_key_file": str(private_pem),
                            "alipay_public_key_file": str(public_pem), "gateway_url": closed + "/gateway.do"},
                }},
                "batching": {"max_wait_seconds": 0.2},
                "reporter": {"base_delay_seconds": 0.1, "max_delay_seconds": 1},
                "reconciler": {"first_query_after_seconds": 600, "interval_seconds": 0.5},
                "platforms": {
                    "generic": {"shops": [{"id": SHOP_ID, "secret": "whsec_" + generic_secret,
                                           "callback_url": shop_url + "/callback", "alipay_account": "main"}]},
                    "shopify": {"shops": [{"domain": "observed.myshopify.com", "client_secrets": [shopify_secret],
                                           "access_token": shopify_token, "alipay_account": "main",
                                           "api_base_url": closed, "poll_interval_seconds": 0.5}]},
                    "woocommerce": {"shops": [{"url": closed, "webhook_secret": wc_secret, "consumer_key": wc_key,
                                               "consumer_secret": wc_consumer_secret, "alipay_gateway_ids": ["alipay"],
                                               "alipay_account": "rsa", "auth": "query",
                                               "poll_interval_seconds": 0.5}]},
                },
            }, env={})
            app = create_app(config)
            async with serve(app, port=port) as url:
                for scenario in scenarios:
                    assert await shop.send_refund(http, url, SHOP_ID, scenario.payload()) == 200
                assert await shop.send_refund(http, url, SHOP_ID, scenarios[0].payload()) == 200  # duplicate
                changed = scenarios[1].payload() | {"amount": "1.00"}
                assert await shop.send_refund(http, url, SHOP_ID, changed) == 409  # conflict
                await _forged_webhooks(http, url, closed)
                async with http.post(url + "/alipay/notify", data={"batch_no": "20261207000001", "sign": "x"}) as r:
                    assert await r.text() == "fail"  # unknown batch

                async def all_reported() -> bool:
                    samples = await metric_samples(http, url)
                    delivered = samples.get("refund_adapter_report_attempts_total", {})
                    return delivered.get(frozenset({("platform", "generic"), ("outcome", "delivered")})) == REFUNDS

                await wait_until(all_reported, within=60, what="every refund reported")
                samples = await metric_samples(http, url)
                async with http.get(sandbox.base_url + "/sandbox/batches") as resp:
                    batches = len(await resp.json())
    return Observed(
        samples=samples,
        lines=log.lines,
        secrets={"md5 key": md5_key, "generic webhook secret": generic_secret, "shopify client secret": shopify_secret,
                 "shopify access token": shopify_token, "woocommerce webhook secret": wc_secret,
                 "woocommerce consumer key": wc_key, "woocommerce consumer secret": wc_consumer_secret,
                 "admin token": admin_token, "RSA private key": private_line},
        signs=to_sandbox.signs | to_adapter.signs,
        batches=batches,
    )


async def _forged_webhooks(http: aiohttp.ClientSession, url: str, woocommerce_url: str) -> None:
    """One webhook per platform signed with the wrong secret, and one for a platform no plugin serves."""
    body = json.dumps({"refund_id": "forged", "amount": "1.00"}).encode()
    forged = {
        "generic": {"webhook-id": "msg-forged", "webhook-timestamp": "0", "webhook-signature": "v1,Zm9yZ2Vk"},
        "shopify": {"X-Shopify-Hmac-Sha256": "Zm9yZ2Vk", "X-Shopify-Shop-Domain": "observed.myshopify.com",
                    "X-Shopify-Topic": "refunds/create", "X-Shopify-Webhook-Id": "forged"},
        "woocommerce": {"X-WC-Webhook-Signature": "Zm9yZ2Vk", "X-WC-Webhook-Source": woocommerce_url + "/",
                        "X-WC-Webhook-Topic": "order.updated"},
        "nosuch": {},
    }
    for platform, headers in forged.items():
        path = f"/webhooks/{platform}" + (f"/{SHOP_ID}" if platform == "generic" else "")
        async with http.post(url + path, data=body, headers=headers | {"content-type": "application/json"}) as resp:
            assert 400 <= resp.status < 500, (platform, resp.status, await resp.text())
