"""Opening the DuckDB file and applying the numbered migrations in ``schema/``.

Applied migrations are recorded with the SHA-256 of their text; an applied migration whose file
has since changed is refused (a migration is never edited after it lands).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb
import polars as pl

from models.errors import MigrationError, StoreError, StoreLocked

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    """Return the migrations shipped in ``schema/``, in version order."""
    found = []
    for entry in resources.files("models.store").joinpath("schema").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    return sorted(found, key=lambda m: m.version)


@contextmanager
def read_snapshot(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Yield ``con`` inside one read transaction: every read sees the same state of the store
    (a policy, its runs and their watermark together), committed afterwards."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    finally:
        con.execute("COMMIT")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Yield ``con`` inside one write transaction: committed when the block ends, rolled back
    (and the error raised again) when it or the commit raises."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def read_frame(con: duckdb.DuckDBPyConnection, query: str, params: object = None) -> pl.DataFrame:
    """Return the rows of ``query`` (bound to ``params``) as a polars DataFrame."""
    frame: pl.DataFrame = con.sql(query, params=params).pl()
    return frame


def connect(path: Path | str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Return a connection to the DuckDB file at ``path`` with the session in UTC.

    Raises StoreLocked naming the holder when another process has the file.
    """
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        message = str(exc)
        if "lock" in message.lower():
            holder = re.search(r"held in (.+?)(?:\s*\(PID (\d+)\))", message)
            who = f"{holder.group(1)} (PID {holder.group(2)})" if holder else "another process"
            raise StoreLocked(
                f"{path} is in use by {who}. Another fairledger (probably `fairledger serve`) "
                "owns the database: stop it, or use its HTTP API instead of the CLI."
            ) from exc
        raise StoreError(f"cannot open {path}: {message}") from exc
    con.execute("SET TimeZone = 'UTC'")
    return con


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply pending migrations in one transaction each; return the names applied."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
        "name VARCHAR NOT NULL, checksum VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
    )
    applied = {
        row[0]: (row[1], row[2])
        for row in con.execute("SELECT version, name, checksum FROM schema_migrations").fetchall()
    }
    done = []
    for migration in migrations():
        if migration.version in applied:
            name, checksum = applied[migration.version]
            if checksum != migration.checksum:
                raise MigrationError(
                    f"migration {name} was edited after it was applied "
                    f"(recorded sha256 {checksum[:12]}…, file {migration.checksum[:12]}…); "
                    "add a new migration instead"
                )
            continue
        try:
            con.execute("BEGIN TRANSACTION")
            con.execute(migration.sql)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?, now())",
                [migration.version, migration.name, migration.checksum],
            )
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise MigrationError(f"migration {migration.name} failed: {exc}") from exc
        done.append(migration.name)
    return done


def open_store(path: Path | str) -> duckdb.DuckDBPyConnection:
    """Return a read-write, migrated connection to the store at ``path``."""
    con = connect(path)
    migrate(con)
    return con
