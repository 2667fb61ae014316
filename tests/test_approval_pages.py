"""The dashboard's Approve at Alipay over HTTP: a redirect to the signed link for a small batch, a form sent to the
gateway for one too large for a link, and a page policy that lets the browser follow either to the gateway only."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from refund_adapter.channels.mapi.batch_no import batch_nos
from refund_adapter.channels.signing import MD5Scheme, verify
from refund_adapter.config import parse_config
from refund_adapter.money import beijing_now
from refund_adapter.store import synthetic
from refund_adapter.web.app import create_app
from refund_adapter.web.keys import ENGINE
from refund_adapter.web.pages import MAX_REDIRECT_URL
from tests.test_access import browser_like, login, raw_config

GATEWAY = "http://127.0.0.1:9/gateway.do"
SCHEME = MD5Scheme("k" * 32)  # raw_config's account key


@pytest.fixture
async def client(tmp_path: Path, aiohttp_server: Any, aiohttp_client: Any) -> Any:
    raw = raw_config(tmp_path)
    raw["alipay"]["accounts"]["main"].update(channel="mapi_pwd", seller_email="refunds@example.com")
    client = await browser_like(create_app(parse_config(raw, env={}), run_engine=False), aiohttp_server,
                                aiohttp_client)
    await login(client)
    return client


async def waiting_batch(client: Any, refunds: int) -> int:
    store = client.server.app[ENGINE].store
    now = time.time()
    await synthetic.add_refunds(store, refunds, state="received", report_state="none", now=now)
    batch = await store.create_batch("main", 1000, batch_nos(beijing_now().date()), now, awaiting_approval=True)
    assert batch is not None
    return int(batch.id)


async def approve(client: Any, batch_id: int) -> Any:
    page = await (await client.get(f"/admin/batches/{batch_id}")).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf is not None and f'action="/admin/batches/{batch_id}/approve"' in page
    return await client.post(f"/admin/batches/{batch_id}/approve", data={"csrf_token": csrf.group(1)},
                             allow_redirects=False)


async def test_a_small_batch_is_a_redirect_to_its_signed_link(client: Any) -> None:
    batch_id = await waiting_batch(client, 2)
    resp = await approve(client, batch_id)
    assert resp.status == 303
    location = resp.headers["Location"]
    assert location.startswith(GATEWAY + "?") and len(location) <= MAX_REDIRECT_URL
    params = dict(parse_qsl(urlsplit(location).query))
    assert verify(params, SCHEME) and params["seller_email"] == "refunds@example.com"
    policy = (await client.get("/admin/approvals")).headers["Content-Security-Policy"]
    assert "form-action 'self' http://127.0.0.1:9;" in policy  # the gateway's origin, and nothing else


async def test_a_batch_too_large_for_a_link_is_a_form_to_the_gateway(client: Any) -> None:
    batch_id = await waiting_batch(client, 300)
    resp = await approve(client, batch_id)
    assert resp.status == 200
    page = await resp.text()
    action = f'<form method="post" action="{GATEWAY}?_input_charset=utf-8" accept-charset="utf-8">'
    assert action in page
    form = page.split(action, 1)[1].split("</form>", 1)[0]
    fields = {name: html.unescape(value)
              for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form)}
    assert fields["batch_num"] == "300" and verify(fields, SCHEME)
