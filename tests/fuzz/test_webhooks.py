"""Every platform's webhook routes, fuzzed over raw HTTP: forged and hostile requests from anyone, and validly
signed bodies carrying a shop's own bugs (signed with the test shop's secret by the plugins' own helpers)."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from refund_adapter_generic import standard_webhooks
from refund_adapter_woocommerce import webhook as wire

from ..shopify.fake_shopify import DOMAIN, session_body, webhook_headers
from ..woocommerce.fake_woocommerce import WEBHOOK_SECRET
from .harness import (
    CLIENT_CERT_HEADER,
    GENERIC_SECRET,
    GENERIC_SHOP,
    PAID_TRADE,
    PAYMENT,
    SESSION_SHOP,
    Background,
    World,
    as_headers,
    exchange,
    fuzz,
    request_bytes,
    server_randomness,
)
from .strategies import (
    amount_text,
    any_text,
    content_type,
    deep,
    hostile_document,
    hostile_headers,
    json_amount,
    json_integer,
    json_value,
    path_piece,
    raw_value,
)

pytestmark = server_randomness

query = st.one_of(st.just(b""), st.lists(st.tuples(path_piece, path_piece), max_size=3).map(
    lambda pairs: b"?" + b"&".join(k + b"=" + v for k, v in pairs)))


def post(path: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    return request_bytes(b"POST", path, headers, body)


# --- generic ------------------------------------------------------------------------------------------------

GENERIC_BODY = {"refund_id": "r-1", "order_id": "o-1", "trade_no": PAID_TRADE, "amount": "10.00",
                "currency": "CNY", "reason": "damaged", "paid_amount": "100.00"}
text_or_json = st.one_of(any_text, json_value)
generic_bodies = hostile_document(GENERIC_BODY, {
    "refund_id": st.one_of(st.integers(1, 10**6).map(lambda n: f"r-{n}"), text_or_json),
    "order_id": text_or_json,
    "trade_no": st.one_of(st.sampled_from([PAID_TRADE, PAID_TRADE + "\n", " " + PAID_TRADE, "x" * 65]), any_text),
    "amount": json_amount, "paid_amount": json_amount, "currency": st.one_of(st.just("cny"), text_or_json),
    "reason": text_or_json,
})


@fuzz
@given(tail=path_piece, query=query, headers=st.lists(st.tuples(
    st.sampled_from([b"webhook-id", b"webhook-timestamp", b"webhook-signature", b"Content-Type"]), raw_value),
    max_size=4), extra=hostile_headers, body=generic_bodies)
@example(tail=GENERIC_SHOP.encode(), query=b"", headers=[(b"webhook-id", b"\xff"), (b"webhook-timestamp", b"1"),
                                                          (b"webhook-signature", b"v1,\xff")], extra=[], body=b"{}")
@example(tail=b"x" * 7000, query=b"", headers=[], extra=[], body=b"{}")  # a 7 KB log line, once
@example(tail=GENERIC_SHOP.encode(), query=b"", headers=[], extra=[(b"Content-Encoding", b"gzip")],
         body=b"{}")  # a body that is not in its Content-Encoding: RequestPayloadError from request.read(), once
def test_generic_forged(app: Background, logs: pytest.LogCaptureFixture, tail: bytes, query: bytes,
                        headers: list[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]], body: bytes) -> None:
    answer = exchange(app, logs, "generic (unsigned, forged)", post(b"/webhooks/generic/" + tail + query,
                                                                    headers + extra, body))
    assert answer.status >= 400


def generic_signed(msg_id: bytes, timestamp: bytes, body: bytes, kind: bytes) -> list[tuple[bytes, bytes]]:
    """Standard Webhooks headers over any bytes (the adapter reads a header that is not UTF-8 as escaped bytes)."""
    as_read = (part.decode("utf-8", "surrogateescape") for part in (msg_id, timestamp))
    signature = standard_webhooks.sign(GENERIC_SECRET, next(as_read), next(as_read), body)  # type: ignore[arg-type]
    return [(b"webhook-id", msg_id), (b"webhook-timestamp", timestamp),
            (b"webhook-signature", signature.encode()), (b"Content-Type", kind)]


now_ish = st.integers(-200, 200).map(lambda skew: str(int(time.time()) + skew).encode())
timestamps = st.one_of(now_ish, now_ish, st.integers(-(10**12), 10**12).map(lambda t: str(t).encode()),
                       st.integers(13, 6000).map(lambda n: b"9" * n), raw_value)


@fuzz
@given(msg_id=st.one_of(st.integers(1, 10**6).map(lambda n: f"msg-{n}".encode()), raw_value.filter(bool)),
       timestamp=timestamps, body=generic_bodies, kind=content_type)
@example(msg_id=b"msg-\xff", timestamp=b"", body=json.dumps(GENERIC_BODY).encode(), kind=b"application/json")
@example(msg_id=b"m", timestamp=b"9" * 5000, body=json.dumps(GENERIC_BODY).encode(), kind=b"application/json")
@example(msg_id=b"m", timestamp=b"", body=json.dumps({**GENERIC_BODY, "refund_id": "\udfff"}).encode(),
         kind=b"application/json")
@example(msg_id=b"m", timestamp=b"", body=deep(100_000), kind=b"application/json")
def test_generic_signed(app: Background, logs: pytest.LogCaptureFixture, msg_id: bytes, timestamp: bytes,
                        body: bytes, kind: bytes) -> None:
    """Signed by the shop's secret: refused with a problem and nothing stored, or accepted; a replay of an
    accepted one stores nothing more."""
    timestamp = timestamp or str(int(time.time())).encode()
    raw = post(b"/webhooks/generic/" + GENERIC_SHOP.encode(), generic_signed(msg_id, timestamp, body, kind), body)
    if exchange(app, logs, "generic (signed)", raw).status == 200:
        replayed = exchange(app, logs, "generic (signed, replayed)", raw, replay=True)
        assert replayed.status == 200


# --- shopify: refunds/create ---------------------------------------------------------------------------------

SHOPIFY_REFUND = {"id": 4001, "order_id": 450789469, "transactions": [
    {"id": 5001, "kind": "refund", "status": "success", "amount": "10.00", "currency": "CNY"}]}
transaction = st.fixed_dictionaries({}, optional={"id": json_integer, "kind": st.one_of(st.just("refund"), any_text),
                                                  "status": st.sampled_from(["success", "pending", "failure"]),
                                                  "currency": st.one_of(st.just("CNY"), any_text),
                                                  "amount": json_amount})
shopify_bodies = hostile_document(SHOPIFY_REFUND, {
    "id": json_integer, "order_id": json_integer,
    "transactions": st.one_of(st.lists(transaction, max_size=3), json_value)})


@fuzz
@given(domain=st.one_of(st.just(DOMAIN.encode()), raw_value), hmac=raw_value, topic=raw_value,
       extra=hostile_headers, path=st.sampled_from([b"/webhooks/shopify", b"/webhooks/shopify/other"]),
       body=shopify_bodies)
def test_shopify_forged(app: Background, logs: pytest.LogCaptureFixture, domain: bytes, hmac: bytes, topic: bytes,
                        extra: list[tuple[bytes, bytes]], path: bytes, body: bytes) -> None:
    headers = [(b"X-Shopify-Shop-Domain", domain), (b"X-Shopify-Hmac-Sha256", hmac), (b"X-Shopify-Topic", topic)]
    assert exchange(app, logs, "shopify refunds/create (forged)", post(path, headers + extra, body)).status >= 400


@fuzz
@given(topic=st.one_of(st.just("refunds/create"), st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E)),
                       st.integers(3000, 7000).map(lambda n: "t" * n)),
       domain=st.sampled_from([DOMAIN, DOMAIN.upper(), f" {DOMAIN} ", SESSION_SHOP]), body=shopify_bodies,
       unsigned=st.lists(st.tuples(st.sampled_from([b"X-Shopify-Webhook-Id", b"X-Shopify-Event-Id"]), raw_value),
                         max_size=2))
@example(topic="refunds/create", domain=DOMAIN, body=b"[" * 100_000, unsigned=[])
@example(topic="t" * 7000, domain=DOMAIN, body=b"{}", unsigned=[])  # a 7 KB log line, once
@example(topic="refunds/create", domain=DOMAIN, body=json.dumps(SHOPIFY_REFUND).encode(),
         unsigned=[(b"X-Shopify-Webhook-Id", b"w" * 7000)])  # HMAC covers the body only: logged whole, once
def test_shopify_signed(app: Background, logs: pytest.LogCaptureFixture, topic: str, domain: str, body: bytes,
                        unsigned: list[tuple[bytes, bytes]]) -> None:
    """Signed with the shop's client secret; the headers the HMAC does not cover may be anything."""
    headers = {name: value for name, value in as_headers(webhook_headers(body, topic=topic, domain=domain))}
    raw = post(b"/webhooks/shopify", list({**headers, **dict(unsigned)}.items()), body)
    if exchange(app, logs, "shopify refunds/create (signed)", raw).status == 200:
        assert exchange(app, logs, "shopify refunds/create (signed, replayed)", raw, replay=True).status == 200


# --- shopify: refund sessions --------------------------------------------------------------------------------

session_bodies = hostile_document(session_body("s-1", PAYMENT), {
    "id": st.one_of(st.integers(1, 10**6).map(lambda n: f"s-{n}"), text_or_json),
    "gid": text_or_json, "payment_id": st.one_of(st.just(PAYMENT), text_or_json),
    "amount": st.one_of(amount_text, json_amount), "currency": st.one_of(st.just("CNY"), text_or_json)})


@fuzz
@given(cert=st.one_of(st.just(b"SUCCESS"), raw_value), domain=st.one_of(st.just(SESSION_SHOP.encode()), raw_value),
       kind=content_type, body=session_bodies)
@example(cert=b"SUCCESS", domain=SESSION_SHOP.encode(), kind=b"application/json",
         body=json.dumps(session_body("s-1", "\ud800")).encode())
def test_shopify_refund_session(app: Background, logs: pytest.LogCaptureFixture, cert: bytes, domain: bytes,
                                kind: bytes, body: bytes) -> None:
    """Refund sessions: Shopify's client certificate (checked by the proxy in front, which sets the header)
    is what authenticates them, so with it every body is one a shop could send."""
    headers = [(CLIENT_CERT_HEADER.encode(), cert), (b"Shopify-Shop-Domain", domain), (b"Content-Type", kind)]
    raw = post(b"/webhooks/shopify/refund-session", headers, body)
    if exchange(app, logs, "shopify refund-session", raw).status == 201:
        assert exchange(app, logs, "shopify refund-session (replayed)", raw, replay=True).status == 201


# --- woocommerce ---------------------------------------------------------------------------------------------

@fuzz
@given(source=raw_value, signature=raw_value, topic=raw_value, extra=hostile_headers,
       body=st.one_of(st.sampled_from([b"webhook_id=12", b"webhook_id=" + b"9" * 5000, b"webhook_id=\xff"]),
                      hostile_document({"id": 727}, {"id": json_integer})))
def test_woocommerce_forged(app: Background, logs: pytest.LogCaptureFixture, source: bytes, signature: bytes,
                            topic: bytes, extra: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [(b"X-WC-Webhook-Source", source), (b"X-WC-Webhook-Signature", signature),
               (b"X-WC-Webhook-Topic", topic)]
    exchange(app, logs, "woocommerce (forged)", post(b"/webhooks/woocommerce", headers + extra, body))


def woocommerce_delivery(world: World, topic: str, body: bytes, delivery_id: bytes = b"delivery-1") -> bytes:
    """A delivery signed as WooCommerce signs it: the body only, so the delivery id header may be anything."""
    headers = as_headers({"Content-Type": "application/json", wire.SOURCE: world.woocommerce.url + "/",
                          wire.TOPIC: topic, wire.SIGNATURE: wire.sign(WEBHOOK_SECRET, "sha256", body),
                          wire.DELIVERY_ID: delivery_id})
    return post(b"/webhooks/woocommerce", headers, body)


@fuzz
@given(data=st.data(), refund_amount=amount_text, topic=st.sampled_from([wire.ORDER_UPDATED, wire.ORDER_REFUNDED,
                                                                          "order.created", "\u00e9"]))
def test_woocommerce_signed(app: Background, logs: pytest.LogCaptureFixture, data: st.DataObject,
                            refund_amount: str, topic: str) -> None:
    """A real order in the fake store with a refund of any amount, announced by a signed webhook whose body is
    the order (or the action's `arg`) with hostile edits."""
    world = app.world
    assert world is not None
    order_id = 700 + len(world.woocommerce.orders)
    order = world.woocommerce.add_order(order_id, trade_no=PAID_TRADE)
    world.woocommerce.add_refund(order_id, refund_amount)
    if topic == wire.ORDER_REFUNDED:
        base = {"action": "woocommerce_order_refunded", "arg": order_id}
        fields = {"arg": st.one_of(json_integer, st.integers(20, 6000).map(lambda n: "9" * n))}
    else:
        base, fields = order, {"id": json_integer, "total": json_amount, "currency": any_text,
                               "transaction_id": any_text, "refunds": json_value}
    body = data.draw(hostile_document(base, fields), label="body")
    raw = woocommerce_delivery(world, topic, body, data.draw(st.one_of(st.just(b"delivery-1"), raw_value), "id"))
    # The plugin remembers which refunds of an order it fetched before the core decides on them (by design: the
    # poll ignores that memo, so a refund refused now is found and judged again); nothing else may change.
    memo = ("woocommerce", "refund:")
    if exchange(app, logs, "woocommerce (signed)", raw, memo=memo).status == 200:
        assert exchange(app, logs, "woocommerce (signed, replayed)", raw, replay=True).status == 200


@pytest.mark.parametrize("arg", [b'"' + b"9" * 5000 + b'"', str(2**70).encode()])
def test_woocommerce_action_naming_an_order_past_64_bits(app: Background, logs: pytest.LogCaptureFixture,
                                                         arg: bytes) -> None:
    """Found by the fuzzer: int() of 5000 digits raised ValueError (a 500), and 2**70 was asked of the store's
    API, whose 404 became a 502 (a 404 is now `not-found-in-store`, a 422)."""
    world = app.world
    assert world is not None
    answer = exchange(app, logs, "woocommerce (signed)", woocommerce_delivery(world, wire.ORDER_REFUNDED,
                                                                                b'{"arg": ' + arg + b"}"))
    assert answer.problem()["type"].endswith(":malformed-body")


@pytest.mark.parametrize("refund_id", [2**63, 2**70])
def test_shopify_refund_id_past_64_bits_is_refused(app: Background, logs: pytest.LogCaptureFixture,
                                                   refund_id: int) -> None:
    """Found by the fuzzer: a signed refunds/create with an id past 64 bits was queued for the Admin API."""
    body = json.dumps({**SHOPIFY_REFUND, "id": refund_id}).encode()
    raw = post(b"/webhooks/shopify", as_headers(webhook_headers(body)), body)
    assert exchange(app, logs, "shopify refunds/create (signed)", raw).problem()["type"].endswith(":malformed-body")


WOO_DELIVERY = "1f0e3dad99908345f7439f8ffabdffc4"  # what WooCommerce sends: a hash


@pytest.mark.parametrize(("delivery_id", "kept"), [(b"d" * 7000, ""), (b"\xff\xfe", ""),
                                                   (WOO_DELIVERY.encode(), WOO_DELIVERY)])
def test_woocommerce_delivery_id_is_kept_only_when_it_is_an_id(app: Background, logs: pytest.LogCaptureFixture,
                                                               delivery_id: bytes, kept: str) -> None:
    """The signature covers the body only: a replayer could make every refund carry 7 KB of its own header."""
    world = app.world
    assert world is not None
    order_id = 700 + len(world.woocommerce.orders)
    order = world.woocommerce.add_order(order_id, trade_no=PAID_TRADE)
    refund_id = world.woocommerce.add_refund(order_id, "1.00")
    raw = woocommerce_delivery(world, wire.ORDER_UPDATED, json.dumps(order).encode(), delivery_id)
    assert exchange(app, logs, "woocommerce (signed)", raw).status == 200
    (refund,) = [r for r in app.run(world.store.list_refunds(limit=1000))
                 if r.request.platform_refund_id == f"{order_id}:{refund_id}"]
    assert refund.request.context["delivery_id"] == kept
