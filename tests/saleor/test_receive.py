"""TRANSACTION_REFUND_REQUESTED through the adapter: the keys fetched, cached and rotated; forgeries refused."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from refund_adapter_saleor import SaleorPlatform
from refund_adapter_saleor.settings import parse_settings

from refund_adapter.plugin_api import InboundWebhook, WebhookAccepted, WebhookRejected

from .conftest import Clock
from .fake_saleor import FakeSaleor, hmac_signature, new_key, section


def inbound(fake: FakeSaleor, body: bytes, subpath: str = "", **headers: Any) -> InboundWebhook:
    return InboundWebhook("saleor", subpath, fake.headers(body, **headers), {}, body)


async def refused(platform: SaleorPlatform, webhook: InboundWebhook) -> tuple[int, str]:
    with pytest.raises(WebhookRejected) as raised:
        await platform.receive(webhook)
    return raised.value.status, raised.value.type


async def test_a_refund_request_is_answered_with_our_reference(fake: FakeSaleor, platform: SaleorPlatform) -> None:
    transaction = fake.add_transaction()
    accepted = await platform.receive(inbound(fake, fake.refund_requested(transaction, "30.00", granted_refund="G1")))
    (request,) = accepted.requests
    assert (accepted.status, accepted.content_type) == (200, "application/json")
    assert json.loads(accepted.body) == {"pspReference": request.context["psp_reference"]}
    assert request.platform_refund_id == f"{transaction}:G1"
    assert fake.jwks_fetches == 1


async def test_the_keys_are_fetched_once_and_cached(fake: FakeSaleor, platform: SaleorPlatform, clock: Clock) -> None:
    transaction = fake.add_transaction()
    for number in range(5):
        clock.now += 60
        await platform.receive(inbound(fake, fake.refund_requested(transaction, "1.00", granted_refund=f"G{number}")))
    assert fake.jwks_fetches == 1


async def test_a_rotated_key_is_fetched_once(fake: FakeSaleor, platform: SaleorPlatform, clock: Clock) -> None:
    transaction = fake.add_transaction()
    await platform.receive(inbound(fake, fake.refund_requested(transaction, "1.00", granted_refund="before")))
    old = fake.rotate_key()
    clock.now += 60
    for number in range(3):
        await platform.receive(inbound(fake, fake.refund_requested(transaction, "1.00", granted_refund=f"G{number}")))
    assert fake.jwks_fetches == 2
    body = fake.refund_requested(transaction, "1.00", granted_refund="late")
    assert await refused(platform, inbound(fake, body, signature=old.sign(body))) == (503, "keys-unavailable")
    clock.now += 10
    assert await refused(platform, inbound(fake, body, signature=old.sign(body))) == (401, "unknown-key")
    assert fake.jwks_fetches == 3


async def test_a_key_rotated_just_after_a_fetch_is_checked_on_saleors_retry(
    fake: FakeSaleor, platform: SaleorPlatform, clock: Clock
) -> None:
    """The keys were fetched a moment ago: a new kid is answered 503 (never refused), Saleor sends it again 10 s
    later, and the keys are fetched again for it."""
    transaction = fake.add_transaction()
    await platform.receive(inbound(fake, fake.refund_requested(transaction, "1.00", granted_refund="before")))
    fake.rotate_key()
    body = fake.refund_requested(transaction, "1.00", granted_refund="after")
    assert await refused(platform, inbound(fake, body)) == (503, "keys-unavailable")
    clock.now += 10
    assert len((await platform.receive(inbound(fake, body))).requests) == 1
    assert fake.jwks_fetches == 2


async def test_concurrent_webhooks_with_a_new_key_fetch_it_once(
    fake: FakeSaleor, platform: SaleorPlatform, clock: Clock
) -> None:
    transaction = fake.add_transaction()
    await platform.receive(inbound(fake, fake.refund_requested(transaction, "1.00", granted_refund="first")))
    fake.rotate_key()
    clock.now += 60
    bodies = [fake.refund_requested(transaction, "1.00", granted_refund=f"G{n}") for n in range(10)]
    results = await asyncio.gather(*(platform.receive(inbound(fake, body)) for body in bodies))
    assert all(isinstance(result, WebhookAccepted) for result in results)
    assert fake.jwks_fetches == 2


async def test_unknown_kids_refetch_at_most_every_few_seconds(
    fake: FakeSaleor, platform: SaleorPlatform, clock: Clock
) -> None:
    """A forger making up key ids cannot turn each webhook into a request to the shop."""
    transaction = fake.add_transaction()
    stranger = new_key()
    body = fake.refund_requested(transaction, "1.00", granted_refund="forged")
    assert await refused(platform, inbound(fake, body, signature=stranger.sign(body))) == (401, "unknown-key")
    for _ in range(4):
        assert await refused(platform, inbound(fake, body, signature=stranger.sign(body))) == (503, "keys-unavailable")
    assert fake.jwks_fetches == 1
    clock.now += 10
    assert await refused(platform, inbound(fake, body, signature=stranger.sign(body))) == (401, "unknown-key")
    assert fake.jwks_fetches == 2


async def test_expired_keys_are_fetched_again_and_a_withdrawn_key_stops_verifying(
    fake: FakeSaleor, platform: SaleorPlatform, clock: Clock
) -> None:
    transaction = fake.add_transaction()
    await platform.receive(inbound(fake, fake.refund_requested(transaction, "1.00", granted_refund="G1")))
    withdrawn = fake.rotate_key()
    body = fake.refund_requested(transaction, "1.00", granted_refund="G2")
    clock.now += 599
    await platform.receive(inbound(fake, body, signature=withdrawn.sign(body)))  # still cached: verifies
    clock.now += 1
    assert await refused(platform, inbound(fake, body, signature=withdrawn.sign(body))) == (401, "unknown-key")
    assert fake.jwks_fetches == 2


async def test_the_known_keys_verify_while_the_jwks_is_down(
    fake: FakeSaleor, platform: SaleorPlatform, clock: Clock
) -> None:
    """A redelivery of a stored refund must not be answered 5xx for want of a refresh (see jwks.py)."""
    transaction = fake.add_transaction()
    body = fake.refund_requested(transaction, "1.00", granted_refund="G1")
    await platform.receive(inbound(fake, body))
    fake.jwks_down = True
    clock.now += 3600
    await platform.receive(inbound(fake, body))
    await platform.receive(inbound(fake, body))
    assert fake.jwks_fetches == 2  # one failed refresh; the next waits jwks_min_refetch_seconds


async def test_no_keys_at_all_is_a_503_so_that_saleor_sends_it_again(
    fake: FakeSaleor, platform: SaleorPlatform, clock: Clock
) -> None:
    transaction = fake.add_transaction()
    body = fake.refund_requested(transaction, "1.00", granted_refund="G1")
    fake.jwks_down = True
    assert await refused(platform, inbound(fake, body)) == (503, "keys-unavailable")
    fake.jwks_down = False
    clock.now += 10
    assert len((await platform.receive(inbound(fake, body))).requests) == 1


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda fake, body: {"signature": new_key().sign(body)}, (401, "unknown-key")),  # keys fetched for it
        (lambda fake, body: {"signature": fake.key.sign(body + b" ")}, (401, "invalid-signature")),
        (lambda fake, body: {"signature": ""}, (401, "invalid-signature")),
        (lambda fake, body: {"signature": hmac_signature("guess", body)}, (401, "invalid-signature")),
        (lambda fake, body: {"signature": "e30.." + fake.key.sign(body).split(".")[2]}, (401, "invalid-signature")),
        (lambda fake, body: {"api_url": "https://elsewhere.example/graphql/"}, (404, "unknown-shop")),
        (lambda fake, body: {"event": "transaction_charge_requested"}, (400, "unsupported-event")),
    ],
    ids=["unknown-kid", "other-body", "empty", "hmac-not-configured", "header-without-kid", "unknown-shop",
         "other-event"],
)
async def test_forged_and_foreign_webhooks_are_refused(
    fake: FakeSaleor, platform: SaleorPlatform, change: Any, expected: tuple[int, str]
) -> None:
    body = fake.refund_requested(fake.add_transaction(), "1.00", granted_refund="G1")
    assert await refused(platform, inbound(fake, body, **change(fake, body))) == expected


async def test_another_path_is_refused(fake: FakeSaleor, platform: SaleorPlatform) -> None:
    body = fake.refund_requested(fake.add_transaction(), "1.00", granted_refund="G1")
    assert await refused(platform, inbound(fake, body, subpath="other")) == (404, "unknown-endpoint")


async def test_the_deprecated_hmac_verifies_when_a_secret_key_is_configured(
    fake: FakeSaleor, http: aiohttp.ClientSession
) -> None:
    platform = SaleorPlatform(parse_settings(section(fake, secret_key="webhook-secret")), http)
    transaction = fake.add_transaction()
    body = fake.refund_requested(transaction, "1.00", granted_refund="G1")
    assert len((await platform.receive(inbound(fake, body, signature=hmac_signature("webhook-secret", body)))).requests)
    assert fake.jwks_fetches == 0
    assert len((await platform.receive(inbound(fake, body))).requests) == 1  # a JWS still verifies
    assert await refused(platform, inbound(fake, body, signature=hmac_signature("other", body))) == (
        401, "invalid-signature")
