"""The password-confirmed batch refund, `refund_fastpay_by_platform_pwd` (§1.5 of the protocol reference): the
same batches as nopwd, but the signed request is a link the merchant's operator opens in a browser, logs in to
Alipay with and confirms with the payment password. The link is good on the day it is made only.

Pure: builds the request's parameters and its URL, no I/O. What differs from nopwd: `seller_user_id` or
`seller_email` is required (the user id wins when both are known); there is no `dback_notify_url`,
`use_freeze_amount` nor `return_type`; `detail_data` is of the simple shape only (a royalty or sub-trade part is
refused with PWD_REFUND_NOT_ALLOW_ROYALTY).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from ...money import beijing_now
from .batch_no import validate_batch_no
from .detail_data import RefundDetail, batch_num, encode_detail_data
from .wire import AlipayFormatError, format_alipay_time

SERVICE_PWD_REFUND = "refund_fastpay_by_platform_pwd"
PWD_REFUND_NOT_ALLOW_ROYALTY = "PWD_REFUND_NOT_ALLOW_ROYALTY"


@dataclass(frozen=True)
class Seller:
    """Whose Alipay account pays the refunds back: its user id (2088...) or its login e-mail, one at least."""

    user_id: str | None = None
    email: str | None = None

    def params(self) -> dict[str, str]:
        """`seller_user_id`, or `seller_email` when no user id is known (Alipay prefers the id when both come)."""
        if self.user_id:
            return {"seller_user_id": self.user_id}
        if self.email:
            return {"seller_email": self.email}
        raise AlipayFormatError("seller", "seller_user_id or seller_email is required", code="ILLEGAL_ARGUMENT")


def refuse_royalties(details: Sequence[RefundDetail]) -> None:
    """The password refund moves trade money only: a royalty or sub-trade part is Alipay's
    PWD_REFUND_NOT_ALLOW_ROYALTY."""
    for index, detail in enumerate(details):
        if detail.royalties or detail.sub_trade is not None:
            raise AlipayFormatError(f"detail_data[{index}]", "the password refund takes trade_no^amount^reason only",
                                    code=PWD_REFUND_NOT_ALLOW_ROYALTY)


def pwd_request(
    *,
    partner: str,
    charset: str,
    batch_no: str,
    moment: datetime,
    details: Sequence[RefundDetail],
    notify_url: str,
    seller: Seller,
) -> dict[str, str]:
    """The unsigned parameters of the batch's approval link made at `moment`: its `refund_date`, and a batch_no
    that must be of that Beijing day (a link of another day would be refused with BATCH_NO_FORMAT_ERROR)."""
    refuse_royalties(details)
    validate_batch_no(batch_no, today=beijing_now(moment).date())
    return {
        "service": SERVICE_PWD_REFUND,
        "partner": partner,
        "_input_charset": charset,
        "notify_url": notify_url,
        "batch_no": batch_no,
        "refund_date": format_alipay_time(moment),
        "batch_num": batch_num(details),
        "detail_data": encode_detail_data(details, charset),
        **seller.params(),
    }


def link(gateway_url: str, signed_params: Mapping[str, str], charset: str) -> str:
    """The GET URL of a signed request: the gateway with every non-empty parameter in its query, encoded in
    `charset` (the values were signed as decoded text, §2.1)."""
    query = urlencode({key: value for key, value in signed_params.items() if value}, encoding=charset)
    return f"{gateway_url}{'&' if '?' in gateway_url else '?'}{query}"
