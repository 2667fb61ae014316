"""`refunds`, `batches` and `dead-letters`: list, show and fix what the service holds, while it runs.

Every failure is one line on stderr and exit 1 (a bad option too: click's usage block is for the other commands).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from ..config import Config
from ..models import BatchState, RefundState, ReportState
from ..web.views import batch_json, refund_json
from . import render
from .context import load_config_or_exit
from .source import OperatorError, approval_url, reading, requery_batch, retry_reports, service_url

T = TypeVar("T")
MAX_ID = 2**63 - 1
WHERE = ("Reads the store read-only, beside a running `serve` or without one; actions go through the running "
         "service's admin API with server.admin_token (see --url).")


def _one_line(exc: click.UsageError) -> OperatorError:
    return OperatorError(f"{exc.format_message()} (see --help)")


class OneLineCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _one_line(exc) from None


class OperatorGroup(click.Group):
    """A group whose commands fail in one line; `default` runs when options come first, so the older spelling
    (`refunds --config c.yaml`) still lists."""

    command_class = OneLineCommand

    def __init__(self, *args: Any, default: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, no_args_is_help=True, **kwargs)
        self.default = default

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if self.default and args and args[0].startswith("-") and args[0] not in ctx.help_option_names:
            args = [self.default, *args]
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            raise _one_line(exc) from None


def _run(config_path: str, work: Callable[[Config], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(work(load_config_or_exit(config_path)))


config_option = click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
                             help="The YAML config `serve` runs with.")
json_option = click.option("--json", "as_json", is_flag=True, help="JSON for scripts instead of a table.")
url_option = click.option("--url", help="The running service (default: http://server.host:server.port).")
limit_option = click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
id_argument = click.argument("item_id", metavar="ID", type=click.IntRange(1, MAX_ID))


def _choice(values: type[Any]) -> click.Choice:
    return click.Choice([member.value for member in values])


# -- refunds ------------------------------------------------------------------------------------------------------
@click.group("refunds", cls=OperatorGroup, default="list", help=f"Refunds: list, show one, retry its report. {WHERE}")
def refunds() -> None:
    pass


@refunds.command("list")
@config_option
@click.option("--state", type=_choice(RefundState), help="Only refunds in this state.")
@click.option("--report-state", type=_choice(ReportState), help="Only refunds whose report is in this state.")
@click.option("--review/--no-review", default=None, help="Only refunds flagged (or not) for an operator's review.")
@click.option("--before", type=click.IntRange(1, MAX_ID), help="Only refunds with a smaller id (the next page).")
@limit_option
@json_option
def list_refunds(config_path: str, state: str | None, report_state: str | None, review: bool | None,
                 before: int | None, limit: int, as_json: bool) -> None:
    """Refunds, newest first, with where each one is. Read from the store, read-only (works beside `serve`)."""

    async def work(config: Config) -> list[dict[str, Any]]:
        async with reading(config) as store:
            found = await store.list_refunds(state=RefundState(state) if state else None, report_state=report_state,
                                             review=review, before_id=before, limit=limit)
        return [refund_json(refund, config.alipay.accounts) for refund in found]

    rows = _run(config_path, work)
    if as_json:
        render.json_lines(rows)
    else:
        render.table(rows, render.REFUND_COLUMNS, "no refunds")


async def _refund(config: Config, refund_id: int) -> dict[str, Any]:
    async with reading(config) as store:
        refund = await store.get_refund(refund_id)
    if refund is None:
        raise OperatorError(f"no refund {refund_id}")
    return refund_json(refund, config.alipay.accounts)


@refunds.command("show")
@config_option
@id_argument
@json_option
def show_refund(config_path: str, item_id: int, as_json: bool) -> None:
    """One refund, every field. Read from the store, read-only (works beside `serve`)."""
    refund = _run(config_path, lambda config: _refund(config, item_id))
    if as_json:
        render.json_object(refund)
    else:
        render.fields(refund)


@refunds.command("retry")
@config_option
@url_option
@id_argument
def retry_refund(config_path: str, url: str | None, item_id: int) -> None:
    """Put a refund's dead-lettered report back in the outbox, to be delivered to its platform again.

    Through the running service (its reporter delivers at once); with no service running, written to the store."""

    async def work(config: Config) -> int:
        refund = await _refund(config, item_id)
        if refund["report_state"] != ReportState.DEAD:
            raise OperatorError(f"refund {item_id}: its report is {refund['report_state']}, not dead: nothing to retry")
        return await retry_reports(config, service_url(config, url), [item_id])

    requeued = _run(config_path, work)
    click.echo(f"refund {item_id}: report back in the outbox" if requeued else f"refund {item_id}: nothing requeued")


# -- batches ------------------------------------------------------------------------------------------------------
@click.group("batches", cls=OperatorGroup,
             help=f"Alipay batches: list, show one, re-query it, a link to approve it at Alipay. {WHERE}")
def batches() -> None:
    pass


def _batch_row(batch: dict[str, Any]) -> dict[str, Any]:
    return {**batch, "refunds": len(batch["details"])}


@batches.command("list")
@config_option
@click.option("--state", type=_choice(BatchState), help="Only batches in this state.")
@limit_option
@json_option
def list_batches(config_path: str, state: str | None, limit: int, as_json: bool) -> None:
    """Batches, newest first. Read from the store, read-only (works beside `serve`)."""

    async def work(config: Config) -> list[dict[str, Any]]:
        async with reading(config) as store:
            found = await store.list_batches(state=BatchState(state) if state else None, limit=limit)
        return [batch_json(batch) for batch in found]

    rows = _run(config_path, work)
    if as_json:
        render.json_lines(rows)
    else:
        render.table([_batch_row(row) for row in rows], render.BATCH_COLUMNS, "no batches")


@batches.command("show")
@config_option
@click.argument("batch", metavar="ID|BATCH_NO")
@json_option
def show_batch(config_path: str, batch: str, as_json: bool) -> None:
    """One batch and its refunds, by id or by batch_no. Read from the store, read-only (works beside `serve`)."""
    by_id = batch.isascii() and batch.isdigit() and int(batch) <= MAX_ID  # a batch_no starts with 8 digits of date
    async def work(config: Config) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with reading(config) as store:
            found = await (store.get_batch(int(batch)) if by_id else store.find_batch(batch))
            if found is None:
                raise OperatorError(f"no batch {batch}")
            members = await store.list_refunds(batch_id=found.id, limit=1000)
        return batch_json(found), [refund_json(refund, config.alipay.accounts) for refund in members]

    found, members = _run(config_path, work)
    if as_json:
        render.json_object({**found, "refunds": members})
    else:
        render.fields(found, skip=("details",))
        click.echo("")
        render.table(members, render.REFUND_COLUMNS, "no refunds")


@batches.command("requery")
@config_option
@url_option
@id_argument
def requery(config_path: str, url: str | None, item_id: int) -> None:
    """Ask the running service to query Alipay for this batch's results now (a submitted or unknown batch, or one
    in review). Needs the running `serve`: querying Alipay is its engine's job."""
    async def work(config: Config) -> dict[str, Any]:
        async with reading(config) as store:
            if await store.get_batch(item_id) is None:
                raise OperatorError(f"no batch {item_id}")
        return await requery_batch(config, service_url(config, url), item_id)

    batch = _run(config_path, work)
    click.echo(f"batch {item_id}: re-query requested, now {batch['state']}")


@batches.command("approve-url")
@config_option
@url_option
@id_argument
def approve_url(config_path: str, url: str | None, item_id: int) -> None:
    """Print a link to approve a batch awaiting approval at Alipay (an account on `channel: mapi_pwd`): open it in
    a browser, log in to Alipay and confirm with the payment password. Good today (Beijing time) only; every call
    makes a fresh one with the same batch number. Needs the running `serve`."""
    answer = _run(config_path, lambda config: approval_url(config, service_url(config, url), item_id))
    click.echo(answer["url"])
    click.echo(f"batch {answer['batch_no']}: open the link above before {answer['expires_at']}", err=True)


# -- dead letters -------------------------------------------------------------------------------------------------
@click.group("dead-letters", cls=OperatorGroup,
             help=f"Reports the platforms never took (dead letters): list, retry. {WHERE}")
def dead_letters() -> None:
    pass


@dead_letters.command("list")
@config_option
@limit_option
@json_option
def list_dead_letters(config_path: str, limit: int, as_json: bool) -> None:
    """Refunds whose report gave up, newest first, with the last error. Read from the store, read-only."""

    async def work(config: Config) -> list[dict[str, Any]]:
        async with reading(config) as store:
            found = await store.list_refunds(report_state=ReportState.DEAD, limit=limit)
        return [refund_json(refund, config.alipay.accounts) for refund in found]

    rows = _run(config_path, work)
    if as_json:
        render.json_lines(rows)
    else:
        render.table(rows, render.DEAD_LETTER_COLUMNS, "no dead letters")


@dead_letters.command("retry")
@config_option
@url_option
@click.argument("refund_ids", metavar="[ID]...", nargs=-1, type=click.IntRange(1, MAX_ID))
def retry_dead_letters(config_path: str, url: str | None, refund_ids: tuple[int, ...]) -> None:
    """Put dead letters (all, or those of the given refund ids) back in the outbox.

    Through the running service (its reporter delivers at once); with no service running, written to the store."""
    requeued = _run(config_path, lambda config: retry_reports(config, service_url(config, url), refund_ids or None))
    click.echo(f"requeued {requeued}")


def add_operator_commands(cli: click.Group) -> None:
    for group in (refunds, batches, dead_letters):
        cli.add_command(group)
    # The older spelling of `dead-letters retry`, kept for the scripts that use it.
    cli.add_command(OneLineCommand("retry-dead-letters", callback=retry_dead_letters.callback,
                                   params=retry_dead_letters.params, help=retry_dead_letters.help, hidden=True))
