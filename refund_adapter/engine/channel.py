"""The refund *channel* for one Alipay account over MAPI: submit a batch, read a notify, query a batch.

Everything MAPI-specific the engine needs stays behind this seam, so a second channel (OpenAPI
`alipay.trade.refund`) can sit beside it, chosen per account.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar
from urllib.parse import parse_qsl

import aiohttp
from prometheus_client import Histogram

from ..channels.mapi.detail_data import RefundDetail, TradeRefund, clean_reason, refused_details
from ..channels.mapi.gateway import GatewayClient, NotifyVerification, QueryOutcome, SubmitOutcome
from ..channels.mapi.wire import AlipayFormatError
from ..channels.signing import SignatureScheme, load_private_key, load_public_key, make_scheme, verify
from ..config import AlipayAccount
from ..models import Batch

T = TypeVar("T")


def scheme_for(account: AlipayAccount) -> SignatureScheme:
    """Our signing scheme for an account: its MD5 key, or our RSA key and Alipay's public key."""
    if account.sign_type == "RSA":
        assert account.private_key_pem is not None and account.alipay_public_key_pem is not None
        return make_scheme(
            "RSA",
            charset=account.input_charset,
            private_key=load_private_key(account.private_key_pem.reveal()),
            peer_public_key=load_public_key(account.alipay_public_key_pem.reveal()),
        )
    assert account.md5_key is not None
    return make_scheme("MD5", charset=account.input_charset, md5_key=account.md5_key.reveal())


class DetailsRefused(Exception):
    """Refunds of a batch the channel cannot send as they are; nothing was sent. `reasons`: refund id -> why."""

    def __init__(self, reasons: Mapping[int, str]) -> None:
        super().__init__(f"{len(reasons)} details refused: " + "; ".join(reasons.values()))
        self.reasons = dict(reasons)


def decode_form(body: bytes, charset: str) -> dict[str, str]:
    """A form body decoded in the charset the values were signed in (Alipay sends the request's charset)."""
    return dict(parse_qsl(body.decode("ascii", "replace"), keep_blank_values=True, encoding=charset))


@dataclass
class MapiChannel:
    account: AlipayAccount
    gateway: GatewayClient
    scheme: SignatureScheme
    notify_url: str
    dback_notify_url: str
    latency: Histogram | None = None  # seconds per gateway call, by service (Metrics.gateway_latency)

    @classmethod
    def create(
        cls,
        account: AlipayAccount,
        session: aiohttp.ClientSession,
        timeout: aiohttp.ClientTimeout,
        *,
        notify_url: str,
        dback_notify_url: str,
        latency: Histogram | None = None,
    ) -> MapiChannel:
        scheme = scheme_for(account)
        gateway = GatewayClient(
            session,
            gateway_url=account.gateway_url,
            partner=account.partner,
            scheme=scheme,
            charset=account.input_charset,
            timeout=timeout,
        )
        return cls(account, gateway, scheme, notify_url, dback_notify_url, latency)

    async def _timed(self, service: str, call: Awaitable[T]) -> T:
        """`call`'s result, its duration observed under `service` once it answers (a timeout is an answer here:
        the gateway client turns it into UNKNOWN). A call that raises sent nothing, and is not observed."""
        started = time.perf_counter()
        result = await call
        if self.latency is not None:
            self.latency.labels(service).observe(time.perf_counter() - started)
        return result

    def details(self, batch: Batch) -> list[RefundDetail]:
        """The batch as detail_data lines; reasons are cleaned, never a cause of rejection."""
        charset = self.account.input_charset
        return [
            RefundDetail(TradeRefund(d.trade_no, d.amount, clean_reason(d.reason, charset) or "refund"))
            for d in batch.details
        ]

    async def submit(self, batch: Batch, now: datetime) -> SubmitOutcome:
        """Send the batch; DetailsRefused (nothing sent) when some of its details break the protocol, so the
        engine can take them out and send the rest. Any other error escapes as it is."""
        details = self.details(batch)
        try:
            return await self._timed("submit", self.gateway.submit(
                batch_no=batch.batch_no,
                refund_date=now,
                details=details,
                notify_url=self.notify_url,
                dback_notify_url=self.dback_notify_url,
                use_freeze_amount=self.account.use_freeze_amount,
            ))
        except AlipayFormatError:  # raised before anything is sent (gateway.submit)
            refused = refused_details(details, self.account.input_charset)
            if not refused:
                raise  # not a detail's fault: the engine's bounded retry, then review
            raise DetailsRefused({batch.details[index].refund_id: str(exc) for index, exc in refused.items()}) from None

    def decode_notify(self, body: bytes) -> dict[str, str]:
        return decode_form(body, self.account.input_charset)

    def signature_ok(self, params: Mapping[str, str]) -> bool:
        return verify(params, self.scheme)

    async def notify_id_ok(self, notify_id: str) -> bool:
        return await self._timed("notify_verify", self.gateway.notify_verify(notify_id)) is NotifyVerification.TRUE

    async def query(self, batch_no: str) -> QueryOutcome:
        return await self._timed("query", self.gateway.query(batch_no=batch_no))
