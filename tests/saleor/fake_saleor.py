"""A fake Saleor instance on 127.0.0.1: the JWKS that signs its webhooks, the Celery task that delivers
`TRANSACTION_REFUND_REQUESTED`, and the GraphQL endpoint's `transactionEventReport`.

It behaves as saleor/saleor does where the plugin depends on it: webhooks are signed as `jwt_manager.jws_encode`
signs them (RS256, detached, `b64: false`, `kid` in the header) with one key at a time, and the JWKS serves only
that key, so rotating it withdraws the old one; a delivery is retried on a 5xx only (five times) and the answer's
`pspReference` is recorded on the REFUND_REQUEST event; `transactionEventReport` keeps one event per (transaction,
pspReference, type) and answers a repeat `alreadyProcessed` (another amount: INCORRECT_DETAILS), and a request
without the app's token gets a PermissionDenied error in an HTTP 200, as Saleor's GraphQL view answers. Built on the
kit's `FakePlatform`: every request is recorded in `received`, and `answer_next` scripts HTTP errors.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import re
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any

import aiohttp
import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from refund_adapter_saleor.payload import psp_reference

from refund_adapter.testing import Call, FakePlatform

TOKEN = "saleor-app-token"
TRADE_NO = "2026112522000000000000000001"
EVENT = "transaction_refund_requested"
JWKS_PATH = "/.well-known/jwks.json"
GRAPHQL_PATH = "/graphql/"
MAX_DELIVERY_RETRIES = 5  # handle_transaction_request_task: retry_kwargs={"max_retries": 5}
_key_numbers = itertools.count(1)


@cache
def signing_key(number: int) -> rsa.RSAPrivateKey:
    """The `number`th test key (made once per test run: 2048-bit keys take a while)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey

    def jwk(self) -> dict[str, Any]:
        """The public JWK as Saleor's `get_jwks` writes it."""
        return json.loads(RSAAlgorithm.to_jwk(self.private.public_key())) | {"use": "sig", "kid": self.kid,
                                                                            "alg": "RS256"}

    def sign(self, body: bytes) -> str:
        """`Saleor-Signature`, exactly as saleor/core/jwt_manager.py `jws_encode` makes it."""
        return jwt.api_jws.encode(body, key=self.private, algorithm="RS256",
                                  headers={"kid": self.kid, "crit": ["b64"]}, is_payload_detached=True)


def new_key() -> SigningKey:
    number = next(_key_numbers)
    return SigningKey(f"test-kid-{number}", signing_key(number % 3))  # three key pairs are plenty of variety


def hmac_signature(secret_key: str, body: bytes) -> str:
    """The deprecated `Saleor-Signature` of a webhook with a secretKey: hex HMAC-SHA256 of the body."""
    return hmac.new(secret_key.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Transaction:
    id: str
    psp_reference: str
    charged: Decimal
    currency: str = "CNY"
    refund_pending: Decimal = Decimal(0)
    refunded: Decimal = Decimal(0)
    order_id: str = field(default_factory=lambda: _gid("Order", uuid.uuid4()))
    events: list[dict[str, Any]] = field(default_factory=list)  # {type, amount, pspReference, message}

    def event(self, type_: str, psp_reference: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e["type"] == type_ and e["pspReference"] == psp_reference), None)


@dataclass
class Delivery:
    """One TRANSACTION_REFUND_REQUESTED as Saleor's task sent it: each attempt's status, the last answer."""

    body: bytes
    statuses: list[int] = field(default_factory=list)
    text: str = ""  # the last answer's body
    answer: Any = None  # the last answer, when it was a 2xx


@dataclass
class FakeSaleor(FakePlatform):
    token: str = TOKEN
    key: SigningKey = field(default_factory=new_key)
    jwks_down: bool = False  # the JWKS answers 503 while set
    transactions: dict[str, Transaction] = field(default_factory=dict)
    reports: list[dict[str, Any]] = field(default_factory=list)  # variables of every accepted transactionEventReport
    violations: list[str] = field(default_factory=list)  # what a real Saleor would have refused; tests expect none

    @property
    def jwks_fetches(self) -> int:
        return sum(call.path == JWKS_PATH for call in self.received)

    @property
    def api_url(self) -> str:
        """What Saleor sends in Saleor-Api-Url: `build_absolute_uri(reverse("api"))`."""
        return self.url + GRAPHQL_PATH

    def rotate_key(self) -> SigningKey:
        """Sign with a new key from now on; the JWKS serves only the new one. Returns the old key."""
        old, self.key = self.key, new_key()
        return old

    # --- the shop's data ---------------------------------------------------------------------------------

    def add_transaction(self, charged: str = "100.00", *, trade_no: str = TRADE_NO, currency: str = "CNY") -> str:
        transaction = Transaction(_gid("TransactionItem", uuid.uuid4()), trade_no, Decimal(charged), currency)
        self.transactions[transaction.id] = transaction
        return transaction.id

    def transaction_of(self, trade_no: str) -> str:
        """The id of the (last) transaction paid by `trade_no`."""
        return [t.id for t in self.transactions.values() if t.psp_reference == trade_no][-1]

    def answered_with(self, transaction_id: str, psp: str, amount: str) -> None:
        """Record, as Saleor does with the webhook's answer, that the refund request got reference `psp`."""
        self.transactions[transaction_id].events.append(
            {"type": "REFUND_REQUEST", "amount": Decimal(amount), "pspReference": psp, "message": ""})

    def holds_result(self, transaction_id: str, psp: str, amount: str, type_: str = "REFUND_SUCCESS") -> None:
        """An event Saleor already has (a report that got through, its answer lost)."""
        self.transactions[transaction_id].events.append(
            {"type": type_, "amount": Decimal(amount), "pspReference": psp, "message": "", "id": _gid("E", psp)})

    def refund_requested(self, transaction_id: str, amount: str, *, granted_refund: str | None = None,
                         issued_at: str = "2026-11-25T10:34:55.123456+00:00") -> bytes:
        """The payload of the adapter's subscription for a refund of `amount`; Saleor's bookkeeping included
        (the requested amount moves from charged to refund-pending, as REFUND_REQUEST does)."""
        transaction = self.transactions[transaction_id]
        transaction.charged -= Decimal(amount)
        transaction.refund_pending += Decimal(amount)
        payload = {
            "issuedAt": issued_at,
            "action": {"actionType": "REFUND", "amount": float(amount), "currency": transaction.currency},
            "transaction": {
                "id": transaction.id,
                "pspReference": transaction.psp_reference,
                "chargedAmount": {"amount": float(transaction.charged)},
                "refundPendingAmount": {"amount": float(transaction.refund_pending)},
                "refundedAmount": {"amount": float(transaction.refunded)},
                "order": {"id": transaction.order_id},
            },
            "grantedRefund": {"id": granted_refund, "reason": "wrong size"} if granted_refund else None,
        }
        return json.dumps(payload).encode()  # floats written as Saleor's JSON encoder writes them

    def headers(self, body: bytes, *, signature: str | None = None, event: str = EVENT,
                api_url: str | None = None) -> dict[str, str]:
        """The headers of `send_webhook_using_http`, signed with the current key unless `signature` is given."""
        return {
            "Content-Type": "application/json",
            "Saleor-Event": event,
            "Saleor-Domain": "shop.example",
            "Saleor-Signature": self.key.sign(body) if signature is None else signature,
            "Saleor-Api-Url": self.api_url if api_url is None else api_url,
        }

    async def deliver(self, http: aiohttp.ClientSession, target_url: str, body: bytes, *, backoff: float = 0.0,
                      **headers: Any) -> Delivery:
        """Send the webhook as `handle_transaction_request_task` does: again after a 5xx (at most five times, after
        `backoff` seconds doubling each time: Saleor's is 10), then record the answer's pspReference on the
        REFUND_REQUEST event."""
        delivery = Delivery(body)
        for attempt in range(1 + MAX_DELIVERY_RETRIES):
            if attempt:
                await asyncio.sleep(backoff * 2 ** (attempt - 1))  # Saleor's retry schedule, scaled down
            async with http.post(target_url, data=body, headers=self.headers(body, **headers)) as resp:
                delivery.statuses.append(resp.status)
                delivery.text = await resp.text()
            if resp.status < 500:
                break
        if 200 <= delivery.statuses[-1] < 300:
            delivery.answer = json.loads(delivery.text)
            payload = json.loads(body)
            self.answered_with(payload["transaction"]["id"], delivery.answer.get("pspReference"),
                               str(payload["action"]["amount"]))
        return delivery

    # --- the server --------------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_get(JWKS_PATH, self._jwks)
        app.router.add_post(GRAPHQL_PATH, self._graphql)

    async def _jwks(self, request: web.Request) -> web.Response:
        if self.jwks_down:
            return web.Response(status=503)
        return web.json_response({"keys": [self.key.jwk()]})

    async def _graphql(self, request: web.Request) -> web.Response:
        body = await request.json()
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"data": {"transactionEventReport": None}, "errors": [{
                "message": "To access this path, you need one of the following permissions: HANDLE_PAYMENTS",
                "extensions": {"exception": {"code": "PermissionDenied"}}}]})
        try:
            result = self._transaction_event_report(body["query"], body["variables"])
        except (AssertionError, KeyError, TypeError, ArithmeticError) as exc:
            self.violations.append(f"{type(exc).__name__}: {exc}")
            return web.json_response({"errors": [{"message": f"invalid request: {exc}"}]}, status=400)
        return web.json_response({"data": {"transactionEventReport": result}})

    def _transaction_event_report(self, document: str, variables: dict[str, Any]) -> dict[str, Any]:
        flat = " ".join(document.split())
        assert re.match(r"mutation \w+\(", flat) and "transactionEventReport(" in flat, flat
        assert all(name in flat for name in ("alreadyProcessed", "errors { field code message }")), flat
        type_, psp, amount, message = (variables["type"], variables["pspReference"], variables["amount"],
                                       variables.get("message", ""))
        assert type_ in ("REFUND_SUCCESS", "REFUND_FAILURE"), type_
        assert isinstance(psp, str) and psp and isinstance(message, str) and len(message) <= 512, variables
        assert isinstance(amount, str) and re.fullmatch(r"\d+\.\d\d", amount), f"amount {amount!r}: a string"
        transaction = self.transactions.get(variables["id"])
        if transaction is None:
            return _errors("NOT_FOUND", "id", "Couldn't resolve to a node.")
        assert transaction.event("REFUND_REQUEST", psp), f"{type_} for {psp}, which no refund request was answered with"
        existing = transaction.event(type_, psp)
        if existing is not None and existing["amount"] != Decimal(amount):
            return _errors("INCORRECT_DETAILS", "pspReference", "The transaction with provided `pspReference` and "
                           "`type` already exists with different amount.")
        self.reports.append(dict(variables))
        already_processed = existing is not None
        if existing is None:
            existing = {"type": type_, "amount": Decimal(amount), "pspReference": psp, "message": message,
                        "id": _gid("TransactionEvent", len(self.reports))}
            transaction.events.append(existing)
            transaction.refund_pending -= Decimal(amount)
            if type_ == "REFUND_SUCCESS":
                transaction.refunded += Decimal(amount)
            else:
                transaction.charged += Decimal(amount)
        return {"alreadyProcessed": already_processed, "transactionEvent": {"id": existing["id"]}, "errors": []}

    def results(self, transaction_id: str) -> list[dict[str, Any]]:
        """The transaction's REFUND_SUCCESS and REFUND_FAILURE events, in order."""
        return [e for e in self.transactions[transaction_id].events if e["type"] != "REFUND_REQUEST"]


def _errors(code: str, field_name: str, message: str) -> dict[str, Any]:
    return {"alreadyProcessed": False, "transactionEvent": None,
            "errors": [{"field": field_name, "code": code, "message": message}]}


def _gid(kind: str, pk: object) -> str:
    return base64.b64encode(f"{kind}:{pk}".encode()).decode()


def section(fake: FakeSaleor, **shop: Any) -> dict[str, Any]:
    """The operator's `platforms.saleor` for the fake instance."""
    return {"shops": [{"api_url": fake.api_url, "app_token": TOKEN, "alipay_account": "main"} | shop]}


def is_report(call: Call) -> bool:
    """Whether a request the fake received is a report (the plugin calls nothing else on the GraphQL API)."""
    return call.method == "POST" and call.path == GRAPHQL_PATH


def reference(transaction_id: str, refund_part: str) -> str:
    """Our reference for the refund `refund_part` (granted refund id or issuedAt) of a transaction."""
    return psp_reference(f"{transaction_id}:{refund_part}")
