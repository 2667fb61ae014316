"""Calls to Shopify's GraphQL APIs (Admin and Payments Apps) and the documents we send.

Every failure becomes one `ShopifyApiError` that says whether trying again can help, so `report` maps it to
retry or dead and `reconcile` to "try the next round".
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from refund_adapter.plugin_api import retry_after_seconds

TOKEN_HEADER = "X-Shopify-Access-Token"
_REASON_BYTES = 200
# Retrying cannot fix these: the token is refused (401), lacks a scope or the shop is gone (403), or the API
# version or shop does not exist (404).
_FINAL_STATUSES = frozenset({401, 403, 404})

# Observer mode: the result on the order, as a tag (visible in the orders list) and a JSON metafield.
WRITE_BACK = """
mutation AlipayRefundResult($orderId: ID!, $tags: [String!]!, $metafields: [MetafieldsSetInput!]!) {
  tagsAdd(id: $orderId, tags: $tags) {
    userErrors { field message }
  }
  metafieldsSet(metafields: $metafields) {
    metafields { id }
    userErrors { field message code }
  }
}
"""

# Payment-provider mode: the refund session's final state (Payments Apps API).
RESOLVE_SESSION = """
mutation RefundSessionResolve($id: ID!) {
  refundSessionResolve(id: $id) {
    refundSession { id }
    userErrors { field message code }
  }
}
"""
REJECT_SESSION = """
mutation RefundSessionReject($id: ID!, $reason: RefundSessionRejectionReasonInput!) {
  refundSessionReject(id: $id, reason: $reason) {
    refundSession { id }
    userErrors { field message code }
  }
}
"""

# A refund with what the trade number sources need: the refunded (parent) transaction and the order's attributes.
_REFUND_FIELDS = """
fragment AlipayRefund on Refund {
  id
  note
  order { id customAttributes { key value } }
  transactions(first: 20) {
    nodes {
      id
      kind
      status
      amountSet { presentmentMoney { amount currencyCode } }
      parentTransaction {
        id
        authorizationCode
        receiptJson
        amountSet { presentmentMoney { amount currencyCode } }
      }
    }
  }
}
"""
REFUNDS_BY_ID = (
    """
query AlipayRefunds($ids: [ID!]!) {
  nodes(ids: $ids) { ...AlipayRefund }
}
"""
    + _REFUND_FIELDS
)
RECENT_ORDERS = (
    """
query AlipayRecentRefunds($query: String!, $after: String) {
  orders(first: 50, after: $after, query: $query, sortKey: UPDATED_AT) {
    pageInfo { hasNextPage endCursor }
    nodes { updatedAt refunds(first: 50) { ...AlipayRefund } }
  }
}
"""
    + _REFUND_FIELDS
)


class ShopifyApiError(Exception):
    """A GraphQL call that did not get through; `final` when retrying cannot help (the operator must act)."""

    def __init__(self, reason: str, *, final: bool = False, retry_after_seconds: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.final = final
        self.retry_after_seconds = retry_after_seconds


async def call(
    http: aiohttp.ClientSession, url: str, token: str, document: str, variables: Mapping[str, Any]
) -> dict[str, Any]:
    """POST one GraphQL document; its `data`, or `ShopifyApiError` (HTTP errors, throttling, top-level errors)."""
    headers = {TOKEN_HEADER: token, "Content-Type": "application/json", "Accept": "application/json"}
    body = json.dumps({"query": document, "variables": dict(variables)})
    try:
        async with http.post(url, data=body, headers=headers, allow_redirects=False) as resp:
            if resp.status != 200:
                text = (await resp.content.read(_REASON_BYTES)).decode(errors="replace")
                raise _http_error(resp.status, text, resp.headers.get("Retry-After"))
            answer = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # ValueError: a body that is not JSON
        raise ShopifyApiError(f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(answer, dict):
        raise ShopifyApiError("the answer is not a JSON object")
    errors = answer.get("errors")
    if errors:
        raise _graphql_error(errors, answer.get("extensions"))
    data = answer.get("data")
    if not isinstance(data, dict):
        raise ShopifyApiError("the answer has no data")
    return data


def user_errors(*payloads: Any) -> list[dict[str, Any]]:
    """The userErrors of mutation payloads (a missing payload counts as an error: nothing was done)."""
    found: list[dict[str, Any]] = []
    for payload in payloads:
        if not isinstance(payload, dict):
            found.append({"message": "the mutation returned nothing"})
            continue
        found += [error for error in payload.get("userErrors") or () if isinstance(error, dict)]
    return found


def describe(errors: Sequence[Mapping[str, Any]]) -> str:
    """userErrors as one line an operator can read in the dead letters."""
    return "; ".join(
        f"{error.get('code') or 'ERROR'} {'.'.join(map(str, error.get('field') or ()))}: {error.get('message')}".strip()
        for error in errors
    )


def _http_error(status: int, text: str, retry_after: str | None) -> ShopifyApiError:
    reason = f"HTTP {status}: {text}"
    if status in (401, 403):
        reason = f"HTTP {status}: Shopify refused the access token or its scopes; check access_token ({text})"
    wait = retry_after_seconds(retry_after)
    return ShopifyApiError(reason, final=status in _FINAL_STATUSES, retry_after_seconds=wait)


def _graphql_error(errors: Any, extensions: Any) -> ShopifyApiError:
    items = [error for error in errors if isinstance(error, dict)] if isinstance(errors, list) else []
    codes = {(error.get("extensions") or {}).get("code") for error in items}
    messages = "; ".join(str(error.get("message")) for error in items) or str(errors)
    if "THROTTLED" in codes:
        return ShopifyApiError(f"THROTTLED: {messages}", retry_after_seconds=_throttle_wait(extensions))
    return ShopifyApiError(f"GraphQL errors: {messages}", final="ACCESS_DENIED" in codes)


def _throttle_wait(extensions: Any) -> float | None:
    """Seconds until the bucket holds what the query costs, from Shopify's cost extension (None if unknown)."""
    try:
        cost = extensions["cost"]
        status = cost["throttleStatus"]
        missing = float(cost["requestedQueryCost"]) - float(status["currentlyAvailable"])
        return max(0.0, missing / float(status["restoreRate"]))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
