"""The `refund-adapter` command line: one group, one sub-command per job."""

from __future__ import annotations

import click


@click.group()
@click.version_option(package_name="refund-adapter")
def main() -> None:
    """Refund platform orders through Alipay's no-password batch refund, exactly once."""
