"""The plugin host through real PluginManagers: entry points, plugins_dir, each hook, the CLI listing."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import textwrap
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pluggy
import pytest
from aiohttp import web
from click.testing import CliRunner

from refund_adapter import (
    DeliveryResult,
    InboundWebhook,
    PlatformAdapter,
    Refund,
    RefundOutcome,
    RefundRequest,
    RefundState,
    ShopInfo,
    WebhookAccepted,
    hookimpl,
)
from refund_adapter.cli import main
from refund_adapter.models import ReportState
from refund_adapter.plugins import (
    PluginError,
    broadcast,
    collect_platforms,
    create_plugin_manager,
    plugins_info,
)

CONFIG = SimpleNamespace(platforms={})


def manager(*plugins: object) -> pluggy.PluginManager:
    """A manager without the installed entry points, holding only `plugins`."""
    pm = create_plugin_manager(load_entry_points=False)
    for plugin in plugins:
        pm.register(plugin)
    return pm


class FakeAdapter:
    def __init__(self, name: str) -> None:
        self.name = name

    async def receive(self, webhook: InboundWebhook) -> WebhookAccepted:
        return WebhookAccepted()

    async def report(self, outcome: RefundOutcome) -> DeliveryResult:
        return DeliveryResult.delivered()

    async def reconcile(self, since: datetime | None) -> Sequence[RefundRequest]:
        return ()

    def shops(self) -> Sequence[ShopInfo]:
        return ()


class Platforms:
    """A plugin registering one adapter per name."""

    def __init__(self, *names: str) -> None:
        self.names = names
        self.seen: list[tuple[object, object]] = []

    @hookimpl
    def register_platforms(self, register: Callable[[PlatformAdapter], None], config: Any, http: Any) -> None:
        self.seen.append((config, http))
        for name in self.names:
            register(FakeAdapter(name))


class Recorder:
    """Records every broadcast; `mode` makes it async or failing."""

    def __init__(self, label: str, log: list[tuple[str, str, tuple[object, ...]]], mode: str = "sync") -> None:
        self.label, self.log, self.mode = label, log, mode

    def _record(self, hook: str, *args: object) -> Any:
        if self.mode == "fail":
            raise RuntimeError(f"{self.label} is broken")
        if self.mode == "async":

            async def later() -> None:
                self.log.append((self.label, hook, args))

            return later()
        self.log.append((self.label, hook, args))
        return None

    @hookimpl
    def startup(self, app: web.Application) -> Any:
        return self._record("startup", app)

    @hookimpl
    def refund_state_changed(self, refund: Refund, old_state: RefundState, new_state: RefundState) -> Any:
        return self._record("refund_state_changed", refund, old_state, new_state)


def a_refund(state: RefundState) -> Refund:
    request = RefundRequest("generic", "s", "r1", "o1", "t1", Decimal("1.00"), "CNY", "why", "main")
    now = datetime.now(UTC)
    return Refund(1, request, state, None, 7, "20240101001", ReportState.NONE, now, now)


# --- the hooks ---------------------------------------------------------------------------------------------


async def test_hook_register_platforms() -> None:
    first, second = Platforms("alpha"), Platforms("beta", "gamma")
    http = object()

    platforms = collect_platforms(manager(first, second), CONFIG, http)  # type: ignore[arg-type]

    assert sorted(platforms) == ["alpha", "beta", "gamma"]
    assert all(isinstance(adapter, PlatformAdapter) for adapter in platforms.values())
    assert first.seen == second.seen == [(CONFIG, http)]


def test_register_platforms_refuses_a_duplicate_name_naming_both_plugins() -> None:
    pm = manager()
    pm.register(Platforms("alpha"), name="one")
    pm.register(Platforms("alpha"), name="two")
    with pytest.raises(PluginError, match="'alpha' is registered by both 'two' and 'one'"):
        collect_platforms(pm, CONFIG, None)  # type: ignore[arg-type]


def test_register_platforms_refuses_what_is_not_an_adapter_or_a_coroutine() -> None:
    class NotAnAdapter:
        @hookimpl
        def register_platforms(self, register: Callable[[object], None]) -> None:
            register(object())

    class Async:
        @hookimpl
        async def register_platforms(self, register: Callable[[object], None]) -> None:
            register(FakeAdapter("late"))

    with pytest.raises(PluginError, match="not a PlatformAdapter"):
        collect_platforms(manager(NotAnAdapter()), CONFIG, None)  # type: ignore[arg-type]
    with pytest.raises(PluginError, match="must not be a coroutine function"):
        collect_platforms(manager(Async()), CONFIG, None)  # type: ignore[arg-type]


async def test_hook_startup(caplog: pytest.LogCaptureFixture) -> None:
    log: list[tuple[str, str, tuple[object, ...]]] = []
    app = web.Application()
    # pluggy calls the last registered first; the broken one in the middle must not stop the first.
    pm = manager(Recorder("sync", log), Recorder("broken", log, "fail"), Recorder("async", log, "async"))

    with caplog.at_level(logging.ERROR, logger="refund_adapter.plugins"):
        await broadcast(pm, "startup", app=app)

    assert log == [("async", "startup", (app,)), ("sync", "startup", (app,))]
    assert "failed in hook startup" in caplog.text and "broken is broken" in caplog.text


async def test_hook_refund_state_changed(caplog: pytest.LogCaptureFixture) -> None:
    log: list[tuple[str, str, tuple[object, ...]]] = []
    refund = a_refund(RefundState.SUBMITTED)

    class Failing:
        @hookimpl
        async def refund_state_changed(self, refund: Refund) -> None:
            raise RuntimeError("failed after awaiting")

    class OnlyNewState:
        def __init__(self) -> None:
            self.states: list[RefundState] = []

        @hookimpl
        def refund_state_changed(self, new_state: RefundState) -> None:
            self.states.append(new_state)

    partial = OnlyNewState()
    pm = manager(Recorder("async", log, "async"), partial, Failing())

    with caplog.at_level(logging.ERROR, logger="refund_adapter.plugins"):
        await broadcast(
            pm, "refund_state_changed", refund=refund, old_state=RefundState.BATCHED, new_state=RefundState.SUBMITTED
        )

    assert log == [("async", "refund_state_changed", (refund, RefundState.BATCHED, RefundState.SUBMITTED))]
    assert partial.states == [RefundState.SUBMITTED]
    assert "failed after awaiting" in caplog.text


async def test_broadcast_refuses_arguments_that_do_not_match_the_spec() -> None:
    with pytest.raises(TypeError, match="refund_state_changed"):
        await broadcast(manager(), "refund_state_changed", refund=None)


# --- discovery ---------------------------------------------------------------------------------------------


def test_entry_points_find_the_generic_plugin_with_its_version() -> None:
    info = plugins_info(create_plugin_manager())
    assert {
        "name": "generic",
        "version": importlib.metadata.version("refund-adapter"),
        "distribution": "refund-adapter",
        "hooks": ["register_platforms"],
    } in info
    json.dumps(info)  # as `plugins` and GET /-/plugins serve it


def test_entry_points_can_be_left_out() -> None:
    assert plugins_info(create_plugin_manager(load_entry_points=False)) == []


AUDIT_PLUGIN = """
    from dataclasses import dataclass

    from refund_adapter import hookimpl

    seen = []


    @dataclass(frozen=True)
    class Change:  # a dataclass only works if the module is in sys.modules while it runs
        new_state: str


    @hookimpl
    def refund_state_changed(new_state):
        seen.append(Change(new_state))


    @hookimpl
    def startup(app):
        seen.append("startup")
"""


async def test_plugins_dir_modules_are_loaded_as_plugins(tmp_path: Path) -> None:
    (tmp_path / "audit.py").write_text(textwrap.dedent(AUDIT_PLUGIN))
    (tmp_path / "notes.txt").write_text("not a plugin")

    pm = create_plugin_manager(tmp_path)
    await broadcast(pm, "startup", app=web.Application())

    assert {"name": "audit", "version": None, "distribution": None, "hooks": ["refund_state_changed", "startup"]} in (
        plugins_info(pm)
    )
    assert pm.get_plugin("audit").seen == ["startup"]


def test_a_misspelled_hookimpl_is_caught_at_load(tmp_path: Path) -> None:
    (tmp_path / "typo.py").write_text(
        "from refund_adapter import hookimpl\n\n@hookimpl\ndef refund_state_change(refund):\n    pass\n"
    )
    with pytest.raises(pluggy.PluginValidationError, match="refund_state_change"):
        create_plugin_manager(tmp_path, load_entry_points=False)


def test_a_missing_plugins_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="not a directory"):
        create_plugin_manager(tmp_path / "absent", load_entry_points=False)


def test_cli_plugins_prints_json(tmp_path: Path) -> None:
    (tmp_path / "audit.py").write_text(textwrap.dedent(AUDIT_PLUGIN))
    runner = CliRunner()

    listed = json.loads(runner.invoke(main, ["plugins"], catch_exceptions=False).output)
    with_dir = json.loads(runner.invoke(main, ["plugins", "--plugins-dir", str(tmp_path)]).output)

    assert "generic" in [entry["name"] for entry in listed]
    assert [entry["name"] for entry in with_dir] == sorted([entry["name"] for entry in listed] + ["audit"])
