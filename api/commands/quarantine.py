"""``fairledger quarantine list|retry``: see refused records, and land them after a fix.

``retry`` parses each open record again with the parser as it is now and the options it was
first read with (or a corrected ``--fields`` order); the records that now parse land as a new
batch and are marked resolved by it, the others stay open with the reason found now. Exit
status 0 when every retried record was resolved, 3 when some are still open.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

from api.commands.context import EXIT_QUARANTINED, store_of


class StatusChoice(StrEnum):
    open = "open"
    resolved = "resolved"
    all = "all"


def register(app: typer.Typer) -> None:
    """Add the ``quarantine`` command group (``list``, ``retry``) to the app."""
    group = typer.Typer(no_args_is_help=True, help="Quarantined records: list and retry.")
    app.add_typer(group, name="quarantine")

    @group.command("list")
    def quarantine_list(
        ctx: typer.Context,
        source: Annotated[str | None, typer.Option(help="only records of this source")] = None,
        status: Annotated[StatusChoice, typer.Option(help="open, resolved or all")] = (
            StatusChoice.open
        ),
        limit: Annotated[int, typer.Option(help="at most this many records")] = 100,
        as_json: Annotated[bool, typer.Option("--json", help="a {data, count} document")] = False,
    ) -> None:
        """Print quarantined records, oldest first: id, status, where, field and reason."""
        from models.store.quarantine import list_quarantine

        with store_of(ctx) as con:
            page, total = list_quarantine(
                con,
                source=source,
                status=None if status is StatusChoice.all else status.value,
                limit=limit,
            )
        if as_json:
            typer.echo(json.dumps({"data": page.to_dicts(), "count": total}, default=str))
            return
        for row in page.iter_rows(named=True):
            resolved = f" (batch {row['resolved_by_batch']})" if row["status"] == "resolved" else ""
            typer.echo(
                f"{row['quarantine_id']}\t{row['status']}{resolved}\t"
                f"{row['source']}:{row['line_no']}\t[{row['record_id'] or '?'}] "
                f"{row['field'] or '(line)'}: {row['reason']}"
            )
        shown = f"{page.height} of {total}" if page.height < total else str(total)
        typer.echo(f"{shown} record(s)", err=True)

    @group.command("retry")
    def quarantine_retry(
        ctx: typer.Context,
        source: Annotated[str | None, typer.Option(help="only records of this source")] = None,
        id: Annotated[
            list[int] | None, typer.Option("--id", help="only this record (repeatable)")
        ] = None,
        fields: Annotated[
            str | None,
            typer.Option(help="corrected comma-separated field order (headerless files)"),
        ] = None,
    ) -> None:
        """Parse open records again with the current parser and land those that now parse."""
        from ingest.quarantine import retry_quarantined

        field_list = [f.strip() for f in fields.split(",")] if fields else None
        with store_of(ctx) as con:
            outcomes = retry_quarantined(con, source=source, ids=id or None, fields=field_list)
        if not outcomes:
            typer.echo("no open records to retry")
            return
        for outcome in outcomes:
            typer.echo(outcome.describe())
        if any(o.still_open or o.skipped for o in outcomes):
            raise typer.Exit(EXIT_QUARANTINED)
