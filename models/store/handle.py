"""The one DuckDB connection a serving process holds, shared by its threads and jobs.

DuckDB allows one read-write connection per file per process; threads must not share it
directly but each take a cursor (``con.cursor()``), which is cheap. Writes are serialised
through one lock so that two jobs (an ingest landing a batch, a recompute storing a snapshot)
never interleave their transactions.

    handle = StoreHandle.open(path)          # connect + migrate
    rows = handle.read().execute("SELECT 1").fetchall()   # a fresh cursor, no lock
    with handle.write() as cur:              # a fresh cursor under the write lock
        write_batch(cur, ...)
    handle.close()

A cursor from ``read()`` should be closed by its caller when it is done (or used with
``with handle.reading() as cur:``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from models.store.db import open_store, read_snapshot


class StoreHandle:
    """A connection held for a process's life, with a lock that serialises writes."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path | str | None = None) -> None:
        self._con = con
        self._lock = threading.Lock()
        self.path = Path(path) if path is not None else None
        self._closed = False

    @classmethod
    def open(cls, path: Path | str) -> StoreHandle:
        """Return a handle on the migrated store at ``path`` (raises StoreLocked if held)."""
        return cls(open_store(path), path)

    def read(self) -> duckdb.DuckDBPyConnection:
        """Return a fresh cursor for reading; the caller closes it."""
        cur = self._con.cursor()
        cur.execute("SET TimeZone = 'UTC'")
        return cur

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield a fresh cursor for reading and close it afterwards."""
        cur = self.read()
        try:
            yield cur
        finally:
            cur.close()

    @contextmanager
    def snapshot(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield a fresh reading cursor inside one read transaction (every read sees the same
        state of the store) and close it afterwards."""
        with self.reading() as cur, read_snapshot(cur):
            yield cur

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield a fresh cursor while holding the write lock; the caller manages transactions."""
        with self._lock:
            cur = self.read()
            try:
                yield cur
            finally:
                cur.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the connection (after taking the write lock, so no write is cut short)."""
        with self._lock:
            if not self._closed:
                self._con.close()
                self._closed = True
