"""Background work, each a loop over durable state: batcher, submitter, reporter, Alipay query, platform poll."""

from __future__ import annotations

import asyncio
import functools

from .alipay_query import query_once
from .batcher import batch_once, next_deadline
from .platform_poller import PlatformPoller
from .reminder import ApprovalReminder
from .reporter import report_once
from .runtime import EngineContext, run_loop
from .submitter import submit_once

REPORTER_TICK_SECONDS = 1.0
SUBMITTER_TICK_SECONDS = 1.0
REMINDER_TICK_SECONDS = 60.0  # at most this late after `approval.reminder_after_seconds`


def start_engine(ctx: EngineContext) -> list[asyncio.Task[None]]:
    """Start every loop; they run until cancelled. Cancel and await the returned tasks to stop.

    Each cycle of each loop first waits for a pause in webhook intake (`ctx.pressure`, set from `config.engine`).
    """
    poller = PlatformPoller(ctx)
    settings = ctx.config.engine
    ctx.pressure.configure(settings.yield_quiet_seconds, settings.yield_max_seconds)
    loops = [
        ("batcher", ctx.signals.batcher, next_deadline(ctx), lambda: batch_once(ctx)),
        ("submitter", ctx.signals.submitter, SUBMITTER_TICK_SECONDS, lambda: submit_once(ctx)),
        ("reporter", ctx.signals.reporter, REPORTER_TICK_SECONDS, lambda: report_once(ctx)),
        ("alipay-query", ctx.signals.alipay_query, ctx.config.alipay_query.interval_seconds, lambda: query_once(ctx)),
        ("platform-poller", ctx.signals.platform_poller, ctx.config.platform_poll.interval_seconds, poller.poll_once),
    ]
    if ctx.config.approval.reminder_url is not None:
        reminder, approval = ApprovalReminder(), ctx.config.approval
        tick = min(REMINDER_TICK_SECONDS, approval.reminder_after_seconds / 4)
        loops.append(("approval-reminder", asyncio.Event(), tick, lambda: reminder.remind_once(ctx)))
    tasks = []
    for name, wake, interval, step in loops:
        beat = functools.partial(ctx.loops.beat, name)
        task = asyncio.create_task(run_loop(name, wake, interval, step, ctx.pressure.quiet, beat),
                                   name=f"refund-adapter-{name}")
        ctx.loops.watch(name, interval, task)
        tasks.append(task)
    return tasks


async def stop_engine(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
