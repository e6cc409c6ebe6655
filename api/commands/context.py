"""What every ``fairledger`` command shares: its settings, the store, the ``--as-of`` time, the
current factors and the exit status of a load that quarantined records.

``api.cli`` puts the settings on the Typer context (its callback); the command modules read them
through here, so none of them imports ``api.cli``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import polars as pl
import typer

from api.settings import Settings
from models.store import Connection, open_store

EXIT_QUARANTINED = 3  # loaded, but some records were quarantined


def settings_of(ctx: typer.Context) -> Settings:
    """Return the settings the command line was started with."""
    settings: Settings = ctx.obj["settings"]
    return settings


@contextmanager
def store_of(ctx: typer.Context) -> Iterator[Connection]:
    """Open the store named by the settings for a command; close it afterwards."""
    con = open_store(settings_of(ctx).db)
    try:
        yield con
    finally:
        con.close()


def parse_as_of(text: str | None) -> datetime:
    """Return ``text`` as an aware UTC time (a time without a zone is UTC); now if None."""
    if text is None:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"--as-of {text!r} is not an ISO 8601 time") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def current_factors(ctx: typer.Context, as_of: datetime) -> tuple[pl.DataFrame, str]:
    """Return the ``FACTORS`` frame at ``as_of`` and the policy's fair-share algorithm."""
    from api.usecases.factors import factors_as_of

    with store_of(ctx) as con:
        return factors_as_of(con, as_of)
