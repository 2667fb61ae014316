"""The `refund-adapter` command line: one group, one sub-command per job."""

from __future__ import annotations

import click


@click.group()
@click.version_option(package_name="refund-adapter")
def main() -> None:
    """Refund platform orders through Alipay's no-password batch refund, exactly once."""


@main.command("check-config")
@click.argument("path", type=click.Path(dir_okay=False))
def check_config(path: str) -> None:
    """Validate a configuration file: print every problem (exit 2), or a one-line summary (exit 0)."""
    from refund_adapter.config import ConfigError, load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise SystemExit(2) from None
    platforms = ", ".join(sorted(config.platforms)) or "(none)"
    click.echo(f"ok: {len(config.alipay.accounts)} accounts, platforms: {platforms}")


@main.command("plugins")
@click.option(
    "--plugins-dir", type=click.Path(exists=True, file_okay=False), help="Also load every *.py of this directory."
)
def plugins(plugins_dir: str | None) -> None:
    """Print the installed plugins, their versions and the hooks they implement, as JSON."""
    import json

    from refund_adapter.plugins import create_plugin_manager, plugins_info

    click.echo(json.dumps(plugins_info(create_plugin_manager(plugins_dir)), indent=2))
