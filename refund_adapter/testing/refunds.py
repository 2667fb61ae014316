"""Waiting, with a deadline, for a refund the adapter stored to reach its final state or to be reported."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..models import Refund, ReportState
from .servers import wait_until

if TYPE_CHECKING:
    from ..store import RefundStore

RefundKey = tuple[str, str, str]  # (platform, shop, platform refund id): RefundRequest.key
# Which refund: its key, or a test on the stored refunds (`lambda refund: refund.request.trade_no == TRADE`).
Which = RefundKey | Callable[[Refund], bool]
_SETTLED = frozenset({ReportState.DELIVERED, ReportState.DEAD})


async def find_refund(store: RefundStore, which: Which) -> Refund | None:
    """The stored refund `which` names (the newest of those a test selects), or None."""
    if isinstance(which, tuple):
        return await store.find_refund(*which)
    return next((refund for refund in await store.list_refunds(limit=1000) if which(refund)), None)


async def wait_for_final_state(store: RefundStore, which: Which, *, within: float = 30.0) -> Refund:
    """The refund once it is succeeded, failed or rejected; TimeoutError after `within` seconds."""
    return await _wait_for(store, which, lambda refund: refund.state.is_final, "a final state", within)


async def wait_for_report_state(store: RefundStore, which: Which, *, within: float = 30.0) -> Refund:
    """The refund once its report to the platform is settled, delivered or dead (never while it is still being
    retried); TimeoutError after `within` seconds."""
    return await _wait_for(store, which, lambda refund: refund.report_state in _SETTLED, "a settled report", within)


async def _wait_for(
    store: RefundStore, which: Which, until: Callable[[Refund], bool], what: str, within: float
) -> Refund:
    seen: list[Refund] = []

    async def reached() -> bool:
        refund = await find_refund(store, which)
        seen[:] = [refund] if refund is not None else []
        return refund is not None and until(refund)

    try:
        await wait_until(reached, within=within, what=f"{what} of {_name(which)}")
    except TimeoutError as exc:
        last = f"last seen: {seen[0].state}, report {seen[0].report_state} ({seen[0].report_error})" if seen else (
            "never stored")
        raise TimeoutError(f"{exc}; {last}") from None
    return seen[0]


def _name(which: Which) -> str:
    return f"refund {which!r}" if isinstance(which, tuple) else "the refund"
