"""Compliance verdicts at the edges: ranges, mixed lists, nodes that move between partitions,
certifications that expire or are renewed mid-run, unknown nodes; and a property."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.compliance.frames import VERDICTS
from models.compliance.verdicts import RUN_COLUMNS, run_verdicts
from models.hostlist import expand_hostlist
from models.policy import Policy, load_policy_text
from tests.strategies import examples

POLICY = """
[[clusters]]
name = "hpc"
partitions = [{ name = "gpu" }, { name = "secure" }, { name = "cpu" }]

[[clusters]]
name = "ai"
partitions = [{ name = "h100" }]

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
description = "US health data"

[[compliance.certifications]]
id = "gpu-2026h1"
regime = "hipaa"
cluster = "hpc"
partitions = ["gpu", "secure"]
nodes = "gpu[001-008]"
gpu_models = ["a100"]
start = 2026-01-01
end = 2026-06-30

[[compliance.certifications]]
id = "gpu-2026h2"
regime = "hipaa"
cluster = "hpc"
partitions = ["gpu", "secure"]
nodes = "gpu[001-004]"
gpu_models = ["a100"]
start = 2026-07-01

[[compliance.certifications]]
id = "secure"
regime = "hipaa"
cluster = "hpc"
partitions = ["secure"]
nodes = "sec[01-16]"
start = 2026-01-01

[[compliance.nodes]]
cluster = "hpc"
names = "gpu[001-006],gpu[011-012]"
partitions = ["gpu"]
gpu_model = "a100"
start = 2025-01-01

[[compliance.nodes]]
cluster = "hpc"
names = "gpu[007-008]"
partitions = ["gpu"]
gpu_model = "h100"
start = 2025-01-01

[[compliance.nodes]]
cluster = "hpc"
names = "sec[01-12],sx[1-3]"
partitions = ["secure"]
start = 2025-01-01

# sec[13-16] move from the cpu partition to the secure one on 2026-04-01
[[compliance.nodes]]
cluster = "hpc"
names = "sec[13-16]"
partitions = ["cpu"]
start = 2025-01-01
end = 2026-03-31

[[compliance.nodes]]
cluster = "hpc"
names = "sec[13-16]"
partitions = ["secure"]
start = 2026-04-01
"""


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy_text(POLICY)


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def run(
    nodelist: str | None,
    start: str | None = "2026-05-01T10:00",
    end: str | None = "2026-05-01T12:00",
    *,
    partition: str | None = "secure",
    cluster: str = "hpc",
    gpu_type: str | None = None,
    grant: str | None = "NIH-7",
    key: str = "r",
) -> dict[str, object]:
    return {
        "run_key": key,
        "grant_id": grant,
        "cluster": cluster,
        "partition": partition,
        "gpu_type": gpu_type,
        "start_at": t(start) if start else None,
        "end_at": t(end) if end else None,
        "nodes": None if nodelist is None else expand_hostlist(nodelist),
    }


def verdicts_of(policy: Policy, *runs: dict[str, object]) -> pl.DataFrame:
    rows = [
        {**r, "run_key": r["run_key"] if r["run_key"] != "r" else f"r{i}"}
        for i, r in enumerate(runs)
    ]
    frame = pl.DataFrame(
        rows,
        schema={
            "run_key": pl.String,
            "grant_id": pl.String,
            "cluster": pl.String,
            "partition": pl.String,
            "gpu_type": pl.String,
            "start_at": pl.Datetime("us", "UTC"),
            "end_at": pl.Datetime("us", "UTC"),
            "nodes": pl.List(pl.String),
        },
    )
    assert tuple(frame.columns) == RUN_COLUMNS
    out = run_verdicts(frame, grants=policy.grants, compliance=policy.compliance)
    assert out.schema == pl.Schema(VERDICTS)
    return out


def one(policy: Policy, r: dict[str, object]) -> dict[str, object]:
    out = verdicts_of(policy, r)
    assert out.height == 1
    row = out.row(0, named=True)
    row["evidence"] = json.loads(row["evidence"])
    return row


def outcome(policy: Policy, r: dict[str, object]) -> tuple[object, object, object, object]:
    row = one(policy, r)
    return row["verdict"], row["rule"], row["offending_node"], row["at"]


def test_a_range_of_certified_nodes_is_approved_with_its_evidence(policy: Policy) -> None:
    row = one(policy, run("sec[01-04]"))
    assert (row["verdict"], row["rule"], row["offending_node"]) == ("approved", None, None)
    assert row["regime"] == "hipaa" and row["grant_id"] == "NIH-7"
    evidence = row["evidence"]
    assert evidence["nodes"] == ["sec01", "sec02", "sec03", "sec04"]
    assert evidence["certifications_at_start"] == ["secure"]
    assert evidence["certifications_at_end"] == ["secure"]
    assert evidence["start_at"] == "2026-05-01T10:00:00Z"


def test_a_range_running_past_the_certified_set_names_the_first_node_outside(
    policy: Policy,
) -> None:
    # sx1..sx3 are in the secure partition but in no certification
    assert outcome(policy, run("sec[11-12],sx[1-3]")) == (
        "violation",
        "node_not_certified",
        "sx1",
        "start",
    )


def test_mixed_list_names_the_first_offending_node_in_list_order(policy: Policy) -> None:
    # gpu007 is an h100: certified node set, but the certification is for a100 only
    r = run("gpu[001-002],gpu007,gpu011", partition="gpu", gpu_type=None)
    assert outcome(policy, r) == ("violation", "gpu_model_not_certified", "gpu007", "start")
    # node-list order, not name order: gpu011 (not certified) comes first here
    r = run("gpu011,gpu007", partition="gpu")
    assert outcome(policy, r) == ("violation", "node_not_certified", "gpu011", "start")


def test_the_runs_own_gpu_type_must_be_certified_too(policy: Policy) -> None:
    assert outcome(policy, run("gpu001", partition="gpu", gpu_type="a100"))[0] == "approved"
    assert outcome(policy, run("gpu001", partition="gpu", gpu_type="h100")) == (
        "violation",
        "gpu_model_not_certified",
        "gpu001",
        "start",
    )


def test_node_in_another_partition_is_a_violation(policy: Policy) -> None:
    # gpu001 is in the gpu partition only; the run says secure
    assert outcome(policy, run("sec01,gpu001")) == (
        "violation",
        "node_not_in_partition",
        "gpu001",
        "start",
    )


def test_nodes_moved_between_partitions_are_checked_against_the_inventory_of_the_time(
    policy: Policy,
) -> None:
    march = run("sec[12-13]", "2026-03-10T00:00", "2026-03-10T05:00")
    assert outcome(policy, march) == ("violation", "node_not_in_partition", "sec13", "start")
    april = run("sec[12-13]", "2026-04-10T00:00", "2026-04-10T05:00")
    assert outcome(policy, april)[0] == "approved"
    # started while sec14 was still in cpu, ended after the move: the start is checked too
    across = run("sec14", "2026-03-31T22:00", "2026-04-01T02:00")
    assert outcome(policy, across) == ("violation", "node_not_in_partition", "sec14", "start")
    # a run in the cpu partition then: the partition itself is certified for nobody
    old = run("sec14", "2026-03-10T00:00", "2026-03-10T01:00", partition="cpu")
    assert outcome(policy, old) == ("violation", "partition_not_certified", None, None)


def test_certification_expiring_mid_run_fails_at_the_end(policy: Policy) -> None:
    # gpu005 was certified until 2026-06-30 and not renewed
    r = run("gpu[004-005]", "2026-06-30T20:00", "2026-07-01T02:00", partition="gpu")
    row = one(policy, r)
    assert (row["verdict"], row["rule"], row["offending_node"], row["at"]) == (
        "violation",
        "certification_not_valid_at_end",
        "gpu005",
        "end",
    )
    # gpu004 went from one certification to its renewal: both named in the evidence
    assert row["evidence"]["certifications_at_start"] == ["gpu-2026h1"]
    assert row["evidence"]["certifications_at_end"] == ["gpu-2026h2"]
    renewed = run("gpu004", "2026-06-30T20:00", "2026-07-01T02:00", partition="gpu")
    assert outcome(policy, renewed)[0] == "approved"


def test_inclusive_end_date_covers_a_run_ending_at_midnight_not_one_starting_then(
    policy: Policy,
) -> None:
    ends = run("gpu005", "2026-06-30T20:00", "2026-07-01T00:00", partition="gpu")
    assert outcome(policy, ends)[0] == "approved"
    starts = run("gpu005", "2026-07-01T00:00", "2026-07-01T01:00", partition="gpu")
    assert outcome(policy, starts) == (
        "violation",
        "certification_not_valid_at_start",
        "gpu005",
        "start",
    )


def test_unknowns_missing_data_and_unknown_nodes(policy: Policy) -> None:
    assert outcome(policy, run("sec01,ghost1,sec02")) == (
        "unknown",
        "node_not_in_inventory",
        "ghost1",
        "start",
    )
    assert outcome(policy, run(None)) == ("unknown", "no_node_list", None, None)
    assert outcome(policy, run("None assigned")) == ("unknown", "no_node_list", None, None)
    assert outcome(policy, run("sec01", start=None)) == ("unknown", "no_start_time", None, None)
    assert outcome(policy, run("sec01", end=None)) == ("unknown", "no_end_time", None, None)
    assert outcome(policy, run("sec01", partition=None)) == (
        "unknown",
        "no_partition",
        None,
        None,
    )
    # a node that left the inventory before the run ended
    gone = run("sec14", "2026-03-31T20:00", "2026-03-31T23:00", partition="cpu")
    assert outcome(policy, gone)[1] == "partition_not_certified"


def test_a_violation_outranks_an_unknown_node_before_it(policy: Policy) -> None:
    assert outcome(policy, run("ghost1,sx2")) == (
        "violation",
        "node_not_certified",
        "sx2",
        "start",
    )


def test_cluster_without_certification(policy: Policy) -> None:
    r = run("h[1-2]", cluster="ai", partition="h100")
    assert outcome(policy, r) == ("violation", "cluster_not_certified", None, None)


def test_only_runs_of_grants_with_a_regime_get_a_verdict_in_input_order(policy: Policy) -> None:
    out = verdicts_of(
        policy,
        run("sx1", key="b"),
        run("sec01", grant="OPEN-1", key="x"),
        run("sec01", grant=None, key="y"),
        run("sec01", key="a"),
    )
    assert out.get_column("run_key").to_list() == ["b", "a"]
    assert out.get_column("verdict").to_list() == ["violation", "approved"]


SECURE = expand_hostlist("sec[01-12]")
UNCERTIFIED = expand_hostlist("sx[1-3]")


@settings(max_examples=examples(60), deadline=None)
@given(
    nodes=st.lists(st.sampled_from(SECURE), min_size=1, max_size=8, unique=True),
    extra=st.sampled_from(UNCERTIFIED),
    position=st.integers(min_value=0, max_value=8),
    start_s=st.integers(min_value=0, max_value=300 * 86400),
    length_s=st.integers(min_value=0, max_value=30 * 86400),
)
def test_certified_nodes_are_approved_and_one_uncertified_node_is_named(
    policy: Policy, nodes: list[str], extra: str, position: int, start_s: int, length_s: int
) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC).timestamp() + start_s
    times = (
        datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        datetime.fromtimestamp(start + length_s, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
    )
    good = run(",".join(nodes), *times)
    assert outcome(policy, good) == ("approved", None, None, None)
    mixed = [*nodes]
    mixed.insert(min(position, len(mixed)), extra)
    assert outcome(policy, run(",".join(mixed), *times)) == (
        "violation",
        "node_not_certified",
        extra,
        "start",
    )


def test_a_runs_verdict_does_not_depend_on_the_other_runs_or_their_order(
    policy: Policy,
) -> None:
    lists = ["sec[01-04]", "sec12,sx1", "gpu[001-002],gpu007", "gpu011,ghost1", "sec[13-14]"]
    parts = ["secure", "gpu", "cpu"]
    runs = [
        run(
            lists[i % len(lists)],
            f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00",
            f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:30",
            partition=parts[(i // 5) % 3],
            key=f"k{i:05d}",
        )
        for i in range(3000)
    ]
    batch = verdicts_of(policy, *runs)
    backwards = verdicts_of(policy, *reversed(runs))
    assert batch.height == 3000
    assert backwards.sort("run_key").equals(batch.sort("run_key"))
    for r in runs[::150]:
        alone = verdicts_of(policy, r)
        assert alone.equals(batch.filter(pl.col("run_key") == r["run_key"]))
