"""The final result, reported to Saleor with `transactionEventReport` (saleor/graphql/payment/mutations/
transaction/transaction_event_report.py), and what Saleor's answer means for the outbox.

Saleor keeps one event per (pspReference, type, amount): a report repeated after a crash or a lost answer comes
back `alreadyProcessed` and counts as delivered. The same reference and type with another amount is
INCORRECT_DETAILS, which no retry changes. Amounts travel as JSON strings (Saleor's `PositiveDecimal` parses
`str(value)`), never floats.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from refund_adapter.plugin_api import DeliveryResult, RefundOutcome, alipay_code_meaning, retry_after_seconds

from .settings import SaleorShop

SUCCESS = "REFUND_SUCCESS"
FAILURE = "REFUND_FAILURE"
DOCUMENT = """\
mutation AlipayRefundResult($id: ID!, $type: TransactionEventTypeEnum!, $amount: PositiveDecimal,
                            $pspReference: String!, $message: String) {
  transactionEventReport(id: $id, type: $type, amount: $amount, pspReference: $pspReference, message: $message) {
    alreadyProcessed
    transactionEvent { id }
    errors { field code message }
  }
}
"""
MAX_MESSAGE_CHARS = 512  # Saleor truncates beyond this
_REASON_BYTES = 200
# Answers retrying cannot change: the token is refused (401/403), the document or URL is wrong (400/404).
_DEAD_STATUSES = frozenset({400, 401, 403, 404})
# Mutation errors worth a retry; the others (NOT_FOUND, INCORRECT_DETAILS, INVALID, REQUIRED...) never change.
_PASSING_ERRORS = frozenset({"GRAPHQL_ERROR"})


def variables(outcome: RefundOutcome) -> dict[str, Any]:
    """The mutation's variables for `outcome`: the reference we answered the request with, the amount, the code."""
    request = outcome.request
    return {
        "id": request.context["transaction_id"],
        "type": SUCCESS if outcome.succeeded else FAILURE,
        "amount": f"{request.amount:.2f}",
        "pspReference": request.context["psp_reference"],
        "message": message(outcome),
    }


def message(outcome: RefundOutcome) -> str:
    """What the merchant reads on the event: the Alipay code (or ours, for a refund that never reached Alipay),
    its meaning when Alipay documents it, and the batch."""
    batch = f", Alipay batch {outcome.batch_no}" if outcome.batch_no else ""
    if outcome.succeeded:
        return f"Refunded through Alipay: {outcome.code or 'SUCCESS'}{batch}"[:MAX_MESSAGE_CHARS]
    code = outcome.code or "UNKNOWN"
    meaning = alipay_code_meaning(code)
    return f"Not refunded through Alipay: {code}{f' ({meaning})' if meaning else ''}{batch}"[:MAX_MESSAGE_CHARS]


async def send(http: aiohttp.ClientSession, shop: SaleorShop, outcome: RefundOutcome) -> DeliveryResult:
    """POST the mutation with the app's token; what its answer means for the outbox."""
    headers = {"Authorization": f"Bearer {shop.app_token}", "Content-Type": "application/json"}
    body = json.dumps({"query": DOCUMENT, "variables": variables(outcome)})
    try:
        async with http.post(shop.api_url, data=body, headers=headers, allow_redirects=False) as resp:
            if resp.status != 200:
                reason = f"HTTP {resp.status}: {(await resp.content.read(_REASON_BYTES)).decode(errors='replace')}"
                if resp.status in _DEAD_STATUSES:
                    return DeliveryResult.dead(reason)
                return DeliveryResult.retry(reason, retry_after_seconds(resp.headers.get("Retry-After")))
            answer = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # ValueError: an answer that is not JSON
        return DeliveryResult.retry(f"{type(exc).__name__}: {exc}")
    return judge(answer)


def judge(answer: Any) -> DeliveryResult:
    """Delivered, retry or dead, from the GraphQL answer to the mutation."""
    if not isinstance(answer, dict):
        return DeliveryResult.retry("the answer is not a JSON object")
    errors = [error for error in answer.get("errors") or () if isinstance(error, dict)]
    if errors:
        codes = {((error.get("extensions") or {}).get("exception") or {}).get("code") for error in errors}
        reason = "GraphQL errors: " + "; ".join(str(error.get("message")) for error in errors)
        if "PermissionDenied" in codes:  # the token is refused or the app lacks HANDLE_PAYMENTS
            return DeliveryResult.dead(f"{reason} (check app_token and the app's HANDLE_PAYMENTS permission)")
        return DeliveryResult.retry(reason)
    result = (answer.get("data") or {}).get("transactionEventReport")
    if not isinstance(result, dict):
        return DeliveryResult.retry("the answer has no transactionEventReport")
    problems = [error for error in result.get("errors") or () if isinstance(error, dict)]
    if problems:
        reason = "transactionEventReport: " + "; ".join(
            f"{error.get('code')} {error.get('field')}: {error.get('message')}" for error in problems)
        if all(str(error.get("code")).upper() in _PASSING_ERRORS for error in problems):
            return DeliveryResult.retry(reason)
        return DeliveryResult.dead(reason)
    return DeliveryResult.delivered()  # a new event, or `alreadyProcessed`: Saleor has the result either way
