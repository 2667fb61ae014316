"""Crash points for the crash-recovery tests: with `REFUND_ADAPTER_CRASH_AT=name[,name...]` in its
environment the process SIGKILLs itself when it reaches one, exactly as a power cut would stop it there.

Unset (always, in production) a crash point is one set lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "REFUND_ADAPTER_CRASH_AT"
AFTER_ACCEPT = "after-accept"  # webhook stored, 2xx not yet sent
AFTER_BATCH_CREATED = "after-batch-created"  # batch on disk, not yet sent
AFTER_SUBMIT = "after-submit"  # Alipay answered the submit, answer not yet recorded
AFTER_NOTIFY_VERIFIED = "after-notify-verified"  # genuine notify in hand, results not yet recorded
AFTER_REPORT = "after-report"  # platform has the result, delivery not yet recorded
ALL = (AFTER_ACCEPT, AFTER_BATCH_CREATED, AFTER_SUBMIT, AFTER_NOTIFY_VERIFIED, AFTER_REPORT)

_armed = frozenset(name for name in os.environ.get(ENV, "").split(",") if name)


def crash_point(name: str) -> None:
    if name in _armed:
        os.kill(os.getpid(), signal.SIGKILL)
