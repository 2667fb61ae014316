"""Password-confirmed batches (`channel: mapi_pwd`) over the whole loop: a refund's batch waits for the operator,
the approval link the service makes is signed as Alipay's peers sign, the sandbox's password page confirms it, and
the notify (or the query of an opened link) settles it. Never paid twice: two links of one batch share its
batch_no; a link of one Beijing day is refused the next, and the batch gets a fresh one; an account moved to
`mapi` sends the waiting batch under its own batch_no."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from refund_adapter_generic.shop import SimulatedShop

from refund_adapter.channels.mapi.batch_no import batch_no_date
from refund_adapter.config import Config, parse_config
from refund_adapter.models import Batch, BatchState, RefundState
from refund_adapter.money import BEIJING, beijing_now
from refund_adapter.sandbox import RunningSandbox, SandboxConfig, TradeSeed, run_sandbox
from refund_adapter.store import RefundStore
from refund_adapter.testing import ADMIN_HEADERS, adapter_loop, local_config, serve, wait_until
from refund_adapter.web.keys import ENGINE
from tests.sandbox.kit import rsa_keys
from tests.test_admin import DEADLINE, MD5_KEY, PARTNER, SECRET, SHOP, Admin

TRADE = "2026120722000000000001"
OTHER_TRADE = "2026120722000000000002"
PASSWORD = "654321"
FAST_QUERIES = {"first_query_after_seconds": 0.2, "schedule_seconds": [0.2], "interval_seconds": 0.2}


class Clock:
    """The engine's and the sandbox's "now": real time moved by an offset, so a test can stand at Beijing
    midnight (webhooks and reports are signed with the real time, as the platforms check)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def stand_at(self, moment: datetime) -> None:
        self.offset = moment.timestamp() - time.time()


def pwd_config(tmp_path: Path, channel: str = "mapi_pwd", sections: Mapping[str, Any] | None = None, **account: Any
               ) -> Callable[[int, str, str], Config]:
    def config(port: int, gateway_url: str, shop_url: str) -> Config:
        shop = {"id": SHOP, "secret": SECRET, "callback_url": shop_url + "/callback", "alipay_account": "main"}
        raw = local_config(tmp_path / "refunds.db", port, partner=PARTNER, md5_key=MD5_KEY, gateway_url=gateway_url,
                           platforms={"generic": {"shops": [shop]}}, alipay_query=FAST_QUERIES, **(sections or {}))
        raw["alipay"]["accounts"]["main"].update(channel=channel, seller_user_id=PARTNER, **account)
        return parse_config(raw, env={})

    return config


def sandbox_config(clock: Clock, **settings: Any) -> SandboxConfig:
    trades = [TradeSeed(TRADE, Decimal("100.00")), TradeSeed(OTHER_TRADE, Decimal("100.00"))]
    return SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, time_scale=100_000.0, trades=trades, clock=clock,
                         payment_password=PASSWORD, **settings)


@dataclass
class Operator:
    """The adapter (and its operator's admin API), the sandbox and the shop of one test."""

    admin: Admin
    sandbox: RunningSandbox

    @property
    def store(self) -> RefundStore:
        return self.admin.store

    async def waiting_batch(self) -> Batch:
        async def formed() -> bool:
            return bool(await self.store.batch_overviews(state=BatchState.AWAITING_APPROVAL))

        await wait_until(formed, within=DEADLINE, what="a batch awaiting approval")
        (overview,) = await self.store.batch_overviews(state=BatchState.AWAITING_APPROVAL)
        batch = await self.store.get_batch(overview.batch.id)
        assert batch is not None
        return batch

    async def approve_url(self, batch_id: int) -> tuple[int, dict[str, Any]]:
        async with self.admin.http.post(f"{self.admin.url}/-/batches/{batch_id}/approve-url",
                                        headers=ADMIN_HEADERS) as resp:
            return resp.status, await resp.json(content_type=None)

    async def open_link(self, url: str) -> str:
        async with self.admin.http.get(url) as resp:
            assert resp.status == 200
            return await resp.text()

    async def confirm(self, page: str, password: str = PASSWORD) -> str:
        token = re.search(r'name="token" value="([^"]+)"', page)
        assert token is not None, page
        async with self.admin.http.post(self.sandbox.base_url + "/pwd/confirm",
                                        data={"token": token.group(1), "password": password}) as resp:
            return await resp.text()

    async def refund_settled(self, refund_id: str) -> RefundState:
        async def final() -> bool:
            refund = await self.store.find_refund("generic", SHOP, refund_id)
            return refund is not None and refund.state.is_final

        await wait_until(final, within=DEADLINE, what=f"refund {refund_id} settled")
        refund = await self.store.find_refund("generic", SHOP, refund_id)
        assert refund is not None
        return refund.state


def refused_with(page: str) -> str | None:
    found = re.search(r'id="error"><code>([A-Z_]+)</code>', page)
    return found.group(1) if found else None


@asynccontextmanager
async def running(tmp_path: Path, clock: Clock, sandbox: SandboxConfig | RunningSandbox, *, channel: str = "mapi_pwd",
                  shop: SimulatedShop | None = None, **sections: Any) -> AsyncIterator[Operator]:
    shop = shop or SimulatedShop(SECRET)
    async with adapter_loop(pwd_config(tmp_path, channel, sections), sandbox=sandbox, shop=shop,
                            request_timeout=DEADLINE, clock=clock) as loop:
        yield Operator(Admin(loop.url, loop.store, shop, loop.http, loop.app[ENGINE]), loop.sandbox)


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_a_batch_waits_for_approval_and_two_links_never_pay_twice(tmp_path: Path, clock: Clock) -> None:
    shop = SimulatedShop(SECRET)
    async with running(tmp_path, clock, sandbox_config(clock), shop=shop) as op:
        await op.admin.refund("r-1", TRADE, "10.50")
        batch = await op.waiting_batch()
        assert op.sandbox.state.batches == {}  # nothing was sent: the batch waits for the operator
        (refund,) = await op.store.list_refunds(batch_id=batch.id)
        assert refund.state is RefundState.BATCHED

        (first_status, first), (second_status, second) = await op.approve_url(batch.id), await op.approve_url(batch.id)
        assert first_status == second_status == 200
        assert first["batch_no"] == second["batch_no"] == batch.batch_no  # never a new batch_no for the batch
        first_page, second_page = await op.open_link(first["url"]), await op.open_link(second["url"])
        assert batch.batch_no in first_page and "10.50" in first_page

        assert refused_with(await op.confirm(first_page, "000000")) == "PASSWORD_ERROR"
        assert 'id="result"' in await op.confirm(first_page)
        assert refused_with(await op.confirm(second_page)) == "DUPLICATE_BATCH_NO"  # the second link pays nothing

        assert await op.refund_settled("r-1") is RefundState.SUCCEEDED
        assert op.sandbox.state.ledger.trades[TRADE].refunded == Decimal("10.50")  # paid once

        async def told() -> bool:
            return "r-1" in shop.results

        await wait_until(told, within=DEADLINE, what="the shop told")
        assert shop.results["r-1"]["status"] == "succeeded" and shop.results["r-1"]["batch_no"] == batch.batch_no
        assert (await op.approve_url(batch.id))[0] == 409  # a settled batch gets no link


async def test_an_opened_link_whose_notify_is_lost_is_settled_by_the_query(tmp_path: Path, clock: Clock) -> None:
    async with running(tmp_path, clock, sandbox_config(clock, faults={"drop_notifies": True})) as op:
        await op.admin.refund("r-1", TRADE, "3.00")
        batch = await op.waiting_batch()
        _, approval = await op.approve_url(batch.id)
        assert 'id="result"' in await op.confirm(await op.open_link(approval["url"]))
        assert await op.refund_settled("r-1") is RefundState.SUCCEEDED
        settled = await op.store.get_batch(batch.id)
        assert settled is not None and settled.state is BatchState.COMPLETED and settled.notified_at is None
        assert op.sandbox.state.ledger.trades[TRADE].refunded == Decimal("3.00")


async def test_a_link_of_one_beijing_day_is_refused_the_next_and_a_fresh_one_works(
    tmp_path: Path, clock: Clock
) -> None:
    late = beijing_now().replace(hour=23, minute=50, second=0, microsecond=0)
    clock.stand_at(late)
    async with running(tmp_path, clock, sandbox_config(clock)) as op:
        await op.admin.refund("r-1", TRADE, "7.00")
        batch = await op.waiting_batch()
        assert batch_no_date(batch.batch_no) == late.date()
        _, yesterdays = await op.approve_url(batch.id)
        page_opened_before_midnight = await op.open_link(yesterdays["url"])

        clock.stand_at(late + timedelta(minutes=20))  # 00:10 the next day, Beijing time
        assert refused_with(await op.confirm(page_opened_before_midnight)) == "BATCH_NO_FORMAT_ERROR"
        assert refused_with(await op.open_link(yesterdays["url"])) == "BATCH_NO_FORMAT_ERROR"
        status, checking = await op.approve_url(batch.id)
        assert (status, checking["type"].rsplit(":", 1)[-1]) == (409, "approval-being-checked")

        async def fresh_link() -> bool:  # once the query proved yesterday's link unused
            return (await op.approve_url(batch.id))[0] == 200

        await wait_until(fresh_link, within=DEADLINE, what="a fresh link")
        _, todays = await op.approve_url(batch.id)
        assert batch_no_date(todays["batch_no"]) == late.date() + timedelta(days=1)
        assert todays["batch_no"][8:] == batch.batch_no[8:]  # the batch's own serial, on today's date
        assert datetime.fromisoformat(todays["expires_at"]) == datetime.combine(
            late.date() + timedelta(days=2), datetime.min.time(), BEIJING)
        assert 'id="result"' in await op.confirm(await op.open_link(todays["url"]))
        assert await op.refund_settled("r-1") is RefundState.SUCCEEDED
        assert op.sandbox.state.ledger.trades[TRADE].refunded == Decimal("7.00")
        assert list(op.sandbox.state.batches) == [todays["batch_no"]]


async def test_an_account_moved_to_mapi_sends_the_waiting_batch_under_its_own_batch_no(
    tmp_path: Path, clock: Clock
) -> None:
    async with run_sandbox(sandbox_config(clock)) as sandbox:
        async with running(tmp_path, clock, sandbox) as op:
            await op.admin.refund("r-1", TRADE, "5.00")
            await op.admin.refund("r-2", OTHER_TRADE, "6.00")
            batch = await op.waiting_batch()
        assert sandbox.state.batches == {}
        async with running(tmp_path, clock, sandbox, channel="mapi") as op:  # the nopwd contract was signed
            assert await op.refund_settled("r-1") is RefundState.SUCCEEDED
            assert await op.refund_settled("r-2") is RefundState.SUCCEEDED
            assert list(sandbox.state.batches) == [batch.batch_no]
            assert sandbox.state.batches[batch.batch_no].refund_date  # sent as a nopwd batch, under its batch_no
            sent = await op.store.get_batch(batch.id)
            assert sent is not None and sent.state is BatchState.COMPLETED and sent.batch_no == batch.batch_no


async def test_an_approved_batch_moved_to_mapi_before_its_notify_is_not_paid_again(
    tmp_path: Path, clock: Clock
) -> None:
    """Confirmed at Alipay, its notify lost, the account moved before the query: the nopwd send of the same
    batch_no is DUPLICATE_BATCH_NO, and the query settles the batch."""
    async with run_sandbox(sandbox_config(clock, faults={"drop_notifies": True})) as sandbox:
        async with running(tmp_path, clock, sandbox) as op:
            await op.admin.refund("r-1", TRADE, "5.00")
            batch = await op.waiting_batch()
            _, approval = await op.approve_url(batch.id)
        async with aiohttp.ClientSession() as browser:  # the operator confirms once the old service is stopped
            async with browser.get(approval["url"]) as page:
                token = re.search(r'name="token" value="([^"]+)"', await page.text())
            assert token is not None
            async with browser.post(sandbox.base_url + "/pwd/confirm",
                                    data={"token": token.group(1), "password": PASSWORD}) as confirmed:
                assert 'id="result"' in await confirmed.text()
        async with running(tmp_path, clock, sandbox, channel="mapi") as op:
            assert await op.refund_settled("r-1") is RefundState.SUCCEEDED
            assert sandbox.state.ledger.trades[TRADE].refunded == Decimal("5.00")
            assert list(sandbox.state.batches) == [batch.batch_no]


def _pem(key: Any, *, private: bool) -> str:
    if private:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


async def test_the_link_is_signed_as_python_alipay_sdk_verifies_it(tmp_path: Path, clock: Clock) -> None:
    """The RSA (SHA1withRSA) signature of the approval link, checked by the peer package, and the parameters the
    password refund takes (and those it does not)."""
    sdk = pytest.importorskip("alipay", reason="python-alipay-sdk is not installed: pip install -e '.[test]'")
    keys = rsa_keys()
    (tmp_path / "merchant.pem").write_text(_pem(keys.merchant, private=True))
    (tmp_path / "alipay.pem").write_text(_pem(keys.alipay.public_key(), private=False))
    rsa_account: Mapping[str, Any] = {"sign_type": "RSA", "md5_key": None,
                                      "private_key_file": str(tmp_path / "merchant.pem"),
                                      "alipay_public_key_file": str(tmp_path / "alipay.pem")}
    sandbox = SandboxConfig(partner=PARTNER, alipay_private_key=keys.alipay,
                            merchant_public_key=keys.merchant.public_key(), trades=[TradeSeed(TRADE, Decimal("9"))],
                            clock=clock)
    config = pwd_config(tmp_path, **rsa_account)
    async with adapter_loop(config, sandbox=sandbox, shop=SimulatedShop(SECRET), request_timeout=DEADLINE,
                            clock=clock) as loop:
        op = Operator(Admin(loop.url, loop.store, SimulatedShop(SECRET), loop.http, loop.app[ENGINE]), loop.sandbox)
        await op.admin.refund("r-1", TRADE, "9.00")
        batch = await op.waiting_batch()
        _, approval = await op.approve_url(batch.id)
    params = dict(parse_qsl(urlsplit(approval["url"]).query, keep_blank_values=True))
    sign = params.pop("sign")
    peer = sdk.AliPay(appid="unused", app_private_key_string=_pem(keys.merchant, private=True),
                      alipay_public_key_string=_pem(keys.merchant.public_key(), private=False), sign_type="RSA")
    assert peer.verify(dict(params), sign)
    assert not peer.verify({**params, "detail_data": params["detail_data"].replace("9.00", "90.00")}, sign)
    assert params["service"] == "refund_fastpay_by_platform_pwd" and params["seller_user_id"] == PARTNER
    assert params["batch_no"] == batch.batch_no and params["batch_num"] == "1"
    assert params["detail_data"] == f"{TRADE}^9.00^damaged"
    assert params["notify_url"].endswith("/alipay/notify")
    refund_date = datetime.strptime(params["refund_date"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
    assert abs(refund_date - beijing_now(datetime.fromtimestamp(clock(), BEIJING))) < timedelta(minutes=1)
    assert not {"dback_notify_url", "use_freeze_amount", "return_type", "seller_email"} & set(params)


async def test_approval_needs_the_operator(tmp_path: Path, clock: Clock) -> None:
    """No link for anyone without the admin token (API) or the session and its CSRF token (dashboard)."""
    async with running(tmp_path, clock, sandbox_config(clock)) as op:
        await op.admin.refund("r-1", TRADE, "1.00")
        batch = await op.waiting_batch()
        http = op.admin.http
        async with http.post(f"{op.admin.url}/-/batches/{batch.id}/approve-url") as resp:
            assert resp.status == 401
        async with http.post(f"{op.admin.url}/admin/batches/{batch.id}/approve", data={"csrf_token": "x"},
                             allow_redirects=False) as resp:
            assert resp.status == 403
        assert "approval_link" not in [entry.kind for entry in await op.store.batch_journal(batch.id)]
        assert (await op.store.get_batch(batch.id)).approval_link_at is None  # type: ignore[union-attr]


async def test_batches_waiting_too_long_are_reminded(tmp_path: Path, clock: Clock) -> None:
    reminders: list[dict[str, Any]] = []

    async def remind(request: web.Request) -> web.Response:
        reminders.append(await request.json())
        return web.Response(text="ok")

    receiver = web.Application()
    receiver.router.add_post("/remind", remind)
    async with serve(receiver) as receiver_url:
        approval = {"reminder_after_seconds": 0.3, "reminder_url": receiver_url + "/remind"}
        async with running(tmp_path, clock, sandbox_config(clock), approval=approval) as op:
            await op.admin.refund("r-1", TRADE, "4.20")
            batch = await op.waiting_batch()

            async def reminded() -> bool:
                return bool(reminders)

            await wait_until(reminded, within=DEADLINE, what="a reminder")
    (first, *_) = reminders
    assert (first["batches_awaiting_approval"], first["total"]) == (1, "4.20")
    assert first["approve_at"] == op.admin.url + "/admin/approvals"
    assert first["oldest_created_at"] == batch.created_at.isoformat()
