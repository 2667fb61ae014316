"""Batches an operator approves at Alipay (`channel: mapi_pwd`): the signed `refund_fastpay_by_platform_pwd` link
made at the operator's click, what the query proves about a link that was opened, and batches whose account
moved to the no-password channel.

Exactly once rests on the batch_no: every link of a batch on one Beijing day carries the same batch_no, so a
second confirmation at Alipay is refused (DUPLICATE_BATCH_NO). A link is good on its day only; the batch_no moves
to a later day only when Alipay provably does not have it (no link left for it, or its query found nothing once
its day was over), keeping its serial.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from ..channels.mapi.batch_no import batch_no_date
from ..channels.mapi.pwd import Seller, link, pwd_request
from ..channels.signing import signed
from ..models import Batch, BatchState
from ..money import BEIJING, beijing_now
from ..store import Cause
from .runtime import EngineContext

log = logging.getLogger(__name__)

# After a Beijing midnight, how long before a link of the day before is taken for expired: a confirmation on its
# last second is recorded by then.
DAY_GRACE_SECONDS = 60.0
RELEASED_PER_STEP = 100


class ApprovalRefused(Exception):
    """No link made: `slug` says why (the dashboard's flash, the API's problem type)."""

    def __init__(self, status: int, slug: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.slug, self.detail = status, slug, detail


@dataclass(frozen=True)
class ApprovalLink:
    """A signed password-refund request: a link to open, or (too long for a link) a form to send to `gateway`."""

    batch: Batch
    gateway: str
    params: Mapping[str, str]  # signed
    charset: str  # what the values are encoded in, on the link and in the form
    expires_at: datetime  # the next Beijing midnight: Alipay refuses the link from then on

    @property
    def url(self) -> str:
        return link(self.gateway, self.params, self.charset)


def _day(now: float) -> date:
    return beijing_now(datetime.fromtimestamp(now, UTC)).date()


def next_midnight(now: float) -> float:
    """The epoch seconds of the next Beijing midnight, when today's links stop working."""
    tomorrow = _day(now) + timedelta(days=1)
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=BEIJING).timestamp()


async def make_approval_link(ctx: EngineContext, batch_id: int | None) -> ApprovalLink:
    """The signed link that lets the operator approve the batch at Alipay, made now, of today's Beijing day."""
    batch = None if batch_id is None else await ctx.store.get_batch(batch_id)
    if batch is None:
        raise ApprovalRefused(404, "unknown-batch", "no such batch")
    channel = ctx.channels.get(batch.account)
    if channel is None or not channel.account.approved_by_operator or batch.state is not BatchState.AWAITING_APPROVAL:
        raise ApprovalRefused(409, "not-awaiting-approval", f"batch {batch.batch_no} is not awaiting approval")
    now = ctx.clock()
    issued = await ctx.store.issue_approval(batch.id, _day(now), now,
                                            next_query_at=now + ctx.config.reconciler.first_query_after_seconds)
    if issued is None:
        raise ApprovalRefused(409, "not-awaiting-approval", f"batch {batch.batch_no} is not awaiting approval")
    if batch_no_date(issued.batch_no) != _day(now):
        ctx.signals.reconciler.set()
        raise ApprovalRefused(409, "approval-being-checked", f"Alipay is being asked whether the link of "
                              f"{issued.batch_no} was used; a new link can be made once it answers")
    account = channel.account
    moment = datetime.fromtimestamp(now, UTC)
    params = pwd_request(partner=account.partner, charset=account.input_charset, batch_no=issued.batch_no,
                         moment=moment, details=channel.details(issued), notify_url=channel.notify_url,
                         seller=Seller(account.seller_user_id, account.seller_email))
    log.info("batch %s: approval link made (%d details)", issued.batch_no, len(issued.details),
             extra={"batch_no": issued.batch_no})
    return ApprovalLink(issued, account.gateway_url, signed(params, channel.scheme), account.input_charset,
                        datetime.fromtimestamp(next_midnight(now), UTC))


async def still_awaiting(ctx: EngineContext, batch: Batch, why: str, *, absent: bool) -> None:
    """The query of an opened link found no result (`absent`: Alipay said it has no such batch). Once the link's
    day is over and Alipay does not have it, it never will: the batch waits for a new link. Until then it is
    asked again on the reconciler's schedule, and once more just after the link's last day."""
    now = ctx.clock()
    if absent and batch_no_date(batch.batch_no) < _day(now):
        log.info("batch %s: its approval link expired unused; a new one can be made", batch.batch_no)
        await ctx.store.approval_expired(batch.id, now, cause=Cause(
            "query", f"query of batch {batch.batch_no}: {why}; its link expired unused",
            {"answer": why, "attempt": batch.query_attempts + 1}))
        return
    schedule = ctx.config.reconciler.schedule_seconds
    due = now + schedule[min(batch.query_attempts, len(schedule) - 1)]
    if batch_no_date(batch.batch_no) == _day(now):  # asked again as soon as the link can no longer be used
        due = min(due, next_midnight(now) + DAY_GRACE_SECONDS)
    await ctx.store.schedule_query(batch.id, due, now, cause=Cause(
        "query", f"query of batch {batch.batch_no}: {why}; not approved yet",
        {"answer": why, "attempt": batch.query_attempts + 1}))


async def release_moved_accounts(ctx: EngineContext) -> int:
    """Batches waiting for approval whose account now sends without it (`channel: mapi`) go to the submitter under
    their own batch_no (moved to today when Alipay provably never had it). Returns how many went."""
    moved = [name for name, account in ctx.config.alipay.accounts.items() if not account.approved_by_operator]
    if not moved:
        return 0
    waiting = await ctx.store.approval_queue(limit=RELEASED_PER_STEP, accounts=moved)
    now = ctx.clock()
    released = 0
    for waiting_batch in waiting.batches:
        batch = await ctx.store.release_for_submit(waiting_batch.id, _day(now), now)
        if batch is not None:
            log.info("batch %s: account %s sends without approval now: to be sent", batch.batch_no, batch.account)
            released += 1
    if released:
        ctx.signals.submitter.set()
    return released
