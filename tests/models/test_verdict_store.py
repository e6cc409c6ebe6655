"""Verdict batches in a real DuckDB file: full then incremental batches, nothing when nothing
changed, current verdicts follow the run's content, old verdicts are kept, each batch is in the
audit log with the hash of its rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from models.compliance.verdict_audit import (
    ROW_FIELDS,
    verdict_rows_sha256,
    verdict_rows_sha256_reference,
)
from models.frames import QUARANTINE, RUNS, STEPS, conform
from models.policy import Policy, load_policy_text
from models.store import open_store, write_batch, write_policy
from models.store.audit import read_audit_entries
from models.store.verdicts import (
    read_grant_summary,
    read_grant_verdicts,
    read_run_verdicts,
    refresh_verdicts,
)
from tests.strategies import examples

POLICY = """
[[clusters]]
name = "hpc"
partitions = [{ name = "secure" }]

[[grants]]
id = "NIH-7"
funder = "NIH"
budget = "1000"
start = 2026-01-01
end = 2026-12-31
regime = "hipaa"
members = [{ account = "med", start = 2026-01-01 }]

[[grants]]
id = "OPEN-1"
funder = "uni"
budget = "10"
start = 2026-01-01
end = 2026-12-31
members = [{ account = "open", start = 2026-01-01 }]

[[compliance.regimes]]
name = "hipaa"

[[compliance.certifications]]
id = "secure"
regime = "hipaa"
cluster = "hpc"
nodes = "sec[01-08]"
start = 2026-01-01

[[compliance.nodes]]
cluster = "hpc"
names = "sec[01-16]"
partitions = ["secure"]
start = 2025-01-01
"""
NOW = datetime(2026, 11, 29, tzinfo=UTC)


def _runs(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    """(run_key, account, nodelist) -> runs in the secure partition on 2026-05-01."""
    from models.hostlist import expand_hostlist

    return conform(
        pl.DataFrame(
            {
                "run_key": [r[0] for r in rows],
                "scheduler": ["slurm"] * len(rows),
                "cluster": ["hpc"] * len(rows),
                "account": [r[1] for r in rows],
                "user": ["u"] * len(rows),
                "partition": ["secure"] * len(rows),
                "start_at": [datetime(2026, 5, 1, tzinfo=UTC)] * len(rows),
                "end_at": [datetime(2026, 5, 1, 2, tzinfo=UTC)] * len(rows),
                "nodelist": [r[2] for r in rows],
                "nodes": [expand_hostlist(r[2]) for r in rows],
                "source": ["test"] * len(rows),
            }
        ),
        RUNS,
    )


def _land(con, rows: list[tuple[str, str, str]], hour: int) -> None:  # type: ignore[no-untyped-def]
    """Store ``rows`` as observed at ``hour`` (later deliveries replace earlier ones)."""
    runs = _runs(rows)
    write_batch(
        con,
        source="test",
        scheduler="slurm",
        runs=runs,
        steps=pl.DataFrame(schema=STEPS),
        quarantine=pl.DataFrame(schema=QUARANTINE),
        lines_read=runs.height,
        started_at=NOW.replace(hour=hour),
    )


def _refresh(con, policy: Policy, version: int):  # type: ignore[no-untyped-def]
    return refresh_verdicts(con, policy_version=version, policy=policy, now=NOW)


def test_full_incremental_and_policy_batches(tmp_path: Path) -> None:
    con = open_store(tmp_path / "v.duckdb")
    policy = load_policy_text(POLICY)
    version, _ = write_policy(con, policy, origin="test")
    _land(con, [("a", "med", "sec[01-02]"), ("b", "med", "sec[08-09]"), ("c", "open", "x1")], 1)

    first = _refresh(con, policy, version)
    assert first is not None and first.scope == "full"
    assert (first.runs_checked, first.approved, first.violation, first.unknown) == (2, 1, 1, 0)
    assert read_grant_summary(con, "NIH-7") == {"approved": 1, "violation": 1}
    assert _refresh(con, policy, version) is None  # nothing changed

    # b is fixed (moved to certified nodes), d is new and runs on an unknown node
    _land(con, [("b", "med", "sec[03-04]"), ("d", "med", "ghost")], 2)
    second = _refresh(con, policy, version)
    assert second is not None and second.scope == "incremental"
    assert (second.runs_checked, second.approved, second.unknown) == (2, 1, 1)
    assert read_grant_summary(con, "NIH-7") == {"approved": 2, "unknown": 1}
    history = read_run_verdicts(con, "b")
    assert history.get_column("verdict").to_list() == ["approved", "violation"]
    assert history.get_column("is_current").to_list() == [True, False]
    page, total = read_grant_verdicts(con, "NIH-7", exceptions_only=True)
    assert total == 1 and page.row(0, named=True)["offending_node"] == "ghost"

    # d moves to an account without a regime: it has no current verdict any more
    _land(con, [("d", "open", "ghost")], 3)
    assert _refresh(con, policy, version) is not None
    assert read_grant_summary(con, "NIH-7") == {"approved": 2}
    assert read_run_verdicts(con, "d").get_column("is_current").to_list() == [False]

    # a new policy version (sec09 certified too) recomputes everything; old rows stay
    before = con.execute("SELECT count(*) FROM verdicts").fetchall()[0][0]
    wider = load_policy_text(POLICY.replace("sec[01-08]", "sec[01-09]"))
    new_version, _ = write_policy(con, wider, origin="test")
    third = _refresh(con, wider, new_version)
    assert third is not None and third.scope == "full" and third.runs_checked == 2
    assert con.execute("SELECT count(*) FROM verdicts").fetchall()[0][0] == before + 2
    assert read_run_verdicts(con, "a").get_column("policy_version").to_list() == [
        new_version,
        version,
    ]

    logged = [e for e in read_audit_entries(con) if e.kind == "verdict_batch"]
    assert [json.loads(e.payload)["batch_id"] for e in logged] == [1, 2, 3, 4]
    for entry in logged:
        payload = json.loads(entry.payload)
        rows = con.sql("SELECT * FROM verdicts WHERE batch_id = ?", params=[payload["batch_id"]])
        assert verdict_rows_sha256(rows.pl()) == payload["rows_sha256"]
    con.close()


def test_rows_hash_is_the_documented_serialisation() -> None:
    rows = pl.DataFrame(
        {
            "run_key": ["b", "a"],
            "row_hash": ["h2", None],
            "grant_id": ["G", "G"],
            "regime": ["hipaa", "hipaa"],
            "verdict": ["approved", "violation"],
            "rule": [None, "node_not_certified"],
            "offending_node": [None, "nœud1"],
            "at": [None, "start"],
            "evidence": ['{"nodes":["x"]}', "{}"],
        }
    )
    import hashlib

    text = (
        '{"run_key":"a","row_hash":null,"grant_id":"G","regime":"hipaa","verdict":"violation",'
        '"rule":"node_not_certified","offending_node":"nœud1","at":"start","evidence":"{}"}\n'
        '{"run_key":"b","row_hash":"h2","grant_id":"G","regime":"hipaa","verdict":"approved",'
        '"rule":null,"offending_node":null,"at":null,"evidence":"{\\"nodes\\":[\\"x\\"]}"}\n'
    )
    assert verdict_rows_sha256(rows) == hashlib.sha256(text.encode()).hexdigest()
    assert verdict_rows_sha256(rows.head(0)) == hashlib.sha256(b"").hexdigest()


@settings(max_examples=examples(200), deadline=None)
@given(
    st.lists(
        st.tuples(st.text(min_size=1), st.one_of(st.none(), st.text()), st.text()),
        max_size=6,
        unique_by=lambda t: t[0],
    )
)
def test_fast_rows_hash_equals_the_line_by_line_reference(
    rows: list[tuple[str, str | None, str]],
) -> None:
    frame = pl.DataFrame(
        {
            "run_key": [r[0] for r in rows],
            "row_hash": [r[1] for r in rows],
            "grant_id": ["G"] * len(rows),
            "regime": ["r"] * len(rows),
            "verdict": ["unknown"] * len(rows),
            "rule": [r[1] for r in rows],
            "offending_node": [r[2] for r in rows],
            "at": [None] * len(rows),
            "evidence": [json.dumps({"nodes": [r[2]]}) for r in rows],
        },
        schema=dict.fromkeys(ROW_FIELDS, pl.String()),
    )
    assert verdict_rows_sha256(frame) == verdict_rows_sha256_reference(frame)


def test_an_earlier_content_that_becomes_current_again_gets_its_verdict(tmp_path: Path) -> None:
    con = open_store(tmp_path / "v.duckdb")
    policy = load_policy_text(POLICY)
    version, _ = write_policy(con, policy, origin="test")
    _land(con, [("e", "med", "sec[01-02]")], 5)
    # an older record of e (observed at 04:00) goes to history, beside a new run f
    _land(con, [("e", "med", "sec[09-10]"), ("f", "med", "sec03")], 4)
    assert _refresh(con, policy, version) is not None
    assert read_grant_summary(con, "NIH-7") == {"approved": 2}
    # that record observed again at 06:00 is e's newest: current again, never checked
    _land(con, [("e", "med", "sec[09-10]")], 6)
    assert _refresh(con, policy, version) is not None
    assert read_grant_summary(con, "NIH-7") == {"approved": 1, "violation": 1}
    current = read_run_verdicts(con, "e").filter(pl.col("is_current"))
    assert current.row(0, named=True)["offending_node"] == "sec09"
    con.close()
