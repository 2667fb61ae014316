"""The OpenAPI refund channel for one account: each refund is one `alipay.trade.refund` call, made at most
`max_concurrency` at a time, and settled then and there when the answer proves it.

What an answer proves (outcomes.py): fund_change=Y is a success; fund_change=N (Alipay saw this out_request_no
before) is confirmed by `alipay.trade.fastpay.refund.query` before it counts; an ACQ business code is a
failure; anything else is unknown and left to the channel's `query`, which the Alipay query loop calls on its
schedule: the refund query says whether the refund exists, and one Alipay never made is sent again with the
same out_request_no (always safe: Alipay pays an out_request_no of a trade once). A refund with a final result
(`BatchDetail.settled`) is never sent or asked about again. A rate-limit answer pauses every call of the account
(`Backoff`) and the call is made again; still limited after `max_attempts`, the refund is left unsent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import aiohttp
from prometheus_client import Histogram

from refund_adapter.config import OpenApiAccount
from refund_adapter.models import Batch, BatchDetail, DetailResult

from ..base import (
    FORGED,
    NotifyKind,
    NotifyReading,
    NotifyRefused,
    OpenedNotify,
    QueryAnswer,
    ReferenceMaker,
    Submitted,
    Verdict,
)
from .client import OpenApiClient, Sent
from .idempotency import out_request_no
from .keys import load_signer
from .messages import App
from .outcomes import Answer, QueryKind, RefundKind

SUCCESS = "SUCCESS"  # the verdict code of a refund paid (models.DetailResult.succeeded)
MAX_LINE = 500  # characters of an answer kept as a verdict's journal line
REFERENCE_PREFIX = "openapi-"  # a group's reference: never one of MAPI's batch_nos (digits of a date first)


@dataclass(frozen=True)
class Order:
    """One refund to pay through the channel; `out_request_no` derives from the refund's key (idempotency.py)."""

    refund_id: int
    trade_no: str
    amount: Decimal
    reason: str
    out_request_no: str


@dataclass(frozen=True)
class Settled:
    """What the calls for one order established: a verdict, or none (unknown), and whether Alipay
    has nothing for it."""

    order: Order
    verdict: DetailResult | None
    why: str
    absent: bool = False  # Alipay has nothing for it (rate limited to the end, or the query found none): resend
    requests: tuple[dict[str, str], ...] = field(default=(), compare=False)  # what was sent, without `sign`


@dataclass
class Backoff:
    """One account's pause after a rate-limit answer: every call waits until it is over; it doubles per attempt."""

    base_seconds: float = 1.0
    max_seconds: float = 60.0
    max_attempts: int = 5
    clock: Callable[[], float] = time.monotonic
    until: float = 0.0  # on `clock`, when calls may go again

    async def wait(self) -> None:
        delay = self.until - self.clock()
        if delay > 0:
            await asyncio.sleep(delay)

    def limited(self, attempt: int) -> None:
        """The account was refused for calling too often on its `attempt`-th try (from 1)."""
        delay = min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1))
        self.until = max(self.until, self.clock() + delay)


def _line(answer: Answer) -> str:
    """The answer as the journal keeps it: the verified fields, or why there were none."""
    text = json.dumps(answer.fields, ensure_ascii=False, separators=(",", ":")) if answer.fields else answer.detail
    return text[:MAX_LINE]


class OpenApiChannel:
    """Refunds through one open-platform app; never creates a session of its own."""

    def __init__(self, account: OpenApiAccount, client: OpenApiClient, *, backoff: Backoff | None = None,
                 latency: Histogram | None = None) -> None:
        self.account = account
        self.client = client
        self.backoff = backoff or Backoff()
        self.latency = latency
        self._slots = asyncio.Semaphore(account.max_concurrency)

    @classmethod
    def create(cls, account: OpenApiAccount, session: aiohttp.ClientSession, timeout: aiohttp.ClientTimeout, *,
               latency: Histogram | None = None, backoff: Backoff | None = None) -> OpenApiChannel:
        assert account.private_key is not None and account.alipay_public_key is not None  # config checked them
        signer = load_signer(account.sign_type, account.private_key.reveal(), account.alipay_public_key.reveal())
        token = account.app_auth_token.reveal() if account.app_auth_token else None
        client = OpenApiClient(session, gateway_url=account.gateway_url, app=App(account.app_id, token),
                               signer=signer, timeout=timeout, now=lambda: datetime.now(UTC))
        return cls(account, client, backoff=backoff, latency=latency)

    async def _call(self, service: str, call: Callable[[], Awaitable[Sent]], limited: object) -> list[Sent]:
        """Make the call, in a slot, again after each rate-limit pause; every attempt's Sent, last one last."""
        sent: list[Sent] = []
        for attempt in range(1, self.backoff.max_attempts + 1):
            await self.backoff.wait()
            async with self._slots:
                started = time.perf_counter()
                sent.append(await call())
                if self.latency is not None:
                    self.latency.labels(service).observe(time.perf_counter() - started)
            if sent[-1].answer.kind is not limited:
                break
            self.backoff.limited(attempt)
        return sent

    async def _refund(self, order: Order) -> list[Sent]:
        return await self._call("refund", lambda: self.client.refund(
            order.trade_no, order.amount, order.out_request_no, order.reason), RefundKind.RATE_LIMITED)

    async def _query(self, order: Order) -> list[Sent]:
        return await self._call("refund_query", lambda: self.client.query(order.trade_no, order.out_request_no),
                                QueryKind.RATE_LIMITED)

    async def settle(self, order: Order) -> Settled:
        """Send the refund and settle it as far as its answer allows."""
        sent = await self._refund(order)
        answer = sent[-1].answer
        requests = tuple(dict(s.request) for s in sent)
        if answer.kind is RefundKind.SUCCEEDED:
            return Settled(order, DetailResult(order.trade_no, order.amount, SUCCESS, _line(answer)), "fund_change=Y",
                           requests=requests)
        if answer.kind is RefundKind.FAILED:
            assert answer.code is not None
            verdict = DetailResult(order.trade_no, order.amount, answer.code, _line(answer))
            return Settled(order, verdict, answer.detail, requests=requests)
        if answer.kind is RefundKind.RATE_LIMITED:
            return Settled(order, None, f"rate limited ({answer.code})", absent=True, requests=requests)
        if answer.kind is RefundKind.ALREADY_DONE:
            confirmed = await self._confirm(order)
            return Settled(order, confirmed.verdict, f"fund_change=N; {confirmed.why}",
                           requests=requests + confirmed.requests)
        return Settled(order, None, answer.detail or answer.code or "unknown", requests=requests)

    async def _confirm(self, order: Order) -> Settled:
        """The query's word on a refund: a verdict only when it exists and is paid."""
        sent = await self._query(order)
        answer = sent[-1].answer
        requests = tuple(dict(s.request) for s in sent)
        if answer.kind is QueryKind.REFUNDED:
            assert answer.amount is not None
            verdict = DetailResult(order.trade_no, answer.amount, SUCCESS, _line(answer))
            return Settled(order, verdict, "the query found it refunded", requests=requests)
        return Settled(order, None, f"query: {answer.kind.value} {answer.detail}".strip(), requests=requests,
                       absent=answer.kind is QueryKind.NOT_REFUNDED)

    async def resolve_one(self, order: Order) -> Settled:
        """Settle a refund whose outcome is unknown: the query, and the same out_request_no again if Alipay has
        no such refund (a refund it refused is not recorded either: sent again, it is refused again, for good)."""
        queried = await self._confirm(order)
        if not queried.absent:
            return queried
        again = await self.settle(order)
        return Settled(order, again.verdict, f"not at Alipay: sent again; {again.why}", again.absent,
                       queried.requests + again.requests)

    async def settle_all(self, orders: Sequence[Order], resolve: bool = False) -> list[Settled]:
        """Every order at once, at most `max_concurrency` calls in flight (each call takes a slot)."""
        step = self.resolve_one if resolve else self.settle
        return list(await asyncio.gather(*(step(order) for order in orders)))

    # --- the RefundChannel protocol (channels/base.py) ----------------------------------------------------------

    def references(self, now: datetime) -> ReferenceMaker:
        """A group's name, ours alone: Alipay knows each refund by its out_request_no, never by its group."""
        return lambda namespace, group_id: f"{REFERENCE_PREFIX}{namespace}-{group_id}"

    async def submit(self, batch: Batch, now: datetime) -> Submitted:
        """Send every refund of the group not settled yet: ACCEPTED with every verdict, UNKNOWN with those proven
        so far (the query resolves the rest), RETRY when every call was refused for its rate. Nothing here
        refuses a detail: JSON carries any reason."""
        settled = await self.settle_all([order_of(detail) for detail in batch.details if not detail.settled])
        results = tuple(s.verdict for s in settled if s.verdict is not None)
        doubtful = [f"{s.order.out_request_no}: {s.why}" for s in settled if s.verdict is None]
        first = next((s.requests[0] for s in settled if s.requests), {})
        request = {**first, "calls": str(sum(len(s.requests) for s in settled))}
        detail = "; ".join(doubtful)[:MAX_LINE]
        if settled and all(s.absent for s in settled):
            return Submitted(Verdict.RETRY, "rate_limited", detail=detail, request=request)
        if doubtful:
            return Submitted(Verdict.UNKNOWN, "unknown", detail=detail, request=request, results=results)
        return Submitted(Verdict.ACCEPTED, "settled", request=request, results=results)

    async def query(self, batch: Batch, now: datetime) -> QueryAnswer:
        """Settle the refunds of the group still without a result: the query, and the same out_request_no again
        where Alipay has no such refund. A settled refund is never asked about, so never sent again."""
        settled = await self.settle_all([order_of(d) for d in batch.details if not d.settled], resolve=True)
        results = tuple(s.verdict for s in settled if s.verdict is not None)
        if results or not settled:
            return QueryAnswer(results)
        return QueryAnswer(unresolved="; ".join(f"{s.order.out_request_no}: {s.why}" for s in settled)[:MAX_LINE])

    def open_notify(self, kind: NotifyKind, batch: Batch, body: bytes) -> OpenedNotify | NotifyRefused:
        """alipay.trade.refund answers synchronously: no notify is about this channel's refunds."""
        return NotifyRefused(f"batch {batch.reference} is an OpenAPI group: no notify is about it", FORGED)

    async def confirm_notify(self, notify: OpenedNotify) -> bool:
        return False

    def read_notify(self, kind: NotifyKind, batch: Batch, notify: OpenedNotify) -> NotifyReading | NotifyRefused:
        return NotifyRefused(f"batch {batch.reference} is an OpenAPI group: no notify is about it", FORGED)


def order_of(detail: BatchDetail) -> Order:
    """The order for a batch detail; its out_request_no comes from the refund's key, never from the batch."""
    return Order(detail.refund_id, detail.trade_no, detail.amount, detail.reason, out_request_no(*detail.key))
