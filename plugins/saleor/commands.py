"""`refund-adapter saleor ...`: what the operator pastes into Saleor when setting up the app's webhook."""

from __future__ import annotations

import json

import click

from .payload import EVENT, SUBSCRIPTION
from .settings import NAME


@click.group(NAME)
def saleor() -> None:
    """Saleor platform: setting up the webhook."""


@saleor.command("subscription")
def subscription() -> None:
    """Print the subscription query of the TRANSACTION_REFUND_REQUESTED webhook (the fields the adapter reads)."""
    click.echo(SUBSCRIPTION, nl=False)


@saleor.command("webhook")
@click.argument("public_url")
def webhook(public_url: str) -> None:
    """Print the webhook to add to the app (`webhookCreate` input, or the app manifest's `webhooks` entry), for an
    adapter served at PUBLIC_URL (its `server.public_url`)."""
    click.echo(json.dumps({
        "name": "Alipay refunds (refund-adapter)",
        "syncEvents": [EVENT.upper()],
        "targetUrl": f"{public_url.rstrip('/')}/webhooks/{NAME}",
        "isActive": True,
        "query": SUBSCRIPTION,
    }, indent=2))
