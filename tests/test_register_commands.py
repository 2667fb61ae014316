"""Plugins add commands to the `refund-adapter` group; a broken one is left out without breaking the rest."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from refund_adapter import hookimpl
from refund_adapter.cli import add_plugin_commands
from refund_adapter.plugins import create_plugin_manager


def test_hook_register_commands(capsys: pytest.CaptureFixture[str]) -> None:
    class Acme:
        @hookimpl
        def register_commands(self, cli: click.Group) -> None:
            @cli.command("acme-hello")
            @click.argument("name")
            def hello(name: str) -> None:
                click.echo(f"hello {name}")

    class Broken:
        @hookimpl
        def register_commands(self) -> None:
            raise RuntimeError("cannot start")

    @click.group()
    def cli() -> None:
        pass

    pm = create_plugin_manager(load_entry_points=False)
    pm.register(Acme())
    pm.register(Broken(), name="broken")
    add_plugin_commands(cli, pm)
    assert "plugin 'broken': register_commands failed: cannot start" in capsys.readouterr().err

    result = CliRunner().invoke(cli, ["acme-hello", "world"], catch_exceptions=False)
    assert (result.exit_code, result.output) == (0, "hello world\n")
    assert list(cli.commands) == ["acme-hello"]

