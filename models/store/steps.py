"""Landing steps: each step keeps only its current content, told apart by its content columns.

A step has no history and nothing outside this module names a step's content, so steps store
no content hash (migration 0010 dropped it): a step that arrives again is compared with the
stored one column by column (``content_sql``, exact), which costs only for the steps that were
stored already, where a hash cost every step as it landed.

The current content is the newest, as for runs (``models.store.runs``): the greatest
(observed_at, lifecycle progress, content), a content's observed_at being the latest time it was
observed; a content older than the stored one is dropped and changes nothing.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

from models.frames import STEPS
from models.store.staging import (
    PROVENANCE,
    first_per_sql,
    progress_sql,
    record_batches,
    staged_frame,
)


def content_sql(table: str | None = None) -> str:
    """Return the SQL of a step's content: the struct of its content columns (of ``table``'s
    row where given). Structs compare by value, nulls inside them as equal, and order
    field by field."""
    prefix = f"{table}." if table else ""
    parts = [f'"{name}" := {prefix}"{name}"' for name in STEPS if name not in PROVENANCE]
    return f"struct_pack({', '.join(parts)})"


def _newest_sql(alias: str) -> str:
    """Return SQL of the struct a step row of ``alias`` is ordered by: newest is greatest."""
    return (
        f"struct_pack(o := coalesce({alias}.observed_at, '-infinity'::TIMESTAMPTZ), "
        f"p := {progress_sql(alias)}, "
        f"c := {content_sql(alias)})"
    )


def upsert_steps(
    con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, *, batch_id: int, observed_at: datetime
) -> tuple[int, int, int]:
    """Merge the ``STEPS`` rows of ``frame`` into ``steps``; return (new, changed, unchanged).

    ``frame``'s own ``observed_at`` column wins over ``observed_at`` for its rows. A key that
    comes more than once keeps its newest content (of equal ones the later line). ``changed``
    counts stored steps whose content was replaced; a stored content observed again later
    moves its observed_at to the later time.
    """
    staged = staged_frame(frame, STEPS, observed_at)
    rows = "SELECT *, ?::BIGINT AS batch_id, now() AS ingested_at FROM incoming"
    keys = staged["step_key"].n_unique()
    if keys != staged.height:
        staged = staged.with_row_index("_line")
        rows = first_per_sql(rows, partition="step_key", order=f"{_newest_sql('incoming')} DESC")
    con.register("incoming", record_batches(staged))
    try:
        stored = con.execute(
            "SELECT count(*) FROM steps t SEMI JOIN incoming s ON t.step_key = s.step_key"
        ).fetchall()[0][0]
        if not stored:  # every step is new (a first load): straight into the table
            con.execute(f"INSERT INTO steps BY NAME {rows}", [batch_id])
            return keys, 0, 0
        con.execute(f"CREATE OR REPLACE TEMP TABLE staged_steps AS {rows}", [batch_id])
    finally:
        con.unregister("incoming")
    # Per incoming step: new, the stored content again (observed later: bump), or another
    # content that is newer (replace) or older (dropped).
    con.execute(
        "CREATE OR REPLACE TEMP TABLE step_outcomes AS SELECT s.step_key AS k, "
        "t.step_key IS NULL AS is_new, "
        f"t.step_key IS NOT NULL AND {content_sql('s')} = {content_sql('t')} AS same, "
        f"t.step_key IS NOT NULL AND {content_sql('s')} <> {content_sql('t')} "
        f"AND {_newest_sql('s')} > {_newest_sql('t')} AS replace, "
        "s.observed_at > coalesce(t.observed_at, '-infinity'::TIMESTAMPTZ) AS later, "
        "s.observed_at FROM staged_steps s LEFT JOIN steps t ON t.step_key = s.step_key"
    )
    new, changed, unchanged = con.execute(
        "SELECT count(*) FILTER (is_new), count(*) FILTER (replace), "
        "count(*) FILTER (NOT is_new AND NOT replace) FROM step_outcomes"
    ).fetchall()[0]
    con.execute(
        "UPDATE steps SET observed_at = o.observed_at FROM step_outcomes o "
        "WHERE steps.step_key = o.k AND o.same AND o.later"
    )
    if changed:
        con.execute(
            "DELETE FROM steps USING step_outcomes o WHERE steps.step_key = o.k AND o.replace"
        )
    if new or changed:
        con.execute(
            "INSERT INTO steps BY NAME SELECT s.* FROM staged_steps s JOIN step_outcomes o "
            "ON o.k = s.step_key WHERE o.is_new OR o.replace"
        )
    con.execute("DROP TABLE staged_steps")
    con.execute("DROP TABLE step_outcomes")
    return int(new), int(changed), int(unchanged)
