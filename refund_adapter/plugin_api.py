"""THE public API for platform plugins: everything a plugin may import from the core, and nothing else.

A plugin (built-in or third-party) imports from `refund_adapter.plugin_api` only; every other module of the core
is private and may change without notice. `tests/test_plugin_fence.py` holds the built-in plugins to this. The
names are also importable from the package root (`from refund_adapter import hookimpl`). The testing kit for
plugin authors is `refund_adapter.testing` (fixtures, a fake-platform base, the conformance suite).

- The contract: `hookimpl`; `PlatformAdapter` and what it takes and returns (`InboundWebhook`, `WebhookAccepted`,
  `RefundRequest`, `RefundOutcome`, `DeliveryResult`, `ShopInfo`), what hooks receive (`PlatformsConfig`,
  `PluginData`, `Refund`, `RefundState`), `configured_platform` for the usual `register_platforms`.
- What a plugin raises: `WebhookRejected` (or `reject`) for a webhook it refuses (forged: 401
  `invalid-signature`; unknown shop: 404; malformed: 400), `ConfigError` for a bad settings section. `report`
  raises nothing for an HTTP answer: a platform that is down is `DeliveryResult.retry(...)`, a result the platform
  already has is `DeliveryResult.delivered()`, credentials refused `DeliveryResult.dead(...)`.
- Settings validation: `check_section`, `parse_shops`, `required_text`, `positive_seconds`, `raise_problems`.
- Money and trade numbers (one definition each): `CURRENCY`, `MAX_AMOUNT`, `AMOUNT_RULE`, `TRADE_NO_RULE`,
  `is_trade_no`, `amount_problem`, `to_amount`, `parse_decimal_text`, `parse_amount_text`; `Unpayable` codes for
  refunds that can be stored but not paid; `alipay_code_meaning` for the merchant's message.
- Webhook helpers: `json_object`, `non_empty_string`, `quote` (untrusted text in a message), `retry_after_seconds`;
  signatures `hmac_digest`, `hmac_base64`, `hmac_base64_matches`, `hmac_hex_matches`.
- Commands (`register_commands`): `load_config_or_exit`, `with_store`.
"""

from __future__ import annotations

from .config_error import ConfigError
from .console.context import load_config_or_exit, with_store
from .hookspecs import PlatformsConfig, hookimpl
from .models import DeliveryResult, Refund, RefundOutcome, RefundRequest, RefundState, Unpayable
from .money import (
    AMOUNT_RULE,
    CURRENCY,
    MAX_AMOUNT,
    TRADE_NO_RULE,
    amount_problem,
    is_trade_no,
    parse_amount_text,
    parse_decimal_text,
    to_amount,
)
from .platform import (
    InboundWebhook,
    PlatformAdapter,
    PluginData,
    ShopInfo,
    WebhookAccepted,
    WebhookRejected,
    alipay_code_meaning,
    json_object,
    non_empty_string,
    reject,
    retry_after_seconds,
)
from .plugin_settings import check_section, parse_shops, positive_seconds, raise_problems, required_text
from .registration import configured_platform
from .signatures import hmac_base64, hmac_base64_matches, hmac_digest, hmac_hex_matches
from .untrusted import quote

__all__ = [
    "AMOUNT_RULE",
    "CURRENCY",
    "MAX_AMOUNT",
    "TRADE_NO_RULE",
    "ConfigError",
    "DeliveryResult",
    "InboundWebhook",
    "PlatformAdapter",
    "PlatformsConfig",
    "PluginData",
    "Refund",
    "RefundOutcome",
    "RefundRequest",
    "RefundState",
    "ShopInfo",
    "Unpayable",
    "WebhookAccepted",
    "WebhookRejected",
    "alipay_code_meaning",
    "amount_problem",
    "check_section",
    "configured_platform",
    "hmac_base64",
    "hmac_base64_matches",
    "hmac_digest",
    "hmac_hex_matches",
    "hookimpl",
    "is_trade_no",
    "json_object",
    "load_config_or_exit",
    "non_empty_string",
    "parse_amount_text",
    "parse_decimal_text",
    "parse_shops",
    "positive_seconds",
    "quote",
    "raise_problems",
    "reject",
    "required_text",
    "retry_after_seconds",
    "to_amount",
    "with_store",
]
