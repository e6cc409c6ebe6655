"""Node inventory import: real ``scontrol show node`` output (Slurm 22.05, both forms), typed
GRES, free text that looks like keys, and slurm.conf NodeName/PartitionName lines."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from ingest.sources.node_inventory import (
    gpu_model,
    parse_node_inventory,
    parse_scontrol_nodes,
    parse_slurm_conf_nodes,
)
from models.errors import ParseError
from models.policy import load_policy_text

HERE = Path(__file__).parent / "node_inventory"
ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 11, 1)


def _entries(inventory) -> list[tuple[str, list[str], str | None]]:  # type: ignore[no-untyped-def]
    return [(e.names, e.partitions, e.gpu_model) for e in inventory.entries]


@pytest.mark.parametrize("name", ["scontrol_show_node_22.05.txt", "scontrol_show_node_o_22.05.txt"])
def test_real_scontrol_output_both_forms(name: str) -> None:
    inventory = parse_node_inventory((HERE / name).read_text(), cluster="lab", valid_from=DAY)
    assert _entries(inventory) == [("vm", ["cpu", "gpu"], None)]  # Gres=gpu:2 has no type
    assert inventory.entries[0].cluster == "lab" and inventory.entries[0].start == DAY
    assert inventory.entries[0].end is None


def test_typed_gres_and_free_text_that_looks_like_keys() -> None:
    text = (HERE / "scontrol_show_node_typed.txt").read_text()
    inventory = parse_scontrol_nodes(text, cluster="hpc", valid_from=DAY)
    assert _entries(inventory) == [
        ("cn0001", ["cpu"], None),
        ("gpu[001-002]", ["gpu", "secure"], "a100"),  # OS= and Reason= text ignored
        ("spare1", [], None),
    ]
    assert inventory.nodes == 4
    assert inventory.notes == ("node spare1: in no partition",)


def test_slurm_conf_nodes_defaults_continuations_and_partitions() -> None:
    inventory = parse_slurm_conf_nodes(
        (HERE / "site.conf").read_text(), cluster="hpc", valid_from=DAY, origin="site.conf"
    )
    assert _entries(inventory) == [
        ("cn[0001-0006]", ["all", "cpu"], None),
        ("cn[0007-0008]", ["all", "cpu", "secure"], None),
        ("gpu[001-012]", ["all", "gpu"], "a100"),
        ("gpu[013-016]", ["all", "gpu", "secure"], "h100"),
        ("login1", ["all"], None),
    ]
    assert inventory.nodes == 25
    assert any("site.conf:15: partition lab: labnodes" in n for n in inventory.notes)


def test_pasted_toml_is_a_valid_policy_registry() -> None:
    inventory = parse_node_inventory(
        (HERE / "site.conf").read_text(), cluster="hpc", valid_from=DAY
    )
    text = '[[clusters]]\nname = "hpc"\n\n' + inventory.to_toml()
    policy = load_policy_text(text)
    assert len(policy.compliance.nodes) == 5
    assert policy.compliance.nodes[2].names == "gpu[001-012]"


@pytest.mark.parametrize(
    ("gres", "model"),
    [
        ("gpu:a100:4(S:0-1)", "a100"),
        ("gpu:4", None),
        ("gpu:a100", "a100"),
        ("(null)", None),
        ("mps:100,gpu:v100:2", "v100"),
        ("gpu:tesla_p100:2(S:0),gpu:k80:1", "tesla_p100"),
    ],
)
def test_gpu_model_of_a_gres(gres: str, model: str | None) -> None:
    assert gpu_model(gres) == model


def test_unreadable_inputs_are_refused_naming_the_line() -> None:
    with pytest.raises(ParseError, match="no NodeName= record"):
        parse_scontrol_nodes("State=IDLE Partitions=x", cluster="c", valid_from=DAY)
    with pytest.raises(ParseError, match=r"x.conf:2: .*descending range"):
        parse_slurm_conf_nodes(
            "ClusterName=c\nNodeName=n[9-1]\n", cluster="c", valid_from=DAY, origin="x.conf"
        )


def test_import_nodes_command_prints_toml(tmp_path: Path) -> None:
    answer = subprocess.run(
        [
            sys.executable,
            "-m",
            "api",
            "--db",
            str(tmp_path / "unused.duckdb"),
            "compliance",
            "import-nodes",
            str(HERE / "scontrol_show_node_typed.txt"),
            "--cluster",
            "hpc",
            "--from",
            "2026-11-01",
        ],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert answer.returncode == 0, answer.stderr
    assert '[[compliance.nodes]]\ncluster = "hpc"\nnames = "gpu[001-002]"' in answer.stdout
    assert "start = 2026-11-01" in answer.stdout
    assert "node spare1: in no partition" in answer.stderr
    assert not (tmp_path / "unused.duckdb").exists()  # a pure conversion: no store opened
