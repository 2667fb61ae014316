"""A simulated Alipay, usable by anyone integrating Alipay: one ledger, one face per protocol, faults, an admin API.

It is an aiohttp application of its own (`app`). The ledger (`ledger`) keeps the trades seeded over HTTP and
the refunds made against them; each face speaks one protocol on that ledger (`mapi`: the no-password batch
refund, its query and notify_verify); the notify sender (`notifier`) delivers signed notifies with Alipay's
retry schedule until the merchant answers exactly `success`; fault switches (`faults`) are set at startup or
over HTTP so clients can be tested against the failures that make refunds hard: lost answers, 5xx, hangs,
lost, duplicated, held, reordered or early notifies, connections closed without an answer. `admin` is the
sandbox's own JSON API (`/sandbox/...`).

Decisions where the reference leaves room and that hold for every face (each face's own are in its module):
* `hold_notifies` keeps notifications undelivered until `POST /sandbox/notifies/release`, which delivers them
  one after the other, in the order they were made or (`{"order": "reverse"}`) the reverse.
* More than 99 refunds of one trade answer `TRADE_STATUS_ERROR` (the trade no longer allows refunds).
* `time_scale` divides the notify retry schedule only; `notify_verify_ttl_seconds`, `delay_notify_seconds`,
  `hang_seconds` and `evaluation_delay_seconds` are real seconds.
* "Today" and "now" (the `batch_no` date, `refund_date`, the 90-day refund window, notify times) come from
  `SandboxConfig.clock`, so a test can stand at Beijing midnight whatever the hour it runs.

What users of the sandbox import is re-exported here.
"""

from .admin import PROBLEM_TYPE
from .app import RunningSandbox, create_sandbox_app, run_sandbox, serve_sandbox
from .config import SandboxConfig, config_from_files
from .faults import FAULTS_OFF, Faults
from .ledger import Trade, TradeSeed, parse_trade_seeds
from .notifier import Notification
from .state import SandboxState

__all__ = [
    "FAULTS_OFF",
    "PROBLEM_TYPE",
    "Faults",
    "Notification",
    "RunningSandbox",
    "SandboxConfig",
    "SandboxState",
    "Trade",
    "TradeSeed",
    "config_from_files",
    "create_sandbox_app",
    "parse_trade_seeds",
    "run_sandbox",
    "serve_sandbox",
]
