"""refund-adapter: Alipay no-password batch refunds for e-commerce platforms.

Plugin authors import everything they need from here: `hookimpl` and the adapter contract's types.
"""

from .hookspecs import hookimpl
from .models import DeliveryResult, Refund, RefundOutcome, RefundRequest, RefundState, Unpayable
from .platform import InboundWebhook, PlatformAdapter, ShopInfo, WebhookAccepted, WebhookRejected

__all__ = [
    "DeliveryResult",
    "InboundWebhook",
    "PlatformAdapter",
    "Refund",
    "RefundOutcome",
    "RefundRequest",
    "RefundState",
    "ShopInfo",
    "Unpayable",
    "WebhookAccepted",
    "WebhookRejected",
    "hookimpl",
]
