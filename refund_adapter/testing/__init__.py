"""The testing kit, for plugin authors and the project's own tests. It names no platform.

- Servers on 127.0.0.1: `free_port`, `serve`, `wait_until` (poll with a deadline, never sleep to synchronise).
- The Alipay sandbox: `sandbox_config`, `seed_trade`, `refunded_details`; the adapter in front of it:
  `running_adapter`, `adapter_loop` / `AdapterLoop`, `local_config`, `with_admin_token`, `TEST_ADMIN_TOKEN`,
  `ADMIN_HEADERS`; its metrics: `metric_samples`, `metric_value` (`Samples`).
- A platform's side: `FakePlatform` (a real server that records each `Call` and answers errors on demand),
  `Webhook` and `post_webhook`.
- Waiting for a refund: `wait_for_final_state`, `wait_for_report_state`, `find_refund`.
- The conformance suite: `PlatformConformance`, `ConformanceRun`, `SampleRefund`.
- Fixtures (a pytest plugin, `refund_adapter.testing.fixtures`, registered through `pytest11`): `running_sandbox`,
  `serve_adapter`.
"""

from .adapter import running_adapter
from .config import ADMIN_HEADERS, TEST_ADMIN_TOKEN, local_config, with_admin_token
from .conformance import ConformanceRun, PlatformConformance, SampleRefund
from .fake_platform import Call, FakePlatform
from .loop import AdapterLoop, adapter_loop
from .metrics import Samples, metric_samples, metric_value
from .refunds import find_refund, wait_for_final_state, wait_for_report_state
from .sandbox import refunded_details, sandbox_config, seed_trade
from .servers import free_port, serve, wait_until
from .webhooks import Webhook, post_webhook

__all__ = [
    "ADMIN_HEADERS",
    "TEST_ADMIN_TOKEN",
    "AdapterLoop",
    "Call",
    "ConformanceRun",
    "FakePlatform",
    "PlatformConformance",
    "SampleRefund",
    "Samples",
    "Webhook",
    "adapter_loop",
    "find_refund",
    "free_port",
    "local_config",
    "metric_samples",
    "metric_value",
    "post_webhook",
    "refunded_details",
    "running_adapter",
    "sandbox_config",
    "seed_trade",
    "serve",
    "wait_for_final_state",
    "wait_for_report_state",
    "wait_until",
    "with_admin_token",
]
