"""`refund-adapter saleor ...`: what the operator pastes into Saleor is what the adapter reads."""

from __future__ import annotations

import json

from click.testing import CliRunner
from refund_adapter_saleor.commands import saleor
from refund_adapter_saleor.payload import SUBSCRIPTION


def test_subscription_prints_the_query_the_payload_is_read_with() -> None:
    result = CliRunner().invoke(saleor, ["subscription"])
    assert result.exit_code == 0 and result.output == SUBSCRIPTION


def test_webhook_prints_the_webhook_to_add_to_the_app() -> None:
    result = CliRunner().invoke(saleor, ["webhook", "https://refunds.example/"])
    assert result.exit_code == 0
    assert json.loads(result.output) == {
        "name": "Alipay refunds (refund-adapter)", "syncEvents": ["TRANSACTION_REFUND_REQUESTED"],
        "targetUrl": "https://refunds.example/webhooks/saleor", "isActive": True, "query": SUBSCRIPTION}
