"""The sandbox's fault switches: the failures that make refunds hard, switched on at startup or over HTTP.

Every face and the notify sender take their switches from one `Faults`, so a test sets a fault once whatever the
protocol under test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Every fault switch and its "off" value; the value's type is the type the switch takes.
FAULTS_OFF: dict[str, bool | float | int | str] = {
    "answer_processing": False,  # refund submissions answer P (still accepted and evaluated)
    "answer_5xx": False,  # every gateway request answers HTTP 500 before anything is processed
    "hang_seconds": 0.0,  # answer this late, after processing
    "drop_notifies": False,  # a notification is never sent
    "delay_notify_seconds": 0.0,  # wait before the first delivery of a notification
    "duplicate_notifies": 1,  # each delivery attempt POSTs this many copies
    "refuse_trade": "",  # a trade_no: a refund request holding it answers F DETAIL_DATA_FORMAT_ERROR (no detail named)
    "close_after_processing": False,  # close the connection instead of answering, after processing
    "notify_before_ack": False,  # a refund submission answers only once its notifies were first delivered
    "hold_notifies": False,  # a notification waits, undelivered, for POST /sandbox/notifies/release
}


@dataclass
class _Switch:
    value: Any
    times: int | None = None  # None: until switched again; n: for the next n uses only


class Faults:
    """Every fault switch in one place.

    A switch is set to a plain value (applies until changed) or to `{"value": v, "times": n}` (applies to the
    next n uses, then switches off). For on/off switches an integer n is short for `{"value": true, "times": n}`,
    so `{"answer_5xx": 1}` fails the next request only. Each use site calls `take`, which counts the use.
    """

    def __init__(self, spec: Mapping[str, Any] | None = None) -> None:
        self._switches = {name: _Switch(off) for name, off in FAULTS_OFF.items()}
        self.update(spec or {})

    def update(self, spec: Mapping[str, Any]) -> None:
        """Validate every switch in `spec`, then apply them all (nothing is applied if one is wrong)."""
        parsed = {name: _parse_switch(name, value) for name, value in spec.items()}
        self._switches.update(parsed)

    def take(self, name: str) -> Any:
        """The switch's value for one use; a count-limited switch turns off after its last use."""
        switch = self._switches[name]
        if switch.times is not None:
            switch.times -= 1
            if switch.times <= 0:
                self._switches[name] = _Switch(FAULTS_OFF[name])
        return switch.value

    def snapshot(self) -> dict[str, Any]:
        """The current switches in the same JSON shape `update` accepts."""
        return {
            name: switch.value if switch.times is None else {"value": switch.value, "times": switch.times}
            for name, switch in self._switches.items()
        }


def _parse_switch(name: str, spec: Any) -> _Switch:
    """One switch from its JSON form; ValueError names the switch and what is wrong."""
    if name not in FAULTS_OFF:
        raise ValueError(f"unknown fault {name!r} (known: {', '.join(FAULTS_OFF)})")
    kind = type(FAULTS_OFF[name])
    times: Any = None
    if isinstance(spec, Mapping):
        if set(spec) - {"value", "times"} or "value" not in spec:
            raise ValueError(f"{name}: expected {{'value': ..., 'times': n}}")
        value, times = spec["value"], spec.get("times")
    elif kind is bool and type(spec) is int:
        value, times = spec > 0, spec if spec > 0 else None
    else:
        value = spec
    if times is not None and (type(times) is not int or times < 1):
        raise ValueError(f"{name}: times must be a positive integer")
    if kind is bool and type(value) is not bool:
        raise ValueError(f"{name}: expected true, false or a count")
    if kind is float and (type(value) not in (int, float) or value < 0):
        raise ValueError(f"{name}: expected a number of seconds >= 0")
    if kind is int and (type(value) is not int or value < 1):
        raise ValueError(f"{name}: expected an integer >= 1")
    if kind is str and type(value) is not str:
        raise ValueError(f"{name}: expected a string")
    return _Switch(kind(value), times)
