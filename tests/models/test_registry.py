"""The registry in the policy file: what it accepts, what it refuses (naming the field), and
the frames the verdicts join against."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models.compliance.registry import certification_frame, certified_node_frame, inventory_frame
from models.errors import PolicyError
from models.policy import load_policy_text

BASE = """
[[clusters]]
name = "hpc"

[[compliance.regimes]]
name = "hipaa"
"""


def test_a_registry_reads_and_round_trips_through_toml() -> None:
    policy = load_policy_text(
        BASE
        + """
[[compliance.certifications]]
id = "c1"
regime = "hipaa"
cluster = "hpc"
nodes = "gpu[001-003]"
start = 2026-01-01
end = 2026-06-30

[[compliance.nodes]]
cluster = "hpc"
names = "gpu[001-003]"
partitions = ["gpu"]
gpu_model = "a100"
start = 2026-01-01
"""
    )
    again = load_policy_text(policy.to_toml())
    assert again == policy
    cert = policy.compliance.certifications[0]
    assert cert.partitions == ["*"] and cert.gpu_models == ["*"]
    inventory = inventory_frame(policy.compliance.nodes)
    assert inventory.get_column("node").to_list() == ["gpu001", "gpu002", "gpu003"]
    assert inventory.get_column("until_at").max() > datetime(9000, 1, 1, tzinfo=UTC)
    certs = certification_frame(policy.compliance.certifications)
    # end inclusive: in force until the start of the next day
    assert certs.get_column("until_at").to_list() == [datetime(2026, 7, 1, tzinfo=UTC)]
    assert certified_node_frame(policy.compliance.certifications).height == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            '[[compliance.certifications]]\nid = "c"\nregime = "gdpr"\ncluster = "hpc"\n'
            "start = 2026-01-01\n",
            "certification c: unknown regime 'gdpr'",
        ),
        (
            '[[compliance.certifications]]\nid = "c"\nregime = "hipaa"\ncluster = "lab"\n'
            "start = 2026-01-01\n",
            "certification c: unknown cluster 'lab'",
        ),
        (
            '[[compliance.certifications]]\nid = "c"\nregime = "hipaa"\ncluster = "hpc"\n'
            'nodes = "gpu[3-1]"\nstart = 2026-01-01\n',
            "descending range",
        ),
        (
            '[[compliance.certifications]]\nid = "c"\nregime = "hipaa"\ncluster = "hpc"\n'
            "start = 2026-02-01\nend = 2026-01-01\n",
            "end 2026-01-01 is before start 2026-02-01",
        ),
        (
            '[[compliance.nodes]]\ncluster = "hpc"\nnames = "n[1-4]"\nstart = 2026-01-01\n'
            '[[compliance.nodes]]\ncluster = "hpc"\nnames = "n[4-5]"\nstart = 2026-03-01\n',
            "node hpc/n4 is listed twice from 2026-03-01",
        ),
        (
            '[[grants]]\nid = "G"\nfunder = "f"\nbudget = 1\nstart = 2026-01-01\n'
            'end = 2026-12-31\nregime = "itar"\n',
            "grant G: regime 'itar' is not in [[compliance.regimes]]",
        ),
        ('[[compliance.regimes]]\nname = "hipaa"\n', "regime hipaa appears more than once"),
    ],
)
def test_bad_registries_are_refused_naming_the_problem(extra: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(BASE + extra)
    assert message in str(caught.value)


def test_successive_inventory_entries_for_a_moved_node_are_accepted() -> None:
    policy = load_policy_text(
        BASE + '[[compliance.nodes]]\ncluster = "hpc"\nnames = "n[1-4]"\npartitions = ["a"]\n'
        "start = 2026-01-01\nend = 2026-02-28\n"
        '[[compliance.nodes]]\ncluster = "hpc"\nnames = "n4"\npartitions = ["b"]\n'
        "start = 2026-03-01\n"
    )
    frame = inventory_frame(policy.compliance.nodes).filter(node="n4")
    assert frame.get_column("partitions").to_list() == [["a"], ["b"]]


def test_a_policy_without_registry_keeps_its_toml_and_hash() -> None:
    plain = load_policy_text('[[clusters]]\nname = "hpc"\n')
    assert "compliance" not in plain.to_toml()  # so stores recorded before keep verifying
    with_registry = load_policy_text(BASE)
    assert "[compliance]" in with_registry.to_toml()
    assert with_registry.sha256() != plain.sha256()
