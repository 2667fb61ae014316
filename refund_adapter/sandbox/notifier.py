"""The sandbox's notify sender: signed POSTs on Alipay's retry schedule until the merchant answers `success`.

Faults shape delivery here, whatever the face that made the notification: dropped, delayed, duplicated, or held
until `POST /sandbox/notifies/release`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp

from refund_adapter.channels.mapi.wire import format_alipay_time
from refund_adapter.channels.signing import SignatureScheme, signed

from .state import SandboxState

log = logging.getLogger(__name__)

RETRY_SCHEDULE_SECONDS = (240, 600, 600, 3600, 7200, 21600, 54000)  # 4m,10m,10m,1h,2h,6h,15h (§4.1)


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


def send(state: SandboxState, notification: Notification, scheme: SignatureScheme) -> None:
    """Register the notification (for notify_verify) and deliver it, or hold it when `hold_notifies` says so."""
    state.notifications[notification.notify_id] = notification
    if state.faults.take("hold_notifies"):
        notification.status = "held"
        state.held.append((notification, scheme))
        return
    state.spawn(_deliver(state, notification, scheme))


async def deliver_in_turn(state: SandboxState, released: Sequence[tuple[Notification, SignatureScheme]]) -> None:
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
