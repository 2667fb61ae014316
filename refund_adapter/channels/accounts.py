"""Which channel reaches Alipay for an account: the one module that knows every channel's package.

The app opens one channel per configured account here, and the intake cleans a refund's reason here, as the
account's channel will carry it; neither needs to know which protocol that is.
"""

from __future__ import annotations

import aiohttp
from prometheus_client import Histogram

from ..config import AlipayAccount, Config
from .base import RefundChannel
from .mapi import detail_data
from .mapi.channel import MapiChannel


def open_channel(
    config: Config,
    account: AlipayAccount,
    session: aiohttp.ClientSession,
    timeout: aiohttp.ClientTimeout,
    *,
    latency: Histogram | None = None,
) -> RefundChannel:
    """The account's channel over the app's shared session, told where Alipay posts its notifies (the service's
    public URL in `config`); `latency` observes each call to Alipay."""
    return MapiChannel.create(
        account, session, timeout,
        notify_url=config.notify_url, dback_notify_url=config.dback_notify_url, latency=latency,
    )


def clean_reason(account: AlipayAccount, text: str) -> str:
    """A refund's reason as the account's channel can carry it, so that a memo never blocks a refund."""
    return detail_data.clean_reason(text, account.input_charset)
