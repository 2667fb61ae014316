"""What an answer proves, for a refund (`alipay.trade.refund`) and for its query
(`alipay.trade.fastpay.refund.query`). Pure: bytes and a signer in, a verdict out.

Only a signed answer is believed: one whose signature is missing or does not verify over the raw node text is
UNKNOWN, never a success nor a failure. A rate-limit refusal is read before the signature (the gateway does
not sign it, and believing it costs nothing: the same out_request_no is sent again later).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import SUCCESS, Effect, ErrorCode, error_code
from .messages import METHOD_REFUND, METHOD_REFUND_QUERY
from .response import RawResponse, ResponseFormatError, read_response
from .signing import CHARSET, Signer

# The query's answers for a trade Alipay does not know (its table has both spellings): no refund was made.
TRADE_UNKNOWN_TO_ALIPAY = frozenset({"ACQ.TRADE_NOT_EXIST", "TRADE_NOT_EXIST"})


class RefundKind(enum.Enum):
    SUCCEEDED = "succeeded"  # 10000 and fund_change=Y: this call moved the money
    ALREADY_DONE = "already_done"  # 10000 and fund_change=N: an earlier call did (or is doing) it; query to confirm
    FAILED = "failed"  # a final business refusal (`code` says which)
    UNKNOWN = "unknown"  # no answer we can believe: the query decides
    RATE_LIMITED = "rate_limited"  # refused for calling too often: the same call again, later


class QueryKind(enum.Enum):
    REFUNDED = "refunded"  # the refund exists and is paid (`amount`)
    NOT_REFUNDED = "not_refunded"  # Alipay has no such refund: sending the same out_request_no is safe
    UNKNOWN = "unknown"  # no answer we can believe, or a refund still in progress: ask again later
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True)
class Answer:
    """A verdict, the code behind it and why; `fields` is the verified node (empty when nothing verified)."""

    kind: RefundKind | QueryKind
    code: str | None = None
    detail: str = ""
    amount: Decimal | None = None
    fields: dict[str, Any] = field(default_factory=dict, compare=False)


def _open(body: bytes, method: str, signer: Signer) -> RawResponse | str:
    """The verified node, or why there is none we can believe."""
    try:
        raw = read_response(body.decode(CHARSET), method)
    except UnicodeDecodeError:
        return f"the answer is not {CHARSET}"
    except ResponseFormatError as exc:
        return f"unreadable answer: {exc}"
    return raw


def _error(raw: RawResponse) -> ErrorCode | None:
    """The table's entry for a refusal; None for 10000."""
    code = str(raw.fields.get("code", ""))
    return None if code == SUCCESS else error_code(code, raw.fields.get("sub_code"))


def _doubt(raw: RawResponse, signer: Signer) -> str | None:
    """Why the answer cannot be believed (unsigned, or its signature does not verify), or None."""
    if raw.sign is None:
        return f"unsigned answer (code {raw.fields.get('code') or 'none'}, {raw.fields.get('sub_code') or '-'})"
    if not signer.verify_text(raw.text, raw.sign):
        return "the answer's signature does not verify"
    return None


def _believed(
    body: bytes, method: str, signer: Signer, kinds: type[RefundKind] | type[QueryKind]
) -> Answer | tuple[RawResponse, ErrorCode | None]:
    """The verified node and its error-table entry; or the verdict already settled: an unreadable or unbelieved
    answer is UNKNOWN, a rate-limit refusal (read before the signature) is RATE_LIMITED."""
    raw = _open(body, method, signer)
    if isinstance(raw, str):
        return Answer(kinds.UNKNOWN, detail=raw)
    entry = _error(raw)
    if entry is not None and entry.effect is Effect.RATE_LIMITED:
        return Answer(kinds.RATE_LIMITED, entry.code, entry.meaning)
    if (doubt := _doubt(raw, signer)) is not None:
        return Answer(kinds.UNKNOWN, detail=doubt)
    return raw, entry


def _amount(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except InvalidOperation:
        return None


def refund_answer(body: bytes, signer: Signer, trade_no: str) -> Answer:
    """What the answer to `alipay.trade.refund` for `trade_no` proves."""
    believed = _believed(body, METHOD_REFUND, signer, RefundKind)
    if isinstance(believed, Answer):
        return believed
    raw, entry = believed
    if entry is not None:
        kind = RefundKind.FAILED if entry.effect is Effect.FAILED else RefundKind.UNKNOWN
        return Answer(kind, entry.code, entry.meaning, fields=raw.fields)
    fields = raw.fields
    if fields.get("trade_no") != trade_no:
        return Answer(RefundKind.UNKNOWN, detail=f"answer for trade {fields.get('trade_no')!r}", fields=fields)
    change = fields.get("fund_change")
    if change == "Y":
        return Answer(RefundKind.SUCCEEDED, SUCCESS, "fund_change=Y", fields=fields)
    if change == "N":
        return Answer(RefundKind.ALREADY_DONE, SUCCESS, "fund_change=N: confirm by the query", fields=fields)
    return Answer(RefundKind.UNKNOWN, SUCCESS, f"10000 with fund_change={change!r}", fields=fields)


def query_answer(body: bytes, signer: Signer, trade_no: str, out_request_no: str) -> Answer:
    """What the answer to `alipay.trade.fastpay.refund.query` for this refund proves.

    10000 with `refund_amount` is a refund that exists; with `refund_status` (asynchronous refunds) only
    REFUND_SUCCESS is paid. 10000 without `refund_amount`, or ACQ.TRADE_NOT_EXIST, is no refund at all.
    """
    believed = _believed(body, METHOD_REFUND_QUERY, signer, QueryKind)
    if isinstance(believed, Answer):
        return believed
    raw, entry = believed
    if entry is not None:
        kind = QueryKind.NOT_REFUNDED if entry.code in TRADE_UNKNOWN_TO_ALIPAY else QueryKind.UNKNOWN
        return Answer(kind, entry.code, entry.meaning, fields=raw.fields)
    fields = raw.fields
    if fields.get("out_request_no") not in (None, out_request_no) or fields.get("trade_no") not in (None, trade_no):
        return Answer(QueryKind.UNKNOWN, detail="the answer is about another refund", fields=fields)
    amount = _amount(fields.get("refund_amount"))
    if amount is None:
        return Answer(QueryKind.NOT_REFUNDED, SUCCESS, "no such refund", fields=fields)
    status = fields.get("refund_status")
    if status not in (None, "REFUND_SUCCESS"):
        return Answer(QueryKind.UNKNOWN, SUCCESS, f"refund_status={status}", amount, fields=fields)
    return Answer(QueryKind.REFUNDED, SUCCESS, "refunded", amount, fields=fields)
