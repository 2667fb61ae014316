"""The password refund's *channel* (`channel: mapi_pwd`): MAPI batches an operator confirms at Alipay with the
payment password instead of the engine sending them (`ApprovalChannel`). It is the MAPI channel in all else: the
same batch_nos, the same `batch_refund_notify`, the same `refund_fastpay_query`, so a batch approved at Alipay is
settled exactly as a sent one, and an account moved to `channel: mapi` sends its waiting batches as they are.
"""

from __future__ import annotations

from datetime import datetime

from yarl import URL

from ...models import Batch
from ...money import beijing_now, next_beijing_midnight
from ..base import Approval
from ..signing import signed
from .batch_no import batch_no_date
from .channel import MapiChannel
from .pwd import Seller, link, pwd_request


class PwdChannel(MapiChannel):
    """One account on `refund_fastpay_by_platform_pwd`: its batches wait for the operator's approval."""

    def approval(self, batch: Batch, now: datetime) -> Approval | None:
        """The batch's signed request made at `now` (its `refund_date`), under its own batch_no; None when that
        batch_no is of another Beijing day (Alipay would refuse it: BATCH_NO_FORMAT_ERROR)."""
        if batch_no_date(batch.reference) != beijing_now(now).date():
            return None
        account = self.account
        params = signed(pwd_request(partner=account.partner, charset=account.input_charset,
                                    batch_no=batch.reference, moment=now, details=self.details(batch),
                                    notify_url=self.notify_url,
                                    seller=Seller(account.seller_user_id, account.seller_email)), self.scheme)
        charset = account.input_charset
        return Approval(url=link(account.gateway_url, params, charset),
                        action=str(URL(account.gateway_url).update_query(_input_charset=charset)),
                        fields=params, charset=charset, expires_at=next_beijing_midnight(now))
