"""Which channel reaches Alipay for an account: the one module that knows every channel's package.

The app opens one channel per configured account here, and the intake cleans a refund's reason here, as the
account's channel will carry it; neither needs to know which protocol that is.
"""

from __future__ import annotations

import aiohttp
from prometheus_client import Histogram

from ..config import AlipayAccount
from .base import RefundChannel
from .mapi import detail_data
from .mapi.channel import MapiChannel
from .mapi.pwd_channel import PwdChannel


def open_channel(
    account: AlipayAccount,
    session: aiohttp.ClientSession,
    timeout: aiohttp.ClientTimeout,
    *,
    notify_url: str,
    dback_notify_url: str,
    latency: Histogram | None = None,
) -> RefundChannel:
    """The account's channel over the app's shared session; `latency` observes each call to Alipay. An account on
    `channel: mapi_pwd` gets the password refund's, whose batches the operator approves."""
    kind = PwdChannel if account.approved_by_operator else MapiChannel
    return kind.create(
        account, session, timeout, notify_url=notify_url, dback_notify_url=dback_notify_url, latency=latency
    )


def clean_reason(account: AlipayAccount, text: str) -> str:
    """A refund's reason as the account's channel can carry it, so that a memo never blocks a refund."""
    return detail_data.clean_reason(text, account.input_charset)
