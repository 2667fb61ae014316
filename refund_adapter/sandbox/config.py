"""How a sandbox is set up: one simulated partner, its keys, its trades, its faults and its clock."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from refund_adapter.channels.signing import load_private_key, load_public_key

from .faults import Faults
from .ledger import TradeSeed, parse_trade_seeds


@dataclass(frozen=True)
class SandboxConfig:
    """One simulated partner; MD5, RSA or both may be configured. With `app_id`, the OpenAPI face answers that
    app: the RSA keys then verify its requests (the merchant's key) and sign the answers (Alipay's key)."""

    partner: str
    md5_key: str | None = field(default=None, repr=False)
    alipay_private_key: rsa.RSAPrivateKey | None = field(default=None, repr=False)  # signs RSA notifies
    merchant_public_key: rsa.RSAPublicKey | None = field(default=None, repr=False)  # verifies RSA requests
    time_scale: float = 1.0
    notify_verify_ttl_seconds: float = 60.0
    nopwd_permission: bool = True
    faults: Mapping[str, Any] = field(default_factory=dict)
    trades: Sequence[TradeSeed] = ()
    default_seller_balance: Decimal = Decimal("1000000.00")
    evaluation_delay_seconds: float = 0.0
    notify_timeout_seconds: float = 10.0
    clock: Callable[[], float] = time.time  # "now" as Unix seconds; a test moves it to stand at any moment
    app_id: str | None = None  # the open-platform app the OpenAPI face serves (None: it refuses every app)
    payment_password: str = field(default="123456", repr=False)  # what the password refund's page accepts

    def __post_init__(self) -> None:
        if not self.md5_key and not (self.alipay_private_key and self.merchant_public_key):
            raise ValueError("the sandbox needs an md5_key or both alipay_private_key and merchant_public_key")
        if self.time_scale <= 0:
            raise ValueError("time_scale must be greater than 0")
        Faults(self.faults)  # fail at configuration time, not on the first request


def config_from_files(
    partner: str,
    *,
    md5_key: str | None = None,
    alipay_private_key: str | None = None,
    merchant_public_key: str | None = None,
    trades: str | None = None,
    **settings: Any,
) -> SandboxConfig:
    """A config whose keys (PEM) and trades (JSON list) come from files; other settings pass through."""
    return SandboxConfig(
        partner=partner,
        md5_key=md5_key,
        alipay_private_key=load_private_key(Path(alipay_private_key).read_bytes()) if alipay_private_key else None,
        merchant_public_key=load_public_key(Path(merchant_public_key).read_bytes()) if merchant_public_key else None,
        trades=parse_trade_seeds(json.loads(Path(trades).read_text("utf-8"))) if trades else (),
        **settings,
    )
