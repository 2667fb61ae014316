"""What `serve` writes for journald and Loki: with `logging.format: json` one JSON object per line, a line at
start, per stored webhook (with its request id and refund ids) and at stop; the request id taken from
`X-Request-Id` only when it is sane."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import aiohttp
import pytest
import yaml
from refund_adapter_generic.shop import signed_generic_webhook

from refund_adapter.chaos import SERVE
from refund_adapter.config import ConfigError, parse_config
from refund_adapter.logs import NOTICE, SKIP, WRITE, LineSampler, bind_request_id, request_id
from refund_adapter.testing import free_port, local_config, wait_until

SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQ="


def _raw(tmp_path: Path, port: int, **sections: object) -> dict[str, object]:
    return local_config(tmp_path / "r.db", port, partner="2088101122136241", md5_key="k" * 32,
                        gateway_url=f"http://127.0.0.1:{free_port()}/gateway.do",
                        platforms={"generic": {"shops": [{"id": "s", "secret": SECRET, "alipay_account": "main",
                                                          "callback_url": "http://127.0.0.1:9/callback"}]}},
                        **sections)


def test_check_config_names_an_unknown_log_format(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(_raw(tmp_path, 1, logging={"format": "xml"}), env={})
    assert refused.value.problems == ["logging.format: must be one of text, json"]
    assert parse_config(_raw(tmp_path, 1, logging={"format": "json"}), env={}).logging.format == "json"


@pytest.mark.parametrize(("given", "kept"), [
    ("3f2a-9c1e", True), ("a" * 64, True), ("req:1/2+3=@x_y.z", True),
    ("a" * 65, False), ("two words", False), ("", False), ("line\rforged", False), ("日志", False), (None, False),
])
def test_a_request_id_is_taken_only_when_sane(given: str | None, kept: bool) -> None:
    made = bind_request_id({} if given is None else {"X-Request-Id": given})
    assert request_id.get() == made
    assert (made == given) is kept
    assert 1 <= len(made) <= 64 and made.isprintable()


async def test_serve_writes_json_lines_at_start_per_webhook_and_at_stop(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_raw(tmp_path, port, logging={"format": "json"})))
    process = await asyncio.create_subprocess_exec(*SERVE, "--config", str(config),
                                                   stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        async with aiohttp.ClientSession() as http:
            async def up() -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_until(up, within=60, what="serve answering /healthz")
            payload = {"refund_id": "r1", "order_id": "o1", "trade_no": "2026120722" + "0" * 10, "amount": "1.00",
                       "currency": "CNY", "paid_amount": "1.00", "reason": "r"}
            headers, body = signed_generic_webhook(SECRET, payload, "msg-1")
            async with http.post(f"http://127.0.0.1:{port}/webhooks/generic/s", data=body,
                                 headers=headers | {"X-Request-Id": "trace-42"}) as resp:
                assert resp.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.stderr is not None
        stderr = await asyncio.wait_for(process.stderr.read(), 60)
        assert await asyncio.wait_for(process.wait(), 60) == 0
    lines = [json.loads(line) for line in stderr.decode().splitlines()]  # every line is one JSON object
    assert {"time", "level", "logger", "message", "request_id"} <= lines[0].keys()
    messages = [line["message"] for line in lines]
    assert messages[0].startswith("started: store sqlite, Alipay accounts main, platforms generic")
    stored = next(line for line in lines if line["message"].startswith("webhook generic stored"))
    assert (stored["request_id"], stored["refund_ids"], stored["level"]) == ("trace-42", [1], "INFO")
    assert stored["message"] == "webhook generic stored: 1 new refunds: 1 ('s'/'r1'), 0 already stored"
    assert messages[-2:] == ["stopping: engine loops cancelled, in-flight requests drained", "stopped"]


def test_stored_webhook_lines_are_sampled_to_a_burst_a_second() -> None:
    now = [1000.2]
    sampler = LineSampler(burst=3, clock=lambda: now[0])
    assert [sampler.take() for _ in range(6)] == [WRITE, WRITE, WRITE, NOTICE, SKIP, SKIP]
    now[0] = 1000.9  # the same second
    assert sampler.take() == SKIP
    now[0] = 1001.0  # the next: written again
    assert [sampler.take() for _ in range(4)] == [WRITE, WRITE, WRITE, NOTICE]
