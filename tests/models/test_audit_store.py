"""The audit log in a real DuckDB file: entries land with their change, and any alteration of an
entry, a run version or a policy version is named by verification."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from audit_data import build_store, land
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.audit.records import RECORD_COLUMNS, record_line, record_sha256, records_sha256
from models.store import Connection, open_store
from models.store.audit import append_audit, read_audit_entries, read_audit_head
from models.store.audit_records import read_record_hashes, read_record_lines
from models.store.audit_verify import verify_store
from tests.strategies import any_floats, examples, utf8_text


@pytest.fixture
def con(tmp_path: Path) -> Iterator[Connection]:
    con = build_store(tmp_path / "audit.duckdb")
    yield con
    con.close()


def _tampered(con: Connection, *statements: str) -> list[str]:
    """Return the finding messages after ``statements``, which are rolled back afterwards."""
    con.execute("BEGIN TRANSACTION")
    try:
        for statement in statements:
            con.execute(statement)
        report = verify_store(con)
    finally:
        con.execute("ROLLBACK")
    assert not report.ok, f"not detected: {statements}"
    assert report.first is not None
    return [report.first.message(), *(f.message() for f in report.findings)]


def test_a_clean_store_verifies_with_its_head_and_counts(con: Connection) -> None:
    report = verify_store(con)
    head = read_audit_head(con)
    assert report.ok and head is not None
    assert (report.head_seq, report.head_sha256) == (head.seq, head.entry_sha256)
    kinds = [e.kind for e in read_audit_entries(con)]
    assert kinds == ["policy_version", "ingest_batch", "ingest_batch"]
    assert report.counts["batches"] == 2 and report.counts["policy_versions"] == 1
    assert report.counts["run_versions"] == 7  # 5 + 2, one of them a revision of hpc/101/1


def test_the_batch_entry_holds_the_documented_hash_of_what_it_stored(con: Connection) -> None:
    entry = read_audit_entries(con, kinds=["ingest_batch"])[1]
    payload = json.loads(entry.payload or "{}")
    assert payload["batch_id"] == 2 and payload["runs_new"] == 1 and payload["runs_changed"] == 1
    stored = con.sql("SELECT * FROM run_versions WHERE batch_id = 2").pl()
    pairs = [(row["run_key"], record_sha256(record_line(row))) for row in stored.to_dicts()]
    assert payload["run_versions"] == 2 and payload["records_sha256"] == records_sha256(pairs)


def test_sql_record_lines_are_the_bytes_of_the_documented_python(con: Connection) -> None:
    land(
        con,
        [
            {
                "run_key": "hpc/odd/1",
                "job_name": '\x00\x0b\x1a\x7f\u2028/😀"\\\n',
                "account": "",
                "alloc_mem_mb": float("nan"),
                "billing": float("-inf"),
                "tres": [{"name": "mem", "count": 1e16}, {"name": None, "count": -0.0}],
                "nodes": [None, "n\x01"],
                "array_job_id": 2**62,
                "start_at": datetime(1970, 1, 1, tzinfo=UTC),
                "end_at": datetime(2026, 3, 31, 23, 59, 59, 999999, tzinfo=UTC),
            },
            # No control character, but a backslash before "u00": the exact path, same bytes.
            {"run_key": "hpc/odd/2", "job_name": "C:\\u00e9 \t\n", "nodes": []},
        ],
    )
    stored = con.sql("SELECT * FROM run_versions ORDER BY run_key, batch_id").pl().to_dicts()
    keys = sorted({row["run_key"] for row in stored})
    sql = read_record_lines(con, keys)["record_line"].to_list()
    assert sql == [record_line(row) for row in stored]
    odd = next(line for line in sql if "hpc/odd/1" in line)
    assert '"alloc_mem_mb":NaN' in odd and '"count":1e+16' in odd and "\\u000b\\u001a" in odd
    hashes = read_record_hashes(con, [1, 2, 3])
    by_key = {(row["batch_id"], row["run_key"], record_sha256(record_line(row))) for row in stored}
    assert set(hashes.select("batch_id", "run_key", "record_sha256").iter_rows()) == by_key
    assert hashes.select("batch_id", "run_key").rows() == sorted(
        hashes.select("batch_id", "run_key").rows()
    )


floats = any_floats | st.sampled_from(
    [0.0, -0.0, 1e-4, 9.999999999999999e-5, 1e16, 9999999999999998.0, 1e-7, 5e-324, 4.0, 0.1]
)
texts = utf8_text(max_size=12)


@pytest.mark.slow
@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "job_name": st.none() | texts,
                "alloc_mem_mb": st.none() | floats,
                "billing": st.none() | floats,
                "tres": st.none()
                | st.lists(st.fixed_dictionaries({"name": texts, "count": floats}), max_size=3),
                "nodes": st.none() | st.lists(texts, max_size=3),
                "start_at": st.none()
                | st.datetimes(
                    # Hypothesis bounds are naive; timezones= makes the values aware
                    min_value=datetime(1970, 1, 1),  # noqa: DTZ001
                    max_value=datetime(2200, 1, 1),  # noqa: DTZ001
                    timezones=st.just(UTC),
                ),
                "elapsed_s": st.none() | st.integers(-(2**63), 2**63 - 1),
            }
        ),
        min_size=1,
        max_size=40,
    )
)
def test_sql_record_lines_equal_the_documented_python_for_any_values(
    tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, object]]
) -> None:
    con = open_store(tmp_path_factory.mktemp("lines") / "store.duckdb")
    try:
        keyed = [{**row, "run_key": f"hpc/{i}/1"} for i, row in enumerate(rows)]
        land(con, keyed)
        stored = con.sql("SELECT * FROM run_versions ORDER BY run_key").pl().to_dicts()
        sql = read_record_lines(con, [row["run_key"] for row in stored])["record_line"]
        assert sql.to_list() == [record_line(row) for row in stored]
    finally:
        con.close()


def test_an_entry_rolls_back_with_the_change_it_records(con: Connection) -> None:
    before = read_audit_head(con)
    con.execute("BEGIN TRANSACTION")
    append_audit(con, kind="period_close", actor="admin", payload={"period": "2026-03"})
    con.execute("ROLLBACK")
    assert read_audit_head(con) == before
    con.execute("BEGIN TRANSACTION")
    entry = append_audit(con, kind="period_close", actor="admin", payload={"period": "2026-03"})
    con.execute("COMMIT")
    assert before is not None and entry.seq == before.seq + 1
    assert entry.prev_sha256 == before.entry_sha256 and verify_store(con).ok


def _changed(column: str, kind: str) -> str:
    """SQL that changes one byte (one unit) of ``column`` of a run of batch 1."""
    quoted = f'"{column}"'
    if kind == "str":
        return f"coalesce({quoted}, '') || 'x'"
    if kind == "int":
        return f"coalesce({quoted}, 0) + 1"
    if kind == "float":
        return f"coalesce({quoted}, 0) + 1"
    if kind == "time":
        return f"coalesce({quoted}, TIMESTAMPTZ '2026-01-01') + INTERVAL 1 MICROSECOND"
    if kind == "tres":
        return "[{'name': 'cpu', 'count': 5.0}]"
    return "['gpu009']"


@pytest.mark.parametrize(("column", "kind"), RECORD_COLUMNS, ids=[c for c, _ in RECORD_COLUMNS])
def test_a_change_to_any_content_column_of_a_run_is_named(
    con: Connection, column: str, kind: str
) -> None:
    messages = _tampered(
        con, f"UPDATE runs SET \"{column}\" = {_changed(column, kind)} WHERE run_key = 'hpc/102/1'"
    )
    assert messages[0].startswith("run hpc/102/1 (batch 1): "), messages
    if column == "run_key":  # the version moved: the old key is missing, the new unrecorded
        assert "missing (deleted)" in messages[0]
        assert any(m.startswith("run hpc/102/1x (batch 1): a version hashing") for m in messages)
    else:
        assert "(the run was altered)" in messages[0]


def test_a_change_to_an_earlier_version_in_history_is_named(con: Connection) -> None:
    messages = _tampered(con, "UPDATE run_history SET alloc_cpus = 5 WHERE run_key = 'hpc/101/1'")
    assert messages[0].startswith("run hpc/101/1 (batch 1): its content hashes to")
    assert "altered" in messages[0]


def test_deleted_and_inserted_runs_are_named(con: Connection) -> None:
    deleted = _tampered(con, "DELETE FROM runs WHERE run_key = 'hpc/105/1'")
    assert deleted[0].startswith("run hpc/105/1 (batch 1): a version recorded with hash")
    assert "missing (deleted)" in deleted[0]
    inserted = _tampered(
        con,
        "INSERT INTO runs SELECT * REPLACE ('hpc/999/1' AS run_key) FROM runs "
        "WHERE run_key = 'hpc/106/1'",
    )
    assert inserted[0].startswith("run hpc/999/1 (batch 2): a version hashing to")
    unlogged = _tampered(
        con,
        "INSERT INTO runs SELECT * REPLACE ('hpc/998/1' AS run_key, 77 AS batch_id) FROM runs "
        "WHERE run_key = 'hpc/106/1'",
    )
    assert any(m == "batch 77: stored but has no ingest_batch entry" for m in unlogged)


def test_a_run_altered_with_its_recorded_hash_names_the_batch_entry(con: Connection) -> None:
    line = read_record_lines(con, ["hpc/106/1"])["record_line"][0]
    forged = record_sha256(line.replace('"alloc_gpus":2', '"alloc_gpus":0'))
    messages = _tampered(
        con,
        "UPDATE runs SET alloc_gpus = 0 WHERE run_key = 'hpc/106/1'",
        f"UPDATE audit_record_hashes SET record_sha256 = '{forged}' WHERE run_key = 'hpc/106/1'",
    )
    assert messages[0].startswith("audit entry seq 3 (ingest_batch): the run versions of batch 2")


@pytest.mark.parametrize(
    "column",
    ["seq", "at", "kind", "actor", "payload", "payload_sha256", "prev_sha256", "entry_sha256"],
)
def test_a_change_to_any_column_of_a_stored_entry_is_named(con: Connection, column: str) -> None:
    change = {
        "seq": "seq + 10",
        "at": '"at" + INTERVAL 1 MICROSECOND',
        "payload": "replace(payload, '\"batch_id\":1', '\"batch_id\":7')",
    }.get(column, f"(CASE WHEN {column}[1] = '0' THEN '1' ELSE '0' END) || {column}[2:]")
    messages = _tampered(con, f'UPDATE audit_log SET "{column}" = {change} WHERE seq = 2')
    if column == "seq":  # seq 2 became 12: read in seq order, 2 is missing before 3
        assert messages[0].startswith("audit entry seq 3: expected seq 2 at position 2")
    else:
        assert messages[0].startswith("audit entry seq 2: ")


def test_deleting_or_reordering_entries_is_named(con: Connection) -> None:
    deleted = _tampered(con, "DELETE FROM audit_log WHERE seq = 2")
    assert deleted[0].startswith("audit entry seq 3: expected seq 2")
    swapped = _tampered(
        con,
        "UPDATE audit_log SET seq = 99 WHERE seq = 2",
        "UPDATE audit_log SET seq = 2 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = 99",
    )
    assert swapped[0].startswith("audit entry seq 2: ")
    head = read_audit_head(con)
    assert head is not None
    # Deleting the head leaves a valid shorter chain: the externally recorded head shows it.
    con.execute("BEGIN TRANSACTION")
    con.execute(f"DELETE FROM audit_log WHERE seq = {head.seq}")
    report = verify_store(con)
    con.execute("ROLLBACK")
    assert report.head_sha256 != head.entry_sha256
    assert any(
        "batch 2: stored but has no ingest_batch entry" in f.message() for f in report.findings
    )


def test_an_altered_policy_text_is_named(con: Connection) -> None:
    messages = _tampered(
        con, "UPDATE policy_versions SET policy_toml = replace(policy_toml, '1000', '9000')"
    )
    assert messages[0].startswith("audit entry seq 1 (policy_version): policy version 1 hashes")


def test_an_altered_batch_summary_is_named(con: Connection) -> None:
    messages = _tampered(con, "UPDATE ingest_batches SET runs_new = 4 WHERE batch_id = 1")
    assert messages[0] == (
        "ingest batch 1 (summary row): runs_new is 4, audit entry seq 2 records 5"
    )
