"""Which runs changed since a batch, for caches that recompute only what changed.

Every change to the current runs goes through ``models.store.runs.write_batch`` and leaves a
trace with the batch's id: a content it stored carries it in ``runs.batch_id``, a content it
took out of ``runs`` carries it in ``run_history.superseded_by_batch`` (whatever replaced that
one, even an older content promoted back, is current now).
"""

from __future__ import annotations

import duckdb
import polars as pl

from models.frames import RUNS, conform

JOB_COLUMNS = ("cluster", "job_id_raw")


# run_key, cluster and job_id_raw of the runs whose current content may have changed after
# ingest batch $1 (a run may come more than once).
CHANGED_SINCE_SQL = (
    "SELECT run_key, cluster, job_id_raw FROM runs WHERE batch_id > $1 "
    "UNION ALL SELECT run_key, cluster, job_id_raw FROM run_history WHERE superseded_by_batch > $1"
)


def last_change_batch(con: duckdb.DuckDBPyConnection) -> int | None:
    """Return the last ingest batch that changed the runs: stored a content, or sent one to
    history (None before any run)."""
    value = con.execute(
        "SELECT greatest((SELECT max(batch_id) FROM runs), "
        "(SELECT max(superseded_by_batch) FROM run_history))"
    ).fetchall()[0][0]
    return None if value is None else int(value)


def jobs_changed_since(
    con: duckdb.DuckDBPyConnection, batch_id: int, *, clusters: list[str]
) -> pl.DataFrame:
    """Return ``cluster`` and ``job_id_raw`` of the jobs of ``clusters`` with a run whose
    current content may have changed after batch ``batch_id`` (once each)."""
    frame = con.sql(
        f"SELECT DISTINCT cluster, job_id_raw FROM ({CHANGED_SINCE_SQL}) "
        "WHERE cluster IN (SELECT unnest($2::VARCHAR[]))",
        params=[batch_id, clusters],
    ).pl()
    return conform(frame, {c: RUNS[c] for c in JOB_COLUMNS})


def read_runs_of_jobs(
    con: duckdb.DuckDBPyConnection, jobs: pl.DataFrame, *, columns: tuple[str, ...]
) -> pl.DataFrame:
    """Return the current version of every run of ``jobs`` (``cluster``, ``job_id_raw``; a
    null job id matches a null one) with ``columns``."""
    columns = tuple(dict.fromkeys(columns))
    select = ", ".join(f'r."{c}"' for c in columns)
    con.register("changed_jobs", jobs.select(JOB_COLUMNS).to_arrow())
    try:
        frame = con.sql(
            f"SELECT {select} FROM runs r SEMI JOIN changed_jobs j ON r.cluster = j.cluster "
            "AND r.job_id_raw IS NOT DISTINCT FROM j.job_id_raw"
        ).pl()
    finally:
        con.unregister("changed_jobs")
    return conform(frame, {c: RUNS[c] for c in columns})
