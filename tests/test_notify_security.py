"""Alipay's notifies against the real sandbox, the real adapter and a real shop, all on 127.0.0.1.

A notify is believed only when it is signed with the batch's account, `notify_verify` confirms its notify_id,
and it agrees with the batch we sent; then it is recorded once and answered `success`.

To prove that a refusal comes from the check under test, the forged notifies carry a notify_id that the
sandbox *would* confirm: a `Gate` sits at the adapter's public URL and holds the sandbox's genuine notifies
(answering `fail`, so the notify_id stays unacknowledged and valid), and each test ends by posting the
untouched genuine notify, which must then be accepted.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest
from aiohttp import web
from refund_adapter_generic.shop import SimulatedShop

from refund_adapter import hookimpl
from refund_adapter.channels.mapi.channel import MAX_NOTIFY_ESCAPES, MAX_NOTIFY_FIELDS
from refund_adapter.channels.mapi.notify import NOTIFY_TYPE_REFUND
from refund_adapter.channels.mapi.wire import format_alipay_time
from refund_adapter.channels.signing import MD5Scheme, signed
from refund_adapter.config import Config, parse_config
from refund_adapter.models import Refund, RefundState, ReportState
from refund_adapter.money import beijing_now
from refund_adapter.plugins import create_plugin_manager
from refund_adapter.sandbox import Notification, RunningSandbox, SandboxConfig
from refund_adapter.store import RefundStore, synthetic
from refund_adapter.testing import ADMIN_HEADERS, adapter_loop, local_config, metric_value, serve, wait_until

from .sqlite_faults import commits_failing

PARTNER = "2088101122136241"
MD5_KEY = "notify-security-md5-key-0123456789"
WRONG_KEY = "not-the-partners-key-0123456789ab"
SECRET = "whsec_" + base64.b64encode(b"notify-security-shop-secret-32b!").decode()
SHOP = "shop-1"
DEADLINE = 10.0
REFUND_PATH = "/alipay/notify"
DBACK_PATH = "/alipay/dback-notify"
_trades = itertools.count(1)


# --- the pieces -------------------------------------------------------------------------------------------


@dataclass
class Gate:
    """The adapter's public URL: forwards Alipay's notifies to the adapter, or holds those of `hold` paths.

    A held notify is recorded and answered `fail`, so the sandbox never sees it acknowledged and its
    notify_id stays valid for `notify_verify`; the test decides what reaches the adapter.
    """

    adapter_url: str = ""
    hold: set[str] = field(default_factory=set)
    received: list[tuple[str, bytes, str]] = field(default_factory=list)  # (path, body, the answer given)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._receive)
        return app

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.path in self.hold:
            self.received.append((request.path, body, "held"))
            return web.Response(text="fail")
        headers = {"Content-Type": request.headers.get("Content-Type", "application/x-www-form-urlencoded")}
        async with aiohttp.ClientSession() as session, session.post(
            self.adapter_url + request.path, data=body, headers=headers
        ) as resp:
            answer = await resp.text()
        self.received.append((request.path, body, answer))
        return web.Response(status=resp.status, text=answer)

    def bodies(self, path: str) -> list[bytes]:
        return [body for where, body, _ in self.received if where == path]


@dataclass
class Transitions:
    """A plugin recording every committed `refund_state_changed`."""

    seen: list[tuple[int, RefundState | None, RefundState]] = field(default_factory=list)

    @hookimpl
    def refund_state_changed(self, refund: Refund, old_state: RefundState | None, new_state: RefundState) -> None:
        self.seen.append((refund.id, old_state, new_state))

    def of(self, refund_id: int) -> list[tuple[RefundState | None, RefundState]]:
        return [(old, new) for rid, old, new in self.seen if rid == refund_id]


@dataclass
class Loop:
    sandbox: RunningSandbox
    gate: Gate
    shop: SimulatedShop
    transitions: Transitions
    adapter_url: str
    store: RefundStore
    http: aiohttp.ClientSession

    async def faults(self, **switches: Any) -> None:
        """Switch sandbox faults over its HTTP API."""
        async with self.http.post(self.sandbox.base_url + "/sandbox/faults", json=switches) as resp:
            assert resp.status == 200, await resp.text()

    async def refund(self, amount: str = "10.50", *, dback: str | None = None) -> Refund:
        """Seed a paid trade in the sandbox, send its refund from the shop, and wait until Alipay accepted it."""
        trade_no = f"20261125220000{next(_trades):06d}"
        seed = {"trade_no": trade_no, "amount": "100.00", **({"dback": dback} if dback else {})}
        async with self.http.post(self.sandbox.base_url + "/sandbox/trades", json=seed) as resp:
            assert resp.status == 201, await resp.text()
        refund_id = f"r-{trade_no}"
        payload = {"refund_id": refund_id, "order_id": f"o-{trade_no}", "trade_no": trade_no, "amount": amount,
                   "currency": "CNY", "reason": "damaged", "paid_amount": "100.00"}
        assert await self.shop.send_refund(self.http, self.adapter_url, SHOP, payload) == 200

        async def submitted() -> bool:
            found = await self.store.find_refund("generic", SHOP, refund_id)
            return found is not None and found.state not in (RefundState.RECEIVED, RefundState.BATCHED)

        await wait_until(submitted, within=DEADLINE, what=f"refund {refund_id} submitted")
        refund = await self.store.find_refund("generic", SHOP, refund_id)
        assert refund is not None
        return refund

    async def current(self, refund: Refund) -> Refund:
        found = await self.store.get_refund(refund.id)
        assert found is not None
        return found

    def notifications(self, batch_no: str, kind: str = "batch_refund_notify") -> list[Notification]:
        return [n for n in self.sandbox.state.batches[batch_no].notifications if n.kind == kind]

    async def post(self, path: str, body: bytes) -> str:
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        async with self.http.post(self.adapter_url + path, data=body, headers=headers) as resp:
            assert resp.status == 200
            return await resp.text()

    async def held(self, path: str, batch_no: str) -> dict[str, str]:
        """The first genuine notify of `batch_no` the gate held, as decoded parameters."""

        async def arrived() -> bool:
            return any(params(body).get(_batch_field(path)) == batch_no for body in self.gate.bodies(path))

        await wait_until(arrived, within=DEADLINE, what=f"the sandbox's notify of {batch_no} at {path}")
        return next(p for p in map(params, self.gate.bodies(path)) if p.get(_batch_field(path)) == batch_no)


def _batch_field(path: str) -> str:
    return "batch_no" if path == REFUND_PATH else "refund_batch_no"


def params(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode("ascii"), keep_blank_values=True, encoding="utf-8"))


def form(values: dict[str, str], *, key: str = MD5_KEY) -> bytes:
    """A notify body signed like Alipay signs it (MD5 over the utf-8 canonical string) with `key`."""
    return urlencode(signed(values, MD5Scheme(key, "utf-8")), encoding="utf-8").encode("ascii")


def refund_notify(batch_no: str, result_details: str, *, notify_id: str, success_num: int = 1) -> dict[str, str]:
    return {
        "notify_time": format_alipay_time(beijing_now()),
        "notify_type": NOTIFY_TYPE_REFUND,
        "notify_id": notify_id,
        "batch_no": batch_no,
        "success_num": str(success_num),
        "result_details": result_details,
    }


def resigned(genuine: dict[str, str], *, key: str = MD5_KEY, **changes: str) -> bytes:
    """The genuine notify with some parameters changed, signed again (by Alipay's key unless `key` says)."""
    values = {k: v for k, v in genuine.items() if k not in ("sign", "sign_type")}
    return form({**values, **changes}, key=key)


def config(tmp_path: Path, port: int, public_url: str, gateway_url: str, shop_url: str) -> Config:
    shop = {"id": SHOP, "secret": SECRET, "callback_url": shop_url, "alipay_account": "main"}
    raw = local_config(
        tmp_path / "refunds.db", port, partner=PARTNER, md5_key=MD5_KEY, gateway_url=gateway_url,
        platforms={"generic": {"shops": [shop]}}, server={"public_url": public_url},
        # The reconciler must not resolve a batch by querying while a test drives its notifies.
        reconciler={"first_query_after_seconds": 600, "interval_seconds": 60},
    )
    return parse_config(raw, env={})


@pytest.fixture
async def loop(tmp_path: Path) -> AsyncIterator[Loop]:
    """Sandbox (dropping every notify until a test says otherwise), gate, shop and adapter, on real ports."""
    sandbox_config = SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, time_scale=100_000.0,
                                   faults={"drop_notifies": True})
    gate, shop, transitions = Gate(), SimulatedShop(SECRET), Transitions()
    pm = create_plugin_manager()
    pm.register(transitions, name="transitions")
    async with serve(gate.app()) as gate_url:

        def gated_config(port: int, gateway_url: str, shop_url: str) -> Config:
            return config(tmp_path, port, gate_url, gateway_url, shop_url + "/callback")

        async with adapter_loop(
            gated_config, sandbox=sandbox_config, shop=shop, pm=pm, request_timeout=DEADLINE
        ) as adapter:
            gate.adapter_url = adapter.url
            yield Loop(adapter.sandbox, gate, shop, transitions, adapter.url, adapter.store, adapter.http)


def details(refund: Refund, amount: str | None = None, code: str = "SUCCESS") -> str:
    return f"{refund.request.trade_no}^{amount or refund.request.amount}^{code}"


async def assert_untouched(loop: Loop, refund: Refund) -> None:
    """Still waiting for Alipay: no result recorded, no transition past SUBMITTED, nothing told to the shop."""
    now = await loop.current(refund)
    assert (now.state, now.code, now.report_state) == (RefundState.SUBMITTED, None, ReportState.NONE)
    assert loop.transitions.of(refund.id)[-1] == (RefundState.BATCHED, RefundState.SUBMITTED)
    assert refund.request.platform_refund_id not in loop.shop.results


# --- refund notifies --------------------------------------------------------------------------------------


async def test_notify_id_not_confirmed_by_notify_verify_is_refused(loop: Loop) -> None:
    """Signed with the right key and consistent with the batch, but notify_verify does not confirm the id."""
    refund = await loop.refund()
    assert refund.state is RefundState.SUBMITTED
    (dropped,) = loop.notifications(refund.batch_no or "")
    assert dropped.status == "dropped" and not dropped.attempts  # the sandbox never posted its notify
    batch_no = refund.batch_no or ""
    never_issued = refund_notify(batch_no, details(refund), notify_id="f" * 32)
    issued_never_delivered = refund_notify(batch_no, details(refund), notify_id=dropped.notify_id)
    unverified = await notifies(loop, "unverified")
    assert await loop.post(REFUND_PATH, form(never_issued)) == "fail"
    assert await loop.post(REFUND_PATH, form(issued_never_delivered)) == "fail"
    assert await notifies(loop, "unverified") == unverified + 2
    await assert_untouched(loop, refund)
    assert not await loop.store.notify_seen(batch_no, dropped.notify_id, "refund")


async def test_notify_for_an_unknown_batch_is_refused(loop: Loop) -> None:
    refund = await loop.refund()
    batch_no = refund.batch_no or ""
    (dropped,) = loop.notifications(batch_no)
    other_batch_no = batch_no[:8] + "9" * (len(batch_no) - 8)
    assert await loop.store.find_batch(other_batch_no) is None
    notify = refund_notify(other_batch_no, details(refund), notify_id=dropped.notify_id)
    assert await loop.post(REFUND_PATH, form(notify)) == "fail"
    assert await loop.post(REFUND_PATH, b"") == "fail"
    assert await loop.post(REFUND_PATH, b"batch_no=%E4%B8%AD%FF") == "fail"  # escapes no batch_no of ours has
    assert await notifies(loop, "unknown_batch") == 3
    await assert_untouched(loop, refund)


async def test_forged_or_inconsistent_notify_is_refused_even_with_a_genuine_notify_id(loop: Loop) -> None:
    await loop.faults(drop_notifies=False)
    loop.gate.hold = {REFUND_PATH}
    refund = await loop.refund("10.50")
    batch_no = refund.batch_no or ""
    genuine = await loop.held(REFUND_PATH, batch_no)
    trade = refund.request.trade_no
    assert genuine["result_details"] == f"{trade}^10.50^SUCCESS"
    unsigned = {k: v for k, v in genuine.items() if k not in ("sign", "sign_type")}
    refused = {
        "signed with another key": resigned(genuine, key=WRONG_KEY),
        "tampered after signing": urlencode({**genuine, "result_details": f"{trade}^10.49^SUCCESS"}).encode(),
        "no signature": urlencode(unsigned).encode(),
        "claims RSA": urlencode({**genuine, "sign_type": "RSA"}).encode(),
        "a trade not in the batch": resigned(
            genuine, result_details=f"{trade}^10.50^SUCCESS#2026112522999999999999^1.00^SUCCESS", success_num="2"
        ),
        "only a trade not in the batch": resigned(genuine, result_details="2026112522999999999999^10.50^SUCCESS"),
        "malformed result_details": resigned(genuine, result_details=f"{trade}^10.50"),
        "result_details with a bad amount": resigned(genuine, result_details=f"{trade}^ten^SUCCESS"),
        "success_num disagrees": resigned(genuine, success_num="0"),
        "not a refund notify": resigned(genuine, notify_type="trade_status_sync"),
    }
    for why, body in refused.items():
        assert await loop.post(REFUND_PATH, body) == "fail", why
    await assert_untouched(loop, refund)
    assert not await loop.store.notify_seen(batch_no, genuine["notify_id"], "refund")
    # Each refusal is in the batch's journal with why, for the operator (never what a forger sent as the sign).
    assert refund.batch_id is not None
    journal = [entry for entry in await loop.store.batch_journal(refund.batch_id) if entry.kind == "refund_refused"]
    assert len(journal) == len(refused) and all(entry.detail["verified"] is False for entry in journal)
    assert sum("bad signature" in entry.detail["reason"] for entry in journal) == 4
    # The notify_id was genuine and unacknowledged all along: the untouched notify is believed, and five
    # copies arriving at once record one result.
    body = urlencode(genuine).encode()
    assert await asyncio.gather(*(loop.post(REFUND_PATH, body) for _ in range(5))) == ["success"] * 5
    settled = await loop.current(refund)
    assert (settled.state, settled.code) == (RefundState.SUCCEEDED, "SUCCESS")
    finals = [change for change in loop.transitions.of(refund.id) if change[1].is_final]
    assert finals == [(RefundState.SUBMITTED, RefundState.SUCCEEDED)]


async def test_notify_naming_a_trade_twice_is_refused(loop: Loop) -> None:
    """A batch holds one detail per trade, so a notify with two verdicts for one trade is not about our batch."""
    await loop.faults(drop_notifies=False)
    loop.gate.hold = {REFUND_PATH}
    refund = await loop.refund("10.50")
    genuine = await loop.held(REFUND_PATH, refund.batch_no or "")
    trade = refund.request.trade_no
    twice = resigned(genuine, result_details=f"{trade}^10.50^TRADE_HAS_CLOSED#{trade}^10.50^SUCCESS")
    assert await loop.post(REFUND_PATH, twice) == "fail"
    await assert_untouched(loop, refund)


async def test_genuine_notify_delivered_three_times_is_recorded_once(loop: Loop) -> None:
    await loop.faults(drop_notifies=False, duplicate_notifies=3)
    refund = await loop.refund("12.30")
    batch_no = refund.batch_no or ""
    (notification,) = loop.notifications(batch_no)

    async def reported_and_all_copies_answered() -> bool:
        delivered = (await loop.current(refund)).report_state is ReportState.DELIVERED
        return delivered and len(notification.attempts) == 3

    await wait_until(reported_and_all_copies_answered, within=DEADLINE, what="3 copies answered, result reported")
    # Three copies posted in one delivery attempt, each answered exactly `success`.
    assert [a.get("body") for a in notification.attempts] == ["success"] * 3
    assert notification.acknowledged
    assert [answer for _, _, answer in loop.gate.received] == ["success"] * 3
    settled = await loop.current(refund)
    assert (settled.state, settled.code) == (RefundState.SUCCEEDED, "SUCCESS")
    finals = [change for change in loop.transitions.of(refund.id) if change[1].is_final]
    assert finals == [(RefundState.SUBMITTED, RefundState.SUCCEEDED)]
    assert loop.shop.deliveries == 1
    result = loop.shop.results[refund.request.platform_refund_id]
    assert (result["status"], result["code"], result["amount"]) == ("succeeded", "SUCCESS", "12.30")
    assert loop.sandbox.state.ledger.trades[refund.request.trade_no].refund_count == 1
    accepted, duplicates = await notifies(loop, "accepted"), await notifies(loop, "duplicate")
    assert accepted >= 1 and accepted + duplicates == 3  # copies racing may each find it not yet recorded

    # A replay after success: notify_verify now says false (acknowledged), yet the recorded notify is
    # acknowledged again, and nothing changes.
    replay = loop.gate.bodies(REFUND_PATH)[0]
    assert await loop.post(REFUND_PATH, replay) == "success"
    assert (await notifies(loop, "accepted"), await notifies(loop, "duplicate")) == (accepted, duplicates + 1)
    again = await loop.current(refund)
    assert (again.state, again.code, again.report_state) == (RefundState.SUCCEEDED, "SUCCESS", ReportState.DELIVERED)
    assert again.report_attempts == settled.report_attempts
    assert [change for change in loop.transitions.of(refund.id) if change[1].is_final] == finals
    assert (await loop.store.counts())["reports"] == {"delivered": 1}


# --- signed notifies that contradict the record: anomalies -------------------------------------------------


async def flagged(loop: Loop) -> list[dict[str, Any]]:
    """`GET /-/refunds?review=true`: what an operator finds."""
    async with loop.http.get(loop.adapter_url + "/-/refunds?review=true", headers=ADMIN_HEADERS) as resp:
        assert resp.status == 200
        return list(await resp.json())


async def anomalies_counted(loop: Loop) -> float:
    return await metric_value(loop.http, loop.adapter_url, "refund_adapter_result_anomalies_total", source="refund")


async def test_a_signed_notify_contradicting_a_settled_result_changes_nothing_but_flags_the_refund(
    loop: Loop, caplog: pytest.LogCaptureFixture
) -> None:
    await loop.faults(drop_notifies=False)
    refund = await loop.refund("10.50")

    async def reported() -> bool:
        return (await loop.current(refund)).report_state is ReportState.DELIVERED

    await wait_until(reported, within=DEADLINE, what="the result reported")
    settled = await loop.current(refund)
    assert (settled.state, settled.code, settled.review) == (RefundState.SUCCEEDED, "SUCCESS", None)
    assert await flagged(loop) == [] and await anomalies_counted(loop) == 0
    # Signed with Alipay's key, under the notify_id already recorded: another verdict for a settled detail.
    genuine = params(loop.gate.bodies(REFUND_PATH)[0])
    contradicting = resigned(genuine, result_details=details(refund, code="TRADE_HAS_CLOSED"), success_num="0")
    caplog.clear()
    assert await loop.post(REFUND_PATH, contradicting) == "success"  # recorded as an anomaly: no need to resend

    after = await loop.current(refund)
    assert after.review == f"refund {genuine['notify_id']}: TRADE_HAS_CLOSED, but succeeded SUCCESS is recorded"
    assert after == dataclasses.replace(settled, review=after.review)  # state, code, report: all as they were
    assert [change for change in loop.transitions.of(refund.id) if change[1].is_final] == [
        (RefundState.SUBMITTED, RefundState.SUCCEEDED)]
    assert loop.shop.deliveries == 1
    (listed,) = await flagged(loop)
    assert (listed["id"], listed["state"], listed["review"]) == (refund.id, "succeeded", after.review)
    assert await anomalies_counted(loop) == 1
    warnings = [r for r in caplog.records if "flagged for review" in r.getMessage()]
    assert [r.levelname for r in warnings] == ["WARNING"]
    # The operator has looked: the flag goes, the refund is otherwise as it was.
    async with loop.http.post(f"{loop.adapter_url}/-/refunds/{refund.id}/review/clear", headers=ADMIN_HEADERS) as resp:
        assert resp.status == 200
        assert await resp.json() == {**listed, "review": None}
    assert await loop.current(refund) == settled and await flagged(loop) == []
    async with loop.http.post(f"{loop.adapter_url}/-/refunds/{'9' * 19}/review/clear", headers=ADMIN_HEADERS) as resp:
        assert resp.status == 404


async def test_a_signed_notify_with_another_amount_is_not_applied_and_flags_the_refund(loop: Loop) -> None:
    await loop.faults(drop_notifies=False)
    loop.gate.hold = {REFUND_PATH}
    refund = await loop.refund("10.50")
    batch_no = refund.batch_no or ""
    genuine = await loop.held(REFUND_PATH, batch_no)
    other_amount = resigned(genuine, result_details=details(refund, amount="99.00"))
    assert await loop.post(REFUND_PATH, other_amount) == "success"
    await assert_untouched(loop, refund)  # no verdict applied, nothing told to the shop
    assert await notifies(loop, "anomaly") == 1
    reason = f"refund {genuine['notify_id']}: SUCCESS for 99.00, but 10.50 was sent"
    assert (await loop.current(refund)).review == reason
    assert [r["id"] for r in await flagged(loop)] == [refund.id]
    assert await anomalies_counted(loop) == 1
    # The genuine notify still settles it; the flag (and its first reason) stays for the operator.
    assert await loop.post(REFUND_PATH, urlencode(genuine).encode()) == "success"
    settled = await loop.current(refund)
    assert (settled.state, settled.code, settled.review) == (RefundState.SUCCEEDED, "SUCCESS", reason)
    assert await anomalies_counted(loop) == 1


# --- dback notifies ---------------------------------------------------------------------------------------


async def test_genuine_dback_notify_is_acknowledged(loop: Loop) -> None:
    await loop.faults(drop_notifies=False)
    refund = await loop.refund(dback="S")
    batch_no = refund.batch_no or ""

    async def acknowledged() -> bool:
        return any(n.acknowledged for n in loop.notifications(batch_no, "dback_notify"))

    await wait_until(acknowledged, within=DEADLINE, what="the dback notify acknowledged")
    (dback,) = loop.notifications(batch_no, "dback_notify")
    assert dback.attempts[-1]["body"] == "success"
    assert await loop.store.notify_seen(batch_no, dback.notify_id, "dback")


async def test_forged_dback_notify_is_refused_and_the_genuine_one_accepted_by_get(loop: Loop) -> None:
    await loop.faults(drop_notifies=False)
    loop.gate.hold = {DBACK_PATH}
    refund = await loop.refund(dback="S")
    batch_no = refund.batch_no or ""
    genuine = await loop.held(DBACK_PATH, batch_no)
    assert genuine["status"] == "S" and genuine["bank_name"] == "中国工商银行"
    refused = {
        "signed with another key": resigned(genuine, key=WRONG_KEY),
        "tampered after signing": urlencode({**genuine, "status": "F"}).encode(),
        "a trade not in the batch": resigned(genuine, trade_no="2026112522999999999999"),
        "an unknown batch": resigned(genuine, refund_batch_no=batch_no[:8] + "9" * (len(batch_no) - 8)),
        "a bad status": resigned(genuine, status="X"),
    }
    for why, body in refused.items():
        assert await loop.post(DBACK_PATH, body) == "fail", why
    assert not await loop.store.notify_seen(batch_no, genuine["notify_id"], "dback")
    # The GET form some examples show: the same parameters in the query string, non-ASCII percent-encoded.
    query = urlencode(genuine, encoding="utf-8")
    async with loop.http.get(f"{loop.adapter_url}{DBACK_PATH}?{query}") as resp:
        assert (resp.status, await resp.text()) == (200, "success")
    assert await loop.store.notify_seen(batch_no, genuine["notify_id"], "dback")


async def test_forged_get_refund_notify_is_refused(loop: Loop) -> None:
    refund = await loop.refund()
    (dropped,) = loop.notifications(refund.batch_no or "")
    notify = refund_notify(refund.batch_no or "", details(refund), notify_id=dropped.notify_id)
    query = form(notify, key=WRONG_KEY).decode()
    async with loop.http.get(f"{loop.adapter_url}{REFUND_PATH}?{query}") as resp:
        assert (resp.status, await resp.text()) == (200, "fail")
    await assert_untouched(loop, refund)


async def test_notify_is_answered_success_only_once_its_results_are_committed(loop: Loop, tmp_path: Path) -> None:
    """A genuine notify whose results the disk refuses to commit is not acknowledged: Alipay must send it again.
    The COMMIT fails for real (see tests/sqlite_faults.py); `success` then would lose the result for good."""
    await loop.faults(drop_notifies=False)
    loop.gate.hold = {REFUND_PATH}
    refund = await loop.refund("10.50")
    batch_no = refund.batch_no or ""
    body = urlencode(await loop.held(REFUND_PATH, batch_no)).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    with commits_failing(tmp_path / "refunds.db", "notifies"):
        async with loop.http.post(loop.adapter_url + REFUND_PATH, data=body, headers=headers) as resp:
            answer = await resp.text()
    assert answer != "success"
    await assert_untouched(loop, refund)
    assert not await loop.store.notify_seen(batch_no, params(body)["notify_id"], "refund")
    # Alipay sends it again once the disk takes writes: recorded, acknowledged, reported.
    assert await loop.post(REFUND_PATH, body) == "success"
    settled = await loop.current(refund)
    assert (settled.state, settled.code) == (RefundState.SUCCEEDED, "SUCCESS")
    assert await loop.store.notify_seen(batch_no, params(body)["notify_id"], "refund")


async def test_each_refused_notify_is_logged_with_why(loop: Loop, caplog: pytest.LogCaptureFixture) -> None:
    """The sender only ever reads `fail`; the operator reads why, in one warning per refused notify."""
    await loop.faults(drop_notifies=False)
    loop.gate.hold = {REFUND_PATH}
    refund = await loop.refund("10.50")
    batch_no = refund.batch_no or ""
    genuine = await loop.held(REFUND_PATH, batch_no)
    trade = refund.request.trade_no
    refused = {
        "bad signature": (resigned(genuine, key=WRONG_KEY), "forged"),
        "malformed refund notify": (resigned(genuine, result_details=f"{trade}^10.50"), "malformed"),
        "is not in batch": (resigned(genuine, result_details="2026112522999999999999^10.50^SUCCESS"), "mismatch"),
    }
    for why, (body, outcome) in refused.items():
        caplog.clear()
        counted = await notifies(loop, outcome)
        assert await loop.post(REFUND_PATH, body) == "fail"
        assert await notifies(loop, outcome) == counted + 1
        warnings = [r.getMessage() for r in caplog.records if r.name == "refund_adapter.engine.alipay_notifies"]
        assert len(warnings) == 1 and why in warnings[0] and batch_no in warnings[0], (why, warnings)


async def test_a_notify_is_refused_undecoded_exactly_past_its_field_and_escape_limits(
    loop: Loop, caplog: pytest.LogCaptureFixture
) -> None:
    """At the limits a body is still decoded (and refused for its signature: it has none); one `&` or one `%`
    more and it is refused as malformed before any decoding, each counted under its outcome."""
    refund = await loop.refund()
    batch_no = refund.batch_no or ""
    head = f"batch_no={batch_no}"
    bodies = [
        (head + "&a=b" * (MAX_NOTIFY_FIELDS - 1), "bad signature", "forged"),
        (head + "&a=b" * MAX_NOTIFY_FIELDS, "fields or", "malformed"),
        (head + "&a=" + "%41" * MAX_NOTIFY_ESCAPES, "bad signature", "forged"),
        (head + "&a=" + "%41" * (MAX_NOTIFY_ESCAPES + 1), "fields or", "malformed"),
    ]
    for body, why, outcome in bodies:
        counted = await notifies(loop, outcome)
        caplog.clear()
        assert await loop.post(REFUND_PATH, body.encode()) == "fail"
        warnings = [r.getMessage() for r in caplog.records if r.name == "refund_adapter.engine.alipay_notifies"]
        assert len(warnings) == 1 and why in warnings[0], (why, warnings)
        assert await notifies(loop, outcome) == counted + 1
    await assert_untouched(loop, refund)


async def notifies(loop: Loop, outcome: str) -> float:
    return await metric_value(loop.http, loop.adapter_url, "refund_adapter_notifies_total", kind="refund",
                              outcome=outcome)


async def test_a_signed_notify_whose_decoded_batch_no_is_another_is_refused_as_a_mismatch(
    loop: Loop, caplog: pytest.LogCaptureFixture
) -> None:
    """The batch is looked up by a search of the raw body for `batch_no=`; a signed notify naming another batch
    under an escaped name (`batch%5Fno`, decoded last) points the search at ours: refused, nothing recorded."""
    refund = await loop.refund()
    batch_no = refund.batch_no or ""
    other = batch_no[:8] + "9" * (len(batch_no) - 8)
    (dropped,) = loop.notifications(batch_no)
    signed_other = form(refund_notify(other, details(refund), notify_id=dropped.notify_id))
    body = f"batch_no={batch_no}&".encode() + signed_other.replace(b"batch_no=", b"batch%5Fno=")
    counted = await notifies(loop, "mismatch")
    caplog.clear()
    assert await loop.post(REFUND_PATH, body) == "fail"
    warnings = [r.getMessage() for r in caplog.records if r.name == "refund_adapter.engine.alipay_notifies"]
    assert len(warnings) == 1 and f"batch {batch_no}: the decoded notify names batch '{other}'" in warnings[0]
    assert await notifies(loop, "mismatch") == counted + 1
    await assert_untouched(loop, refund)


async def test_a_notify_for_a_batch_of_an_account_no_longer_configured_is_refused(
    loop: Loop, caplog: pytest.LogCaptureFixture
) -> None:
    """No key to check its signature with: refused, named as such for the operator, and counted."""
    (batch_id,) = await synthetic.add_batches(loop.store, 1, account="gone", state="submitted", now=time.time())
    batch = await loop.store.get_batch(batch_id)
    assert batch is not None
    counted = await notifies(loop, "unknown_account")
    caplog.clear()
    body = form(refund_notify(batch.batch_no, "2010031206252779^1.00^SUCCESS", notify_id="n1"))
    assert await loop.post(REFUND_PATH, body) == "fail"
    warnings = [r.getMessage() for r in caplog.records if r.name == "refund_adapter.engine.alipay_notifies"]
    assert len(warnings) == 1 and f"batch {batch.batch_no}: account 'gone' is not configured" in warnings[0]
    assert await notifies(loop, "unknown_account") == counted + 1
    assert await loop.store.get_batch(batch_id) == batch


async def test_a_signed_notify_with_a_malformed_notify_id_is_refused_before_notify_verify(
    loop: Loop, caplog: pytest.LogCaptureFixture
) -> None:
    refund = await loop.refund()
    batch_no = refund.batch_no or ""
    malformed = await notifies(loop, "malformed")
    caplog.clear()
    assert await loop.post(REFUND_PATH, form(refund_notify(batch_no, details(refund), notify_id="has space"))) == "fail"
    warnings = [r.getMessage() for r in caplog.records if r.name == "refund_adapter.engine.alipay_notifies"]
    assert len(warnings) == 1 and f"batch {batch_no}: notify_id" in warnings[0], warnings
    assert await notifies(loop, "malformed") == malformed + 1
    await assert_untouched(loop, refund)


async def test_the_batch_is_looked_up_by_the_batch_no_the_decoded_form_holds(loop: Loop) -> None:
    """The batch_no is found by a search of the raw body, not a decode; it must be the one decoding finds (and
    the signature covers): the last of two, the very first field, or the first after a leading `&`."""
    await loop.faults(drop_notifies=False)
    loop.gate.hold = {REFUND_PATH}
    refund = await loop.refund()
    batch_no = refund.batch_no or ""
    genuine = {k: v for k, v in (await loop.held(REFUND_PATH, batch_no)).items() if k not in ("sign", "sign_type")}
    first = form({"batch_no": batch_no, **genuine})
    assert first.startswith(b"batch_no=") and first.count(b"batch_no=") == 1
    name, rest = form(genuine).split(b"&", 1)
    other = batch_no[:8] + "9" * (len(batch_no) - 8)
    repeated = name + f"&batch_no={other}&".encode() + rest  # decoding keeps the last: ours
    last = form(genuine) + f"&batch_no={batch_no}".encode()  # the same batch_no once more, as the last field
    for body in (first, b"&" + first, repeated, last):
        assert await loop.post(REFUND_PATH, body) == "success", body
    settled = await loop.current(refund)
    assert (settled.state, settled.code) == (RefundState.SUCCEEDED, "SUCCESS")
