"""Which channel reaches Alipay for an account: the one module that knows every channel's package.

The app opens one channel per configured account here, and the intake cleans a refund's reason here, as the
account's channel will carry it; neither needs to know which protocol that is.
"""

from __future__ import annotations

import aiohttp
from prometheus_client import Histogram

from ..config import Account, Config, OpenApiAccount
from .base import RefundChannel
from .mapi import detail_data
from .mapi.channel import MapiChannel
from .mapi.pwd_channel import PwdChannel
from .openapi import messages
from .openapi.channel import OpenApiChannel


def open_channel(
    config: Config,
    account: Account,
    session: aiohttp.ClientSession,
    timeout: aiohttp.ClientTimeout,
    *,
    latency: Histogram | None = None,
) -> RefundChannel:
    """The account's channel over the app's shared session, told where Alipay posts its notifies (the service's
    public URL in `config`); `latency` observes each call to Alipay. An account on `channel: mapi_pwd` gets the
    password refund's, whose batches the operator approves."""
    if isinstance(account, OpenApiAccount):
        return OpenApiChannel.create(account, session, timeout, latency=latency)
    kind = PwdChannel if account.approved_by_operator else MapiChannel
    return kind.create(
        account, session, timeout,
        notify_url=config.notify_url, dback_notify_url=config.dback_notify_url, latency=latency,
    )


def clean_reason(account: Account, text: str) -> str:
    """A refund's reason as the account's channel can carry it, so that a memo never blocks a refund."""
    if isinstance(account, OpenApiAccount):
        return messages.clean_reason(text)
    return detail_data.clean_reason(text, account.input_charset)
