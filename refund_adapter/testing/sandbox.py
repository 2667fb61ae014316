"""The Alipay sandbox as a test's Alipay: one partner with an MD5 key, time sped up so that results and notifies
come at once, trades seeded as a test needs them. The sandbox module is imported only when a sandbox is made."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..sandbox import RunningSandbox, SandboxConfig

SANDBOX_PARTNER = "2088101122136241"
SANDBOX_MD5_KEY = "kit0sandbox0md5key0123456789abcd"
TIME_SCALE = 1000.0  # the sandbox's minutes pass in milliseconds: a batch's result comes at once


def sandbox_config(**overrides: Any) -> SandboxConfig:
    """The kit's sandbox: SANDBOX_PARTNER signing with SANDBOX_MD5_KEY, fast; `overrides` are SandboxConfig's."""
    from ..sandbox import SandboxConfig

    return SandboxConfig(**{"partner": SANDBOX_PARTNER, "md5_key": SANDBOX_MD5_KEY, "time_scale": TIME_SCALE,
                            **overrides})


def seed_trade(sandbox: RunningSandbox, trade_no: str, amount: Decimal, **seed: Any) -> None:
    """Make `trade_no` a paid trade of `amount` that the sandbox accepts refunds for (`seed`: TradeSeed's other
    fields, such as `status="closed"` for a refund Alipay must refuse)."""
    from ..sandbox import TradeSeed

    sandbox.state.ledger.seed(TradeSeed(trade_no=trade_no, amount=amount, **seed))


def refunded_details(sandbox: RunningSandbox, trade_no: str) -> int:
    """How many refund details of `trade_no` the sandbox has been sent, in every batch: 1 when it was paid once."""
    return sum(record.detail.trade.trade_no == trade_no
               for batch in sandbox.state.batches.values() for record in batch.details)
