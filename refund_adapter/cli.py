"""The `refund-adapter` command line: one group, one sub-command per job."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
import pluggy

from refund_adapter.console.context import load_config_or_exit
from refund_adapter.plugins import _call, _hookimpls, create_plugin_manager


class MainGroup(click.Group):
    """The top-level group. The operator's commands (`refunds`, `batches`, `dead-letters`) are added when a command
    this group does not know yet is named, or the commands are listed: their modules load rich and asyncpg, about
    5 MB that `serve`'s web process would carry for nothing (docs/performance.md)."""

    operator_commands_added = False

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            self._add_operator_commands()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_operator_commands()
        return super().list_commands(ctx)

    def _add_operator_commands(self) -> None:
        if not self.operator_commands_added:
            from refund_adapter.console.commands import add_operator_commands

            add_operator_commands(self)
            self.operator_commands_added = True


@click.group(cls=MainGroup)
@click.version_option(package_name="refund-adapter")
def main() -> None:
    """Refund platform orders through Alipay's no-password batch refund, exactly once."""


@main.command("check-config")
@click.argument("path", type=click.Path(dir_okay=False))
def check_config(path: str) -> None:
    """Validate a configuration file: print every problem (exit 2), or a one-line summary (exit 0)."""
    from refund_adapter.config import ConfigError
    from refund_adapter.plugins import collect_platforms, create_plugin_manager, unknown_accounts

    config = load_config_or_exit(path)
    try:  # each plugin validates its own platforms.<name> section when it registers
        platforms = collect_platforms(create_plugin_manager(config.plugins_dir), config, None)  # type: ignore[arg-type]
        unknown = unknown_accounts(platforms, config.alipay.accounts)
        if unknown:
            raise ConfigError(unknown)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise SystemExit(2) from None
    platforms = ", ".join(sorted(config.platforms)) or "(none)"
    click.echo(f"ok: {len(config.alipay.accounts)} accounts, platforms: {platforms}")


@main.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9100, show_default=True, help="0 picks a free port.")
@click.option("--partner", default="2088101122136241", show_default=True, help="The simulated partner id.")
@click.option("--md5-key", help="The partner's MD5 key (or use the RSA key pair).")
@click.option("--alipay-private-key", type=click.Path(dir_okay=False), help="PEM: signs RSA notifies, OpenAPI answers.")
@click.option("--merchant-public-key", type=click.Path(dir_okay=False), help="PEM: verifies RSA and OpenAPI requests.")
@click.option("--app-id", help="The open-platform app the OpenAPI face serves (needs the RSA key pair).")
@click.option("--trades", type=click.Path(dir_okay=False), help="JSON list of trades to seed.")
@click.option("--time-scale", default=1.0, show_default=True, help="Divides the notify retry schedule.")
@click.option("--notify-verify-ttl-seconds", default=60.0, show_default=True)
@click.option("--nopwd-permission/--no-nopwd-permission", default=True, show_default=True)
@click.option("--payment-password", default="123456", show_default=True,
              help="What the password refund's confirmation page accepts (refund_fastpay_by_platform_pwd).")
@click.option("--answer-processing", is_flag=True, help="Fault: accepted batches answer P.")
@click.option("--answer-5xx", is_flag=True, help="Fault: every gateway request answers HTTP 500.")
@click.option("--hang-seconds", default=0.0, help="Fault: answer this many seconds late.")
@click.option("--drop-notifies", is_flag=True, help="Fault: never send notifies.")
@click.option("--delay-notify-seconds", default=0.0, help="Fault: wait before the first notify.")
@click.option("--duplicate-notifies", default=1, help="Fault: POST each notify this many times.")
@click.option("--refuse-trade", default="", help="Fault: refuse a batch holding this trade_no (no detail named).")
@click.option("--close-after-processing", is_flag=True, help="Fault: close the connection instead of answering.")
@click.option("--notify-before-ack", is_flag=True, help="Fault: deliver a batch's notify before answering it.")
@click.option("--hold-notifies", is_flag=True, help="Fault: hold notifies until POST /sandbox/notifies/release.")
@click.option("--acq-system-error", type=click.Choice(["", "before", "after"]), default="",
              help="Fault: OpenAPI refunds answer ACQ.SYSTEM_ERROR, before or after being made.")
@click.option("--answer-fund-change-n", is_flag=True, help="Fault: OpenAPI refunds are made, answered fund_change=N.")
@click.option("--rate-limit", is_flag=True, help="Fault: OpenAPI refunds answer 40005 (call limited).")
def sandbox(host: str, port: int, **options: Any) -> None:
    """Run the simulated Alipay (MAPI gateway, and OpenAPI with --app-id) until SIGINT or SIGTERM."""
    from refund_adapter import sandbox as alipay_sandbox

    faults = {name: options.pop(name) for name in alipay_sandbox.FAULTS_OFF}
    try:
        config = alipay_sandbox.config_from_files(faults=faults, **options)
    except (OSError, ValueError) as exc:  # unreadable file, bad key, bad trade or fault
        raise click.UsageError(str(exc)) from exc

    def announce(running: alipay_sandbox.RunningSandbox) -> None:
        click.echo(f"Alipay sandbox gateway: {running.url}")
        if config.app_id:
            click.echo(f"Alipay sandbox OpenAPI gateway: {running.openapi_url}")

    try:
        asyncio.run(alipay_sandbox.serve_sandbox(config, host, port, on_ready=announce))
    except OSError as exc:  # the port is taken, or the host is not an address of this machine
        raise click.ClickException(str(exc)) from exc


@main.command("plugins")
@click.option(
    "--plugins-dir", type=click.Path(exists=True, file_okay=False), help="Also load every *.py of this directory."
)
def plugins(plugins_dir: str | None) -> None:
    """Print the installed plugins, their versions and the hooks they implement, as JSON."""
    import json

    from refund_adapter.plugins import create_plugin_manager, plugins_info

    click.echo(json.dumps(plugins_info(create_plugin_manager(plugins_dir)), indent=2))


@main.command("new-plugin")
@click.argument("name")
@click.option(
    "--dir", "directory", type=click.Path(path_type=Path), help="Where to write it [default: ./refund-adapter-NAME]."
)
def new_plugin(name: str, directory: Path | None) -> None:
    """Write a new platform plugin NAME: a pip-installable package whose tests pass against the testing kit."""
    from refund_adapter.scaffold import ScaffoldError, check_name, write_plugin

    installed = {plugin_name for plugin_name, _ in create_plugin_manager().list_name_plugin()}
    try:
        names = check_name(name, taken=installed)
        target = directory or Path(names.distribution)
        written = write_plugin(names, target)
    except ScaffoldError as exc:
        raise click.ClickException(str(exc)) from None
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(
        f"next: cd {target} && python -m pip install -e '.[test]' && python -m pytest; then `refund-adapter plugins`"
        " lists it. The tutorial: docs/writing_plugins.md"
    )


def _setup_logging(level: str, fmt: str = "text") -> None:
    from refund_adapter.logs import configure_logging

    configure_logging(level, fmt)


@main.command("serve")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="The YAML config.")
@click.option("--log-level", default="info", show_default=True)
def serve(config_path: str, log_level: str) -> None:
    """Run the service until SIGTERM or SIGINT, which drain in-flight requests and stop the engine cleanly."""
    from aiohttp import web

    from refund_adapter.engine.remote import EngineProcess
    from refund_adapter.event_loop import new_event_loop
    from refund_adapter.heap import settle_heap
    from refund_adapter.web.app import create_app
    from refund_adapter.web.protocol import SERVER_LOGGER

    config = load_config_or_exit(config_path)
    _setup_logging(log_level, config.logging.format)
    engine = EngineProcess(config_path, log_level) if config.engine.own_process else None
    app = create_app(config, engine_process=engine)

    async def after_start(_app: web.Application) -> None:
        settle_heap()  # after the cleanup contexts (store, plugins, engine): on_startup runs them first

    app.on_startup.append(after_start)
    web.run_app(
        app,
        loop=new_event_loop(config.server.uvloop),
        host=config.server.host,
        port=config.server.port,
        shutdown_timeout=10.0,
        access_log=None,
        logger=SERVER_LOGGER,
        print=lambda _msg: click.echo(f"refund-adapter serving on http://{config.server.host}:{config.server.port}"),
    )


@main.command("demo")
@click.option("--refunds", default=200, show_default=True, help="How many refunds to push through the loop.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--log-level", default="warning", show_default=True)
@click.option("--channel", type=click.Choice(["mapi", "openapi", "both"]), default="mapi", show_default=True,
              help="How the demo's account reaches Alipay; both: a MAPI and an OpenAPI account side by side.")
def demo(refunds: int, as_json: bool, log_level: str, channel: str) -> None:
    """Sandbox + adapter + simulated shop in one process: push N refunds through the whole loop."""
    import json

    from refund_adapter.demo import run_demo
    from refund_adapter.event_loop import new_event_loop

    _setup_logging(log_level)
    progress = None if as_json else click.echo
    with asyncio.Runner(loop_factory=new_event_loop) as runner:  # the loop serve runs on by default
        summary = runner.run(run_demo(refunds, progress=progress, channel=channel))
    data = summary.as_json()
    if as_json:
        click.echo(json.dumps(data))
    else:
        click.echo(
            f"{data['refunds']} refunds: {data['succeeded']} succeeded, {data['failed']} failed, "
            f"{data['rejected']} rejected; {data['reported']} reported to the shop; {data['batches']} batches; "
            f"{data['elapsed_s']} s ({data['refunds_per_s']} refunds/s); "
            + ("OK" if summary.ok else f"NOT OK (unexpected {data['unexpected_results']}, "
               f"paid twice {data['paid_twice']})")
        )
    raise SystemExit(0 if summary.ok else 1)


def add_plugin_commands(cli: click.Group, pm: pluggy.PluginManager) -> None:
    """Each plugin adds its commands (`register_commands`); one failing is reported and left out, so a broken
    plugin cannot take the operator's other commands away."""
    for impl in _hookimpls(pm, "register_commands", ("cli",)):
        try:
            _call(impl, {"cli": cli})
        except Exception as exc:
            click.echo(f"plugin {impl.plugin_name!r}: register_commands failed: {exc}", err=True)


add_plugin_commands(main, create_plugin_manager())
