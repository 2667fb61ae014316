"""Crash points for the crash-recovery tests: with `REFUND_ADAPTER_CRASH_AT=name[,name...]` in its
environment the process SIGKILLs itself when it reaches one, exactly as a power cut would stop it there. In
`serve`'s engine process the web process is killed first: a power cut stops the whole service, not half of it.

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
_with: list[int] = []  # processes that die with this one at a crash point


def die_with(pid: int) -> None:
    """Kill `pid` too at a crash point (the engine process names the web process)."""
    _with.append(pid)


def crash_point(name: str) -> None:
    if name in _armed:
        for pid in _with:
            os.kill(pid, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
