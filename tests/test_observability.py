"""What an on-call engineer sees after a day's mix of webhooks, notifies and reports (tests/observed_loop.py): the
counts in `/metrics` and the log lines, none of which may hold a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.observed_loop import REFUNDS, Observed, observed_run


@pytest.fixture
async def observed(tmp_path: Path) -> Observed:
    return await observed_run(tmp_path)


def _value(observed: Observed, name: str, **labels: str) -> float:
    return observed.samples.get(name, {}).get(frozenset(labels.items()), 0.0)


async def test_metrics_count_every_event_of_an_end_to_end_run(observed: Observed) -> None:
    def webhooks(platform: str, outcome: str) -> float:
        return _value(observed, "refund_adapter_webhooks_total", platform=platform, outcome=outcome)

    assert [webhooks("generic", outcome) for outcome in ("accepted", "duplicate", "conflict", "refused")] == \
        [REFUNDS, 1, 1, 1]
    assert (webhooks("shopify", "refused"), webhooks("woocommerce", "refused"), webhooks("unknown", "refused")) == \
        (1, 1, 1)
    refusals = "refund_adapter_webhook_refusals_total"
    assert _value(observed, refusals, platform="generic", type="invalid-signature") == 1
    assert _value(observed, refusals, platform="shopify", type="invalid-signature") == 1
    assert _value(observed, refusals, platform="woocommerce", type="invalid-signature") == 1
    assert _value(observed, refusals, platform="unknown", type="unknown-platform") == 1
    assert _value(observed, "refund_adapter_refund_conflicts_total", platform="generic") == 1

    batches = observed.batches  # as many as the sandbox received, each answered T and settled by one notify
    assert batches >= 1
    assert _value(observed, "refund_adapter_batches_submitted_total", account="main", outcome="accepted") == batches
    assert _value(observed, "refund_adapter_notifies_total", kind="refund", outcome="accepted") == batches
    assert _value(observed, "refund_adapter_notifies_total", kind="refund", outcome="unknown_batch") == 1
    latency = "refund_adapter_gateway_request_duration_seconds_count"
    assert _value(observed, latency, service="submit") == batches
    assert _value(observed, latency, service="notify_verify") == batches
    assert _value(observed, latency, service="query") == 0  # no query was due
    assert _value(observed, "refund_adapter_gateway_request_duration_seconds_bucket", service="submit",
                  le="+Inf") == batches

    assert _value(observed, "refund_adapter_report_attempts_total", platform="generic", outcome="delivered") == REFUNDS
    assert _value(observed, "refund_adapter_report_attempts_total", platform="generic", outcome="retry") == 0
    assert (_value(observed, "refund_adapter_refunds", state="succeeded"),
            _value(observed, "refund_adapter_refunds", state="failed")) == (REFUNDS - 1, 1)  # refund 7: closed trade
    outbox = ("refund_adapter_outbox_depth", "refund_adapter_outbox_oldest_age_seconds", "refund_adapter_dead_letters")
    assert [_value(observed, name) for name in outbox] == [0, 0, 0]


async def test_no_secret_and_no_sign_in_any_log_line_at_debug(observed: Observed) -> None:
    assert len(observed.signs) >= 2  # a submit's and a notify's at least: the check below has something to find
    assert any("webhook generic stored" in line for line in observed.lines)  # the collector saw the service's lines
    for what, secret in observed.secrets.items():
        leaked = [line for line in observed.lines if secret in line]
        assert not leaked, f"the {what} is in {len(leaked)} log lines, first: {leaked[0][:300]}"
    for sign in observed.signs:
        leaked = [line for line in observed.lines if sign in line]
        assert not leaked, f"a sign seen on the wire is in {len(leaked)} log lines, first: {leaked[0][:300]}"
