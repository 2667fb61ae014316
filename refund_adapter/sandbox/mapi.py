"""A simulated Alipay MAPI gateway for `refund_fastpay_by_platform_nopwd` (§8 of the protocol reference).

It is an aiohttp application of its own, usable by anyone integrating Alipay: it checks requests the way the
real gateway is documented to (each failure answers `F` with its code), keeps a ledger of trades seeded over
HTTP, evaluates each refund detail asynchronously, and delivers signed notifies with Alipay's retry schedule
(scaled by `time_scale`) until the merchant answers exactly `success`. Faults are switched on at startup or
over HTTP so clients can be tested against the failures that make refunds hard: lost answers, 5xx, hangs,
lost, duplicated, held, reordered or early notifies, connections closed without an answer.

Decisions where the reference leaves room (all (I) in the reference):
* `hang_seconds` delays the answer AFTER the request was processed: the batch is accepted, the client times
  out; that is the case an exactly-once client must survive. `close_after_processing` is its abrupt form: the
  connection is closed with no answer at all.
* `notify_before_ack` evaluates the batch and delivers its notifies (first attempt) before the synchronous
  answer leaves, so the merchant hears the result before it has recorded that the batch was sent.
* `hold_notifies` keeps notifications undelivered until `POST /sandbox/notifies/release`, which delivers them
  one after the other, in the order they were made or (`{"order": "reverse"}`) the reverse.
* A query for a batch whose details are not evaluated yet answers `is_success=T` without those details;
  `REFUND_NOT_EXIST` means the batch (or trade) was never received.
* More than 99 refunds of one trade answer `TRADE_STATUS_ERROR` (the trade no longer allows refunds).
* Royalty and sub-trade parts of a detail are echoed with the code of their trade part.
* With `use_freeze_amount=Y` the notify carries `unfreezed_details`, one record per successful detail with
  made-up order numbers and status and code `SUCCESS` (the real alphabets are unknown).
* `time_scale` divides the notify retry schedule only; `notify_verify_ttl_seconds`, `delay_notify_seconds`,
  `hang_seconds` and `evaluation_delay_seconds` are real seconds.
* "Today" and "now" (the `batch_no` date, `refund_date`, the 90-day refund window, notify times) come from
  `SandboxConfig.clock`, so a test can stand at Beijing midnight whatever the hour it runs.
* `refund_date` is "the current time of the request" (§1.3): more than `REFUND_DATE_TOLERANCE` away from the
  gateway's clock answers `REFUND_DATE_ERROR`. Alipay's tolerance is unknown; an hour catches a time written in
  another zone (UTC is 8 hours off).
* A `batch_no` sent again is answered `DUPLICATE_BATCH_NO` and noted in the batch's `resends`, with whether
  its `detail_data` was the same, so a client that reuses a batch_no for other refunds is seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote_from_bytes, urlencode

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from refund_adapter.alipay.codec import (
    BEIJING,
    CHARSETS,
    MAX_DETAILS,
    NOTIFY_TYPE_REFUND,
    SERVICE_NOTIFY_VERIFY,
    SERVICE_QUERY,
    SERVICE_REFUND,
    AlipayFormatError,
    QueryItem,
    QueryResponse,
    RefundDetail,
    ResultItem,
    RoyaltyResult,
    SubTradeResult,
    TradeResult,
    UnfreezedDetail,
    beijing_now,
    decode_detail_data,
    encode_result_details,
    encode_unfreezed_details,
    format_alipay_time,
    parse_alipay_time,
    parse_amount,
    render_ack,
    render_query_response,
    validate_batch_no,
)
from refund_adapter.alipay.signing import (
    MD5Scheme,
    RSAScheme,
    SignatureScheme,
    load_private_key,
    load_public_key,
    signed,
    verify,
)

log = logging.getLogger(__name__)

GATEWAY_PATH = "/gateway.do"
DEFAULT_CHARSET = "gbk"  # what the gateway assumes when `_input_charset` is absent (§8)
RETRY_SCHEDULE_SECONDS = (240, 600, 600, 3600, 7200, 21600, 54000)  # 4m,10m,10m,1h,2h,6h,15h (§4.1)
REFUND_WINDOW = timedelta(days=90)
REFUND_DATE_TOLERANCE = timedelta(hours=1)
MAX_REFUNDS_PER_TRADE = 99
TRADE_STATUSES = ("paid", "closed", "finished")
DBACK_RESULTS = {"S": "S", "F": "F", "I": "P"}  # dback notify status -> result_details `dback_res`
PROBLEM_TYPE = "urn:refund-adapter:sandbox:invalid-request"
REFUND_REQUIRED = ("batch_no", "refund_date", "batch_num", "detail_data")
_PRINTABLE_ASCII = "".join(chr(c) for c in range(0x20, 0x7F))
SUCCESS = "SUCCESS"


class SyncError(Exception):
    """A synchronous check failed: the gateway answers `F` with `code`."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


# --- fault switches ---------------------------------------------------------------------------------------

# Every fault switch and its "off" value; the value's type is the type the switch takes.
FAULTS_OFF: dict[str, bool | float | int | str] = {
    "answer_processing": False,  # refund submissions answer P (still accepted and evaluated)
    "answer_5xx": False,  # every gateway request answers HTTP 500 before anything is processed
    "hang_seconds": 0.0,  # answer this late, after processing
    "drop_notifies": False,  # a notification is never sent
    "delay_notify_seconds": 0.0,  # wait before the first delivery of a notification
    "duplicate_notifies": 1,  # each delivery attempt POSTs this many copies
    "refuse_trade": "",  # a trade_no: a refund request holding it answers F DETAIL_DATA_FORMAT_ERROR (no detail named)
    "close_after_processing": False,  # close the connection instead of answering, after processing
    "notify_before_ack": False,  # a refund submission answers only once its notifies were first delivered
    "hold_notifies": False,  # a notification waits, undelivered, for POST /sandbox/notifies/release
}


@dataclass
class _Switch:
    value: Any
    times: int | None = None  # None: until switched again; n: for the next n uses only


class Faults:
    """Every fault switch in one place.

    A switch is set to a plain value (applies until changed) or to `{"value": v, "times": n}` (applies to the
    next n uses, then switches off). For on/off switches an integer n is short for `{"value": true, "times": n}`,
    so `{"answer_5xx": 1}` fails the next request only. Each use site calls `take`, which counts the use.
    """

    def __init__(self, spec: Mapping[str, Any] | None = None) -> None:
        self._switches = {name: _Switch(off) for name, off in FAULTS_OFF.items()}
        self.update(spec or {})

    def update(self, spec: Mapping[str, Any]) -> None:
        """Validate every switch in `spec`, then apply them all (nothing is applied if one is wrong)."""
        parsed = {name: _parse_switch(name, value) for name, value in spec.items()}
        self._switches.update(parsed)

    def take(self, name: str) -> Any:
        """The switch's value for one use; a count-limited switch turns off after its last use."""
        switch = self._switches[name]
        if switch.times is not None:
            switch.times -= 1
            if switch.times <= 0:
                self._switches[name] = _Switch(FAULTS_OFF[name])
        return switch.value

    def snapshot(self) -> dict[str, Any]:
        """The current switches in the same JSON shape `update` accepts."""
        return {
            name: switch.value if switch.times is None else {"value": switch.value, "times": switch.times}
            for name, switch in self._switches.items()
        }


def _parse_switch(name: str, spec: Any) -> _Switch:
    """One switch from its JSON form; ValueError names the switch and what is wrong."""
    if name not in FAULTS_OFF:
        raise ValueError(f"unknown fault {name!r} (known: {', '.join(FAULTS_OFF)})")
    kind = type(FAULTS_OFF[name])
    times: Any = None
    if isinstance(spec, Mapping):
        if set(spec) - {"value", "times"} or "value" not in spec:
            raise ValueError(f"{name}: expected {{'value': ..., 'times': n}}")
        value, times = spec["value"], spec.get("times")
    elif kind is bool and type(spec) is int:
        value, times = spec > 0, spec if spec > 0 else None
    else:
        value = spec
    if times is not None and (type(times) is not int or times < 1):
        raise ValueError(f"{name}: times must be a positive integer")
    if kind is bool and type(value) is not bool:
        raise ValueError(f"{name}: expected true, false or a count")
    if kind is float and (type(value) not in (int, float) or value < 0):
        raise ValueError(f"{name}: expected a number of seconds >= 0")
    if kind is int and (type(value) is not int or value < 1):
        raise ValueError(f"{name}: expected an integer >= 1")
    if kind is str and type(value) is not str:
        raise ValueError(f"{name}: expected a string")
    return _Switch(kind(value), times)


# --- configuration and the trade ledger -------------------------------------------------------------------


@dataclass(frozen=True)
class TradeSeed:
    """A paid trade the sandbox will accept refunds for; `from_json` reads the `/sandbox/trades` shape."""

    trade_no: str
    amount: Decimal
    status: str = "paid"
    paid_at: datetime | None = None  # default: when seeded
    seller_id: str | None = None  # default: the partner
    seller_balance: Decimal | None = None  # sets the seller account's balance
    dback: str | None = None  # script a 充退 with this status (S, F or I)
    partner: str | None = None  # another partner's trade: NOT_THIS_PARTNERS_TRADE

    @classmethod
    def from_json(cls, obj: Any) -> TradeSeed:
        """Validate one JSON object; ValueError says which field is wrong."""
        if not isinstance(obj, Mapping):
            raise ValueError("a trade must be a JSON object")
        unknown = set(obj) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown trade fields: {', '.join(sorted(unknown))}")
        trade_no = obj.get("trade_no")
        if not isinstance(trade_no, str) or not trade_no or not trade_no.isascii():
            raise ValueError("trade_no: required non-empty ASCII string")
        status = obj.get("status", "paid")
        if status not in TRADE_STATUSES:
            raise ValueError(f"status: one of {', '.join(TRADE_STATUSES)}")
        dback = obj.get("dback")
        if dback is not None and dback not in DBACK_RESULTS:
            raise ValueError(f"dback: one of {', '.join(DBACK_RESULTS)}")
        balance = obj.get("seller_balance")
        return cls(
            trade_no=trade_no,
            amount=_json_amount(obj.get("amount"), "amount"),
            status=status,
            paid_at=_json_time(obj["paid_at"]) if obj.get("paid_at") is not None else None,
            seller_id=_optional_str(obj, "seller_id"),
            seller_balance=None if balance is None else _json_amount(balance, "seller_balance", positive=False),
            dback=dback,
            partner=_optional_str(obj, "partner"),
        )


def _json_amount(value: Any, name: str, *, positive: bool = True) -> Decimal:
    """Money from JSON: a string (or an integer), never a float."""
    if type(value) is int:
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f'{name}: a decimal string such as "100.00"')
    return parse_amount(value, name, strict=positive)


def _money(value: Decimal) -> str:
    """Amounts in the sandbox's JSON views, always with 2 decimals."""
    return f"{value:.2f}"


def _json_time(value: Any) -> datetime:
    """An ISO 8601 datetime; a naive one is Beijing time, like every Alipay timestamp."""
    if not isinstance(value, str):
        raise ValueError("paid_at: an ISO 8601 datetime string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"paid_at: {exc}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=BEIJING)


def _optional_str(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name}: a string")
    return value


def parse_trade_seeds(data: Any) -> list[TradeSeed]:
    """One trade object or a list of them (the `/sandbox/trades` body and the `--trades` file)."""
    items = data if isinstance(data, list) else [data]
    seeds = []
    for index, item in enumerate(items):
        try:
            seeds.append(TradeSeed.from_json(item))
        except ValueError as exc:
            raise ValueError(f"trade #{index}: {exc}" if isinstance(data, list) else str(exc)) from exc
    return seeds


@dataclass(frozen=True)
class SandboxConfig:
    """One simulated partner; MD5, RSA or both may be configured."""

    partner: str
    md5_key: str | None = field(default=None, repr=False)
    alipay_private_key: rsa.RSAPrivateKey | None = field(default=None, repr=False)  # signs RSA notifies
    merchant_public_key: rsa.RSAPublicKey | None = field(default=None, repr=False)  # verifies RSA requests
    time_scale: float = 1.0
    notify_verify_ttl_seconds: float = 60.0
    nopwd_permission: bool = True
    faults: Mapping[str, Any] = field(default_factory=dict)
    trades: Sequence[TradeSeed] = ()
    default_seller_balance: Decimal = Decimal("1000000.00")
    evaluation_delay_seconds: float = 0.0
    notify_timeout_seconds: float = 10.0
    clock: Callable[[], float] = time.time  # "now" as Unix seconds; a test moves it to stand at any moment

    def __post_init__(self) -> None:
        if not self.md5_key and not (self.alipay_private_key and self.merchant_public_key):
            raise ValueError("the sandbox needs an md5_key or both alipay_private_key and merchant_public_key")
        if self.time_scale <= 0:
            raise ValueError("time_scale must be greater than 0")
        Faults(self.faults)  # fail at configuration time, not on the first request


def config_from_files(
    partner: str,
    *,
    md5_key: str | None = None,
    alipay_private_key: str | None = None,
    merchant_public_key: str | None = None,
    trades: str | None = None,
    **settings: Any,
) -> SandboxConfig:
    """A config whose keys (PEM) and trades (JSON list) come from files; other settings pass through."""
    return SandboxConfig(
        partner=partner,
        md5_key=md5_key,
        alipay_private_key=load_private_key(Path(alipay_private_key).read_bytes()) if alipay_private_key else None,
        merchant_public_key=load_public_key(Path(merchant_public_key).read_bytes()) if merchant_public_key else None,
        trades=parse_trade_seeds(json.loads(Path(trades).read_text("utf-8"))) if trades else (),
        **settings,
    )


@dataclass
class Trade:
    """A trade in the ledger and how much of it was refunded."""

    trade_no: str
    amount: Decimal
    status: str
    paid_at: datetime
    seller_id: str
    partner: str
    dback: str | None
    refunded: Decimal = Decimal("0.00")
    refund_count: int = 0

    def to_json(self, balance: Decimal) -> dict[str, Any]:
        return {
            "trade_no": self.trade_no,
            "amount": _money(self.amount),
            "status": self.status,
            "paid_at": self.paid_at.isoformat(),
            "partner": self.partner,
            "seller_id": self.seller_id,
            "seller_balance": _money(balance),
            "dback": self.dback,
            "refunded": _money(self.refunded),
            "refund_count": self.refund_count,
        }


# --- batches and notifications ----------------------------------------------------------------------------


@dataclass
class Notification:
    """One notification and its delivery history; `notify_id` is stable across retries."""

    kind: str  # "batch_refund_notify" or "dback_notify"
    url: str
    partner: str
    charset: str
    params: dict[str, str]  # unsigned; notify_time is refreshed per attempt
    notify_id: str = field(default_factory=lambda: secrets.token_hex(16))
    attempts: list[dict[str, Any]] = field(default_factory=list)
    status: str = "pending"  # or "held" (fault); then "acknowledged", "dropped" (fault) or "gave_up"
    last_delivery: float | None = None  # loop time of the last POST
    first_attempt: asyncio.Event = field(default_factory=asyncio.Event)  # set once first posted (or dropped)

    @property
    def acknowledged(self) -> bool:
        return self.status == "acknowledged"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "url": self.url,
            "notify_id": self.notify_id,
            "status": self.status,
            "acknowledged": self.acknowledged,
            "attempts": self.attempts,
        }


@dataclass
class DetailRecord:
    """A received detail and, once evaluated, its result."""

    detail: RefundDetail
    result: ResultItem | None = None

    def to_json(self) -> dict[str, Any]:
        trade = self.detail.trade
        result = self.result.trade if self.result else None
        return {
            "trade_no": trade.trade_no,
            "amount": _money(trade.amount),
            "reason": trade.reason,
            "code": result.code if result else None,
            "dback_result": result.dback_result if result else None,
        }


@dataclass
class Batch:
    """A batch accepted by the gateway."""

    batch_no: str
    partner: str
    charset: str
    scheme: SignatureScheme  # verified the request; signs the notifies
    notify_url: str | None
    dback_notify_url: str | None
    use_freeze_amount: bool
    details: list[DetailRecord]
    detail_data: str  # as received, to compare with a resend of the same batch_no
    refund_date: str  # as received
    received_at: datetime
    notifications: list[Notification] = field(default_factory=list)
    resends: list[dict[str, Any]] = field(default_factory=list)  # each later request with this batch_no

    @property
    def evaluated(self) -> bool:
        return all(record.result is not None for record in self.details)

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_no": self.batch_no,
            "received_at": self.received_at.isoformat(),
            "refund_date": self.refund_date,
            "charset": self.charset,
            "sign_type": self.scheme.sign_type,
            "notify_url": self.notify_url,
            "dback_notify_url": self.dback_notify_url,
            "use_freeze_amount": self.use_freeze_amount,
            "evaluated": self.evaluated,
            "details": [record.to_json() for record in self.details],
            "notifications": [n.to_json() for n in self.notifications],
            "resends": self.resends,
        }


class SandboxState:
    """Everything the simulated gateway knows; live, so tests and the demo can look inside."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.faults = Faults(config.faults)
        self.trades: dict[str, Trade] = {}
        self.balances: dict[str, Decimal] = {}
        self.batches: dict[str, Batch] = {}
        self.notifications: dict[str, Notification] = {}
        self.held: list[tuple[Notification, SignatureScheme]] = []  # waiting for /sandbox/notifies/release
        self.session: aiohttp.ClientSession | None = None
        self.closing = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        for seed in config.trades:
            self.seed(seed)

    def seed(self, seed: TradeSeed) -> Trade:
        """Add (or replace) a trade; a seller balance in the seed sets that account's balance."""
        seller = seed.seller_id or self.config.partner
        trade = Trade(
            trade_no=seed.trade_no,
            amount=seed.amount,
            status=seed.status,
            paid_at=seed.paid_at or self.now(),
            seller_id=seller,
            partner=seed.partner or self.config.partner,
            dback=seed.dback,
        )
        self.trades[trade.trade_no] = trade
        if seed.seller_balance is not None:
            self.balances[seller] = seed.seller_balance
        return trade

    def now(self) -> datetime:
        """The gateway's clock (`SandboxConfig.clock`), as an aware UTC datetime."""
        return datetime.fromtimestamp(self.config.clock(), UTC)

    def balance(self, seller_id: str) -> Decimal:
        return self.balances.get(seller_id, self.config.default_seller_balance)

    def scheme_for(self, sign_type: str, charset: str) -> SignatureScheme | None:
        """The configured scheme for `sign_type` in `charset`; None when this partner cannot use it."""
        config = self.config
        if sign_type == "MD5" and config.md5_key:
            return MD5Scheme(config.md5_key, charset)
        if sign_type == "RSA" and config.alipay_private_key and config.merchant_public_key:
            return RSAScheme(config.alipay_private_key, config.merchant_public_key, charset)
        return None

    def notify_id_valid(self, partner: str, notify_id: str) -> bool:
        """Issued for this partner, delivered within the TTL and not yet acknowledged (§4.5)."""
        notification = self.notifications.get(notify_id)
        if notification is None or notification.partner != partner or notification.acknowledged:
            return False
        last = notification.last_delivery
        loop = asyncio.get_running_loop()
        return last is not None and loop.time() - last <= self.config.notify_verify_ttl_seconds

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run background work that shutdown cancels and awaits."""
        if self.closing.is_set():
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def pause(self, seconds: float) -> None:
        """Sleep, but wake at shutdown so a hanging answer never holds the server open."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # not wait_for: it can swallow a cancel on Python 3.11
                await self.closing.wait()

    async def close(self) -> None:
        """Cancel and await every background task (tasks may spawn others while being cancelled)."""
        self.closing.set()
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


STATE_KEY = web.AppKey("sandbox_state", SandboxState)


# --- the gateway ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GatewayRequest:
    """The decoded parameters of one gateway request and the charset they were decoded with."""

    params: dict[str, str]
    charset: str
    charset_supported: bool


def _ascii_form(raw: bytes) -> str:
    """Percent-escape any non-ASCII byte, so parse_qsl can decode every value with the declared charset."""
    return quote_from_bytes(raw, safe=_PRINTABLE_ASCII)


async def _read_request(request: web.Request) -> GatewayRequest:
    """Merge the URL query and the form body, decoded with `_input_charset` (GBK when absent)."""
    sources = [request.rel_url.raw_query_string, _ascii_form(await request.read())]
    probe: dict[str, str] = {}
    for text in sources:
        probe.update(parse_qsl(text, encoding="latin-1"))
    charset = (probe.get("_input_charset") or DEFAULT_CHARSET).lower()
    supported = charset in CHARSETS
    params: dict[str, str] = {}
    for text in sources:
        params.update(parse_qsl(text, keep_blank_values=True, encoding=charset if supported else "latin-1"))
    return GatewayRequest(params, charset, supported)


def _ack(status: str, error: str | None = None) -> web.Response:
    return web.Response(body=render_ack(status, error), headers={"Content-Type": "text/xml; charset=GBK"})


def _check_signed(state: SandboxState, req: GatewayRequest, *, refund: bool) -> SignatureScheme:
    """Partner, permission, charset, sign_type and signature, in the documented order."""
    params = req.params
    if params.get("partner") != state.config.partner:
        raise SyncError("ILLEGAL_PARTNER")
    if refund and not state.config.nopwd_permission:
        raise SyncError("ILLEGAL_PARTNER_EXTERFACE")
    if not req.charset_supported:
        raise SyncError("ILLEGAL_CHARSET", req.charset)
    scheme = state.scheme_for(params.get("sign_type", ""), req.charset)
    if scheme is None:
        raise SyncError("ILLEGAL_SIGN_TYPE")
    if not verify(params, scheme):
        raise SyncError("ILLEGAL_SIGN")
    return scheme


def _refund_batch(state: SandboxState, req: GatewayRequest, scheme: SignatureScheme) -> Batch:
    """Every business check of a refund request (§8 steps 4-7); the Batch to persist when all pass."""
    params = req.params
    missing = [name for name in REFUND_REQUIRED if not params.get(name)]
    if missing:
        raise SyncError("ILLEGAL_ARGUMENT", f"missing {', '.join(missing)}")
    if params.get("use_freeze_amount", "") not in ("", "Y", "N") or params.get("return_type", "") not in ("", "xml"):
        raise SyncError("ILLEGAL_ARGUMENT", "use_freeze_amount or return_type")
    batch_no, now = params["batch_no"], state.now()
    with _codec_errors():
        validate_batch_no(batch_no, today=beijing_now(now).date())
    if batch_no in state.batches:
        first = state.batches[batch_no]
        first.resends.append({"at": now.isoformat(), "same_details": params["detail_data"] == first.detail_data})
        raise SyncError("DUPLICATE_BATCH_NO")
    with _codec_errors():
        refund_date = parse_alipay_time(params["refund_date"])
    if abs(refund_date - now) > REFUND_DATE_TOLERANCE:
        raise SyncError("REFUND_DATE_ERROR", f"{params['refund_date']} is not now ({format_alipay_time(now)})")
    count_text, detail_data = params["batch_num"], params["detail_data"]
    if not (count_text.isascii() and count_text.isdigit()) or int(count_text) == 0:
        raise SyncError("BATCH_NUM_ERROR")
    if int(count_text) > MAX_DETAILS:
        raise SyncError("BATCH_NUM_EXCEED_LIMIT")
    if int(count_text) != detail_data.count("#") + 1:
        raise SyncError("BATCH_NUM_NOT_EQUAL_TOTAL")
    with _codec_errors():
        details = decode_detail_data(detail_data, req.charset)
    refused = state.faults.take("refuse_trade")
    if refused and any(detail.trade.trade_no == refused for detail in details):
        raise SyncError("DETAIL_DATA_FORMAT_ERROR", f"trade {refused} (fault refuse_trade)")
    return Batch(
        batch_no=batch_no,
        partner=params["partner"],
        charset=req.charset,
        scheme=scheme,
        notify_url=params.get("notify_url") or None,
        dback_notify_url=params.get("dback_notify_url") or None,
        use_freeze_amount=params.get("use_freeze_amount") == "Y",
        details=[DetailRecord(detail) for detail in details],
        detail_data=detail_data,
        refund_date=params["refund_date"],
        received_at=now,
    )


@contextlib.contextmanager
def _codec_errors() -> Iterator[None]:
    """A codec refusal answers the Alipay code the codec attached to the broken rule."""
    try:
        yield
    except AlipayFormatError as exc:
        raise SyncError(exc.code, str(exc)) from exc


async def _service_refund(state: SandboxState, req: GatewayRequest) -> web.Response:
    try:
        scheme = _check_signed(state, req, refund=True)
        batch = _refund_batch(state, req, scheme)
    except SyncError as exc:
        log.info("sandbox refund refused: %s", exc)
        return _ack("F", exc.code)
    state.batches[batch.batch_no] = batch
    if state.faults.take("notify_before_ack"):
        await _process_batch(state, batch)
        await asyncio.gather(*(notification.first_attempt.wait() for notification in batch.notifications))
    else:
        state.spawn(_process_batch(state, batch))
    log.info("sandbox accepted batch_no=%s with %d details", batch.batch_no, len(batch.details))
    return _ack("P" if state.faults.take("answer_processing") else "T")


async def _service_notify_verify(state: SandboxState, req: GatewayRequest) -> web.Response:
    partner, notify_id = req.params.get("partner", ""), req.params.get("notify_id", "")
    if not partner or not notify_id:
        answer = "invalid"
    else:
        answer = "true" if state.notify_id_valid(partner, notify_id) else "false"
    return web.Response(text=answer, content_type="text/plain")


async def _service_query(state: SandboxState, req: GatewayRequest) -> web.Response:
    try:
        _check_signed(state, req, refund=False)
        batch_no, trade_no = req.params.get("batch_no", ""), req.params.get("trade_no", "")
        if not batch_no and not trade_no:
            raise SyncError("ILLEGAL_ARGUMENT", "batch_no or trade_no")
        response = _query(state, batch_no, trade_no)
    except SyncError as exc:
        response = QueryResponse(False, error_code=exc.code)
    charset = req.charset if req.charset_supported else DEFAULT_CHARSET
    body = render_query_response(response).encode(charset)
    return web.Response(body=body, headers={"Content-Type": f"text/plain; charset={charset}"})


def _query(state: SandboxState, batch_no: str, trade_no: str) -> QueryResponse:
    """Stored results matching both filters; details not evaluated yet are left out (see module doc)."""
    if batch_no:
        batches = [state.batches[batch_no]] if batch_no in state.batches else []
    else:
        batches = list(state.batches.values())
    matching = [
        (batch, record)
        for batch in batches
        for record in batch.details
        if not trade_no or record.detail.trade.trade_no == trade_no
    ]
    if not matching:
        return QueryResponse(False, error_code="REFUND_NOT_EXIST")
    items = tuple(QueryItem(batch.batch_no, record.result) for batch, record in matching if record.result)
    return QueryResponse(True, items)


Service = Callable[[SandboxState, GatewayRequest], Awaitable[web.Response]]
SERVICES: dict[str, Service] = {
    SERVICE_REFUND: _service_refund,
    SERVICE_NOTIFY_VERIFY: _service_notify_verify,
    SERVICE_QUERY: _service_query,
}


async def gateway(request: web.Request) -> web.Response:
    """`/gateway.do`: faults first, then the service named by `service`."""
    state = request.app[STATE_KEY]
    if state.faults.take("answer_5xx"):
        return web.Response(status=500, text="sandbox fault: answer_5xx")
    req = await _read_request(request)
    service = SERVICES.get(req.params.get("service", ""))
    response = await service(state, req) if service else _ack("F", "ILLEGAL_SERVICE")
    hang = state.faults.take("hang_seconds")
    if hang:
        await state.pause(hang)
    if state.faults.take("close_after_processing") and request.transport is not None:
        request.transport.close()  # aiohttp then finds the connection gone and sends nothing
    return response


# --- evaluation and notifies ------------------------------------------------------------------------------


def _refusal(state: SandboxState, partner: str, trade: Trade | None, amount: Decimal) -> str | None:
    """Why this detail cannot be refunded, as its result code; None when it can."""
    if trade is None:
        return "TRADE_NOT_EXISTS"
    if trade.partner != partner:
        return "NOT_THIS_PARTNERS_TRADE"
    if trade.status == "closed":
        return "TRADE_HAS_CLOSED"
    if trade.status == "finished" or state.now() - trade.paid_at > REFUND_WINDOW:
        return "TRADE_HAS_FINISHED"
    if trade.refund_count >= MAX_REFUNDS_PER_TRADE:
        return "TRADE_STATUS_ERROR"
    if amount > trade.amount - trade.refunded:
        return "REFUND_AMOUNT_NOT_VALID"
    if state.balance(trade.seller_id) < amount:
        return "TXN_RESULT_ACCOUNT_BALANCE_NOT_ENOUGH"
    return None


def evaluate(state: SandboxState, partner: str, detail: RefundDetail) -> ResultItem:
    """Refund one detail against the ledger (money moves only on SUCCESS)."""
    trade = state.trades.get(detail.trade.trade_no)
    amount = detail.trade.amount
    code = _refusal(state, partner, trade, amount) or SUCCESS
    dback_result = None
    if code == SUCCESS and trade is not None:
        trade.refunded += amount
        trade.refund_count += 1
        state.balances[trade.seller_id] = state.balance(trade.seller_id) - amount
        dback_result = DBACK_RESULTS.get(trade.dback or "")
    return ResultItem(
        trade=TradeResult(
            detail.trade.trade_no,
            amount,
            code,
            is_dback=True if dback_result else None,
            dback_result=dback_result,
        ),
        royalties=tuple(
            RoyaltyResult(r.out_account, r.out_user_id, r.in_account, r.in_user_id, r.amount, code)
            for r in detail.royalties
        ),
        sub_trade=(
            SubTradeResult(detail.sub_trade.amount, detail.sub_trade.amount, code) if detail.sub_trade else None
        ),
    )


async def _process_batch(state: SandboxState, batch: Batch) -> None:
    """Evaluate every detail, then notify the merchant (and the dback URL for scripted 充退)."""
    if state.config.evaluation_delay_seconds:
        await asyncio.sleep(state.config.evaluation_delay_seconds)
    for record in batch.details:
        record.result = evaluate(state, batch.partner, record.detail)
    items = [record.result for record in batch.details if record.result]
    if batch.notify_url:
        params = _refund_notify_params(batch, items, state.now())
        _notify(state, batch, "batch_refund_notify", batch.notify_url, params)
    if batch.dback_notify_url:
        for index, item in enumerate(items):
            if item.trade.dback_result:
                params = _dback_notify_params(state, batch, item, index)
                _notify(state, batch, "dback_notify", batch.dback_notify_url, params)


def _refund_notify_params(batch: Batch, items: Sequence[ResultItem], now: datetime) -> dict[str, str]:
    params = {
        "notify_type": NOTIFY_TYPE_REFUND,
        "batch_no": batch.batch_no,
        "success_num": str(sum(1 for item in items if item.succeeded)),
        "result_details": encode_result_details(items),
    }
    unfreezed = [
        UnfreezedDetail(
            unfreeze_order_no=f"{batch.batch_no}U{index + 1:04d}",
            freeze_order_no=f"{batch.batch_no}F{index + 1:04d}",
            amount=item.trade.amount,
            trade_no=item.trade.trade_no,
            processed_at=format_alipay_time(now),
            status=SUCCESS,
            code=SUCCESS,
        )
        for index, item in enumerate(items)
        if item.succeeded
    ]
    if batch.use_freeze_amount and unfreezed:
        params["unfreezed_details"] = encode_unfreezed_details(unfreezed)
    return params


def _dback_notify_params(state: SandboxState, batch: Batch, item: ResultItem, index: int) -> dict[str, str]:
    trade = state.trades[item.trade.trade_no]
    return {
        "trade_no": trade.trade_no,
        "refund_id": f"{batch.batch_no}{index + 1:04d}",
        "refund_batch_no": batch.batch_no,
        "card_no": "622202******1234",
        "bank_name": "中国工商银行",
        "status": trade.dback or "",
    }


def _notify(state: SandboxState, batch: Batch, kind: str, url: str, params: dict[str, str]) -> None:
    notification = Notification(kind, url, batch.partner, batch.charset, params)
    batch.notifications.append(notification)
    state.notifications[notification.notify_id] = notification
    if state.faults.take("hold_notifies"):
        notification.status = "held"
        state.held.append((notification, batch.scheme))
        return
    state.spawn(_deliver(state, notification, batch.scheme))


async def _deliver_in_turn(state: SandboxState, released: Sequence[tuple[Notification, SignatureScheme]]) -> None:
    """Each notification's first attempt is over before the next one's starts, so the order is the one given."""
    for notification, scheme in released:
        notification.status = "pending"
        state.spawn(_deliver(state, notification, scheme))
        await notification.first_attempt.wait()


async def _deliver(state: SandboxState, notification: Notification, scheme: SignatureScheme) -> None:
    """Send until acknowledged with exactly `success`, on Alipay's retry schedule divided by time_scale."""
    faults = state.faults
    if faults.take("drop_notifies"):
        notification.status = "dropped"
        notification.first_attempt.set()
        log.info("sandbox dropped %s notify_id=%s (fault)", notification.kind, notification.notify_id)
        return
    waits = (faults.take("delay_notify_seconds"), *(s / state.config.time_scale for s in RETRY_SCHEDULE_SECONDS))
    for wait in waits:
        if wait:
            await asyncio.sleep(wait)
        for _ in range(faults.take("duplicate_notifies")):
            if await _post_notification(state, notification, scheme):
                notification.status = "acknowledged"
        notification.first_attempt.set()
        if notification.acknowledged:
            return
    notification.status = "gave_up"
    log.warning("sandbox gave up on %s notify_id=%s", notification.kind, notification.notify_id)


async def _post_notification(state: SandboxState, notification: Notification, scheme: SignatureScheme) -> bool:
    """One signed POST; True when the merchant answered 200 with exactly `success`."""
    assert state.session is not None, "notifications are sent only while the app runs"
    now = state.now()
    params = {"notify_time": format_alipay_time(now), "notify_id": notification.notify_id, **notification.params}
    body = urlencode(signed(params, scheme), encoding=notification.charset).encode("ascii")
    headers = {"Content-Type": f"application/x-www-form-urlencoded; charset={notification.charset}"}
    attempt: dict[str, Any] = {"at": now.isoformat()}
    notification.last_delivery = asyncio.get_running_loop().time()
    try:
        async with state.session.post(notification.url, data=body, headers=headers) as resp:
            answer = await resp.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        attempt["error"] = f"{type(exc).__name__}: {exc}"
        acknowledged = False
    else:
        attempt.update(status=resp.status, body=answer[:200].decode("utf-8", "replace"))
        acknowledged = resp.status == 200 and answer == b"success"
    attempt["acknowledged"] = acknowledged
    notification.attempts.append(attempt)
    log.info(
        "sandbox %s notify_id=%s attempt %d: %s",
        notification.kind,
        notification.notify_id,
        len(notification.attempts),
        "acknowledged" if acknowledged else "not acknowledged",
    )
    return acknowledged


# --- the sandbox's own JSON endpoints ---------------------------------------------------------------------


def _problem(status: int, title: str, detail: str) -> web.Response:
    """RFC 9457 problem details with a stable type."""
    body = {"type": PROBLEM_TYPE, "title": title, "status": status, "detail": detail}
    return web.json_response(body, status=status, content_type="application/problem+json")


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise ValueError(f"body is not JSON: {exc}") from exc


def _trades_json(state: SandboxState, trades: Iterable[Trade]) -> list[dict[str, Any]]:
    return [trade.to_json(state.balance(trade.seller_id)) for trade in trades]


async def get_trades(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response(_trades_json(state, state.trades.values()))


async def post_trades(request: web.Request) -> web.Response:
    """Seed one trade or a list; all are validated before any is stored."""
    state = request.app[STATE_KEY]
    try:
        seeds = parse_trade_seeds(await _json_body(request))
    except ValueError as exc:
        return _problem(400, "invalid trade", str(exc))
    return web.json_response(_trades_json(state, [state.seed(seed) for seed in seeds]), status=201)


async def get_batches(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response([batch.to_json() for batch in state.batches.values()])


async def release_notifies(request: web.Request) -> web.Response:
    """Deliver every held notification, in the order they were made or `{"order": "reverse"}`."""
    state = request.app[STATE_KEY]
    try:
        spec = await _json_body(request) if request.can_read_body else {}
        order = spec.get("order", "made") if isinstance(spec, dict) else None
        if order not in ("made", "reverse"):
            raise ValueError('expected {"order": "made"} or {"order": "reverse"}')
    except ValueError as exc:
        return _problem(400, "invalid release", str(exc))
    released, state.held = state.held, []
    if order == "reverse":
        released.reverse()
    state.spawn(_deliver_in_turn(state, released))
    return web.json_response({"released": [notification.notify_id for notification, _ in released]})


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].faults.snapshot())


async def post_faults(request: web.Request) -> web.Response:
    faults = request.app[STATE_KEY].faults
    try:
        spec = await _json_body(request)
        if not isinstance(spec, dict):
            raise ValueError("expected a JSON object of fault switches")
        faults.update(spec)
    except ValueError as exc:
        return _problem(400, "invalid faults", str(exc))
    return web.json_response(faults.snapshot())


# --- running it -------------------------------------------------------------------------------------------


def create_sandbox_app(config: SandboxConfig) -> web.Application:
    """The simulated gateway as an aiohttp app; its notify session and tasks live in cleanup_ctx."""
    app = web.Application()
    state = SandboxState(config)
    app[STATE_KEY] = state

    async def notify_session(_: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=config.notify_timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            state.session = session
            yield
            await state.close()

    async def release_hangs(_: web.Application) -> None:
        state.closing.set()

    app.cleanup_ctx.append(notify_session)
    app.on_shutdown.append(release_hangs)
    app.router.add_route("GET", GATEWAY_PATH, gateway)
    app.router.add_route("POST", GATEWAY_PATH, gateway)
    app.router.add_get("/sandbox/trades", get_trades)
    app.router.add_post("/sandbox/trades", post_trades)
    app.router.add_get("/sandbox/batches", get_batches)
    app.router.add_get("/sandbox/faults", get_faults)
    app.router.add_post("/sandbox/faults", post_faults)
    app.router.add_post("/sandbox/notifies/release", release_notifies)
    return app


@dataclass(frozen=True)
class RunningSandbox:
    """A sandbox listening on a real port."""

    base_url: str
    state: SandboxState

    @property
    def url(self) -> str:
        """The gateway URL a client is configured with."""
        return self.base_url + GATEWAY_PATH


@contextlib.asynccontextmanager
async def run_sandbox(config: SandboxConfig, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[RunningSandbox]:
    """Serve the sandbox on host:port (0 picks a free port) for the duration of the block."""
    app = create_sandbox_app(config)
    runner = web.AppRunner(app, shutdown_timeout=5.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_port = runner.addresses[0][1]
        yield RunningSandbox(f"http://{host}:{bound_port}", app[STATE_KEY])
    finally:
        await runner.cleanup()


async def serve_sandbox(
    config: SandboxConfig, host: str, port: int, on_ready: Callable[[RunningSandbox], None]
) -> None:
    """Run until SIGINT or SIGTERM (the `refund-adapter sandbox` command)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with run_sandbox(config, host, port) as sandbox:
        on_ready(sandbox)
        await stop.wait()
