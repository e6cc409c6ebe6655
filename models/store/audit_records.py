"""Record lines and record hashes of stored run versions, computed in DuckDB.

The SQL below writes the same bytes as ``models.audit.records.record_line`` (the documented
algorithm, in plain Python); tests compare the two on awkward values. A run version's batch is
``batch_id`` in ``runs`` (current content) or ``run_history`` (earlier content): the batch that
first stored that content.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import duckdb
import polars as pl

from models.audit.chain import AuditEntry
from models.audit.records import (
    RECORD_COLUMNS,
    RECORD_FORMAT,
    Kind,
    records_sha256_frame,
    with_record_sha256,
)
from models.store.audit import append_audit
from models.store.db import read_frame

# Strings with a control character take the slow path: DuckDB's to_json writes \u001A where
# Python writes \u001a, so those are escaped here character by character.
_ESCAPE = (
    "CASE WHEN c = '\\' THEN '\\\\' WHEN c = '\"' THEN '\\\"' "
    "WHEN c = chr(8) THEN '\\b' WHEN c = chr(9) THEN '\\t' WHEN c = chr(10) THEN '\\n' "
    "WHEN c = chr(12) THEN '\\f' WHEN c = chr(13) THEN '\\r' "
    "WHEN ord(c) < 32 THEN printf('\\u%04x', ord(c)) ELSE c END"
)


def _str(expr: str) -> str:
    return (
        f"CASE WHEN {expr} IS NULL THEN 'null' "
        f"WHEN NOT regexp_matches({expr}, '[\\x00-\\x1f]') THEN to_json({expr}) "
        f"ELSE '\"' || array_to_string(list_transform(string_split({expr}, ''), "
        f"lambda c: {_ESCAPE}), '') || '\"' END"
    )


def _float(expr: str) -> str:
    return (
        f"CASE WHEN {expr} IS NULL THEN 'null' WHEN isnan({expr}) THEN 'NaN' "
        f"WHEN {expr} = 'inf'::DOUBLE THEN 'Infinity' "
        f"WHEN {expr} = '-inf'::DOUBLE THEN '-Infinity' ELSE CAST({expr} AS VARCHAR) END"
    )


def _json(kind: Kind, expr: str) -> str:
    if kind == "str":
        return _str(expr)
    if kind == "float":
        return _float(expr)
    if kind == "int":
        return f"coalesce(CAST({expr} AS VARCHAR), 'null')"
    if kind == "time":
        return (
            f"coalesce('\"' || strftime({expr} AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ') "
            "|| '\"', 'null')"
        )
    if kind == "tres":
        item = f"'{{\"name\":' || {_str('t.name')} || ',\"count\":' || {_float('t.count')} || '}}'"
        return (
            f"coalesce('[' || array_to_string(list_transform({expr}, lambda t: {item}), ',') "
            "|| ']', 'null')"
        )
    return (
        f"coalesce('[' || array_to_string(list_transform({expr}, lambda s: {_str('s')}), ',') "
        "|| ']', 'null')"
    )


def record_line_sql() -> str:
    """Return the SQL expression of a run version's record line (over the run columns).

    Every string escaped character by character where needed: exact, but slow at scale (see
    ``record_lines_sql`` for the fast path).
    """
    parts = []
    for i, (name, kind) in enumerate(RECORD_COLUMNS):
        comma = "," if i else ""
        quoted = '"' + name + '"'
        parts.append(f"'{comma}{quoted}:' || {_json(kind, quoted)}")
    return "'{' || " + " || ".join(parts) + " || '}'"


# DuckDB's to_json writes a double as Python's repr does for 0 and for magnitudes in
# [1e-4, 1e16); outside it (1e-07, 1e+16) and for NaN or infinities it writes other text.
_FLOAT_LIKE_PYTHON = "({x} IS NULL OR {x} = 0 OR (abs({x}) >= 1e-4 AND abs({x}) < 1e16))"


def _fast_value(name: str, kind: Kind) -> str:
    quoted = '"' + name + '"'
    if kind == "time":  # the documented text, which to_json then quotes
        return f"strftime({quoted} AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ')"
    return quoted


def _fast_line_sql() -> str:
    """Return SQL of the record line written by DuckDB's to_json over one struct of the row.

    It equals the documented line unless a string holds a control character other than
    \\b \\t \\n \\f \\r (to_json writes ``\\u001A`` where Python writes ``\\u001a``), which
    puts ``\\u00`` in the line, or a float is outside ``_FLOAT_LIKE_PYTHON``: ``_fast_ok_sql``
    says when, and ``record_lines_sql`` sends the other rows to the exact expression.
    """
    fields = ", ".join(f'"{name}" := {_fast_value(name, kind)}' for name, kind in RECORD_COLUMNS)
    return f"CAST(to_json(struct_pack({fields})) AS VARCHAR)"


def _fast_ok_sql() -> str:
    """Return SQL that is true when every float of the row is written as Python writes it."""
    checks = []
    for name, kind in RECORD_COLUMNS:
        if kind == "float":
            checks.append(_FLOAT_LIKE_PYTHON.format(x=f'"{name}"'))
        elif kind == "tres":
            item = _FLOAT_LIKE_PYTHON.format(x="t.count")
            checks.append(
                f'coalesce(list_bool_and(list_transform("{name}", lambda t: {item})), true)'
            )
    return " AND ".join(checks) if checks else "true"


def record_lines_sql(where: str) -> str:
    """Return SQL of (batch_id, run_key, record_line) over the run versions ``where`` selects."""
    return (
        f"SELECT batch_id, run_key, CASE WHEN _ok AND NOT contains(_fast, '\\u00') "
        f"THEN _fast ELSE {record_line_sql()} END AS record_line "
        f"FROM (SELECT *, {_fast_line_sql()} AS _fast, {_fast_ok_sql()} AS _ok "
        f"FROM ({_versions(where)}))"
    )


def _versions(where: str) -> str:
    columns = ", ".join(f'"{name}"' for name, _ in RECORD_COLUMNS)
    return (
        f"SELECT batch_id, {columns} FROM runs {where} "
        f"UNION ALL SELECT batch_id, {columns} FROM run_history {where}"
    )


def aggregate_sql(hashes: str, *, group: bool) -> str:
    """Return SQL of (records_sha256, count) over ``hashes`` (batch_id, run_key, record_sha256)."""
    digest = (
        "coalesce(sha256(string_agg(record_sha256 || chr(10), '' "
        "ORDER BY run_key, record_sha256)), sha256(''))"
    )
    if group:
        return f"SELECT batch_id, {digest}, count(*) FROM ({hashes}) GROUP BY batch_id"
    return f"SELECT {digest}, count(*) FROM ({hashes})"


def record_hashes_sql(where: str) -> str:
    """Return SQL of (batch_id, run_key, record_sha256) over the run versions ``where`` selects."""
    return (
        f"SELECT batch_id, run_key, sha256(record_line) AS record_sha256 "
        f"FROM ({record_lines_sql(where)})"
    )


def read_record_hashes(con: duckdb.DuckDBPyConnection, batch_ids: Sequence[int]) -> pl.DataFrame:
    """Return every run version the batches stored: ``batch_id``, ``run_key``, ``record_sha256``.

    Recomputed from the runs; ordered by batch, run_key, record_sha256.
    """
    where = "WHERE batch_id IN (SELECT unnest($1::BIGINT[]))"
    return read_frame(
        con,
        f"{record_hashes_sql(where)} ORDER BY batch_id, run_key, record_sha256",
        params=[list(batch_ids)],
    )


def read_record_lines(con: duckdb.DuckDBPyConnection, run_keys: Sequence[str]) -> pl.DataFrame:
    """Return every stored version of the runs: ``batch_id``, ``run_key``, ``record_line``.

    Ordered by run_key, then batch.
    """
    where = "WHERE run_key IN (SELECT unnest($1::VARCHAR[]))"
    return read_frame(
        con, f"{record_lines_sql(where)} ORDER BY run_key, batch_id", params=[list(run_keys)]
    )


def record_ingest_batch(
    con: duckdb.DuckDBPyConnection,
    *,
    batch_id: int,
    source: str,
    scheduler: str,
    counts: Mapping[str, int],
    actor: str = "ingest",
) -> AuditEntry:
    """Hash the run versions batch ``batch_id`` stored and append its ``ingest_batch`` entry.

    Call it inside the batch's transaction, after its runs landed. ``counts`` are the batch's
    summary counts (lines read, runs new/changed/unchanged, ...), copied into the payload.
    """
    # The lines are written by DuckDB, hashed by polars-hash (DuckDB's SHA-256 does not use the
    # CPU's SHA instructions: about 4x slower), the hashes stored in one insert.
    lines = con.sql(record_lines_sql("WHERE batch_id = $1"), params=[batch_id]).pl()
    hashes = with_record_sha256(lines)
    con.register("batch_record_hashes", hashes.to_arrow())
    try:
        con.execute(
            "INSERT INTO audit_record_hashes (batch_id, run_key, record_sha256) "
            "SELECT batch_id, run_key, record_sha256 FROM batch_record_hashes"
        )
    finally:
        con.unregister("batch_record_hashes")
    digest, versions = records_sha256_frame(hashes), hashes.height
    payload: dict[str, object] = {
        "batch_id": batch_id,
        "source": source,
        "scheduler": scheduler,
        **{key: int(value) for key, value in counts.items() if key != "batch_id"},
        "record_format": RECORD_FORMAT,
        "run_versions": int(versions),
        "records_sha256": str(digest),
    }
    return append_audit(con, kind="ingest_batch", actor=actor, payload=payload)
