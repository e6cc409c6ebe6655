"""Billing rates: the float billing Slurm charges fair-share with, recomputed from TRES."""

from __future__ import annotations

import polars as pl
import pytest

from models.fairshare.usage import usage_rates
from models.frames import TRES_ITEM
from models.policy import load_policy_text

POLICY = load_policy_text(
    """
[[clusters]]
name = "lab"
partitions = [
    { name = "cpu", tres_billing_weights = "CPU=1.0,Mem=0.25G", default = true },
    { name = "gpu", tres_billing_weights = "CPU=0.5,Mem=0.25G,GRES/gpu=4.0" },
    { name = "debug" },
]

[[clusters]]
name = "bare"
partitions = [{ name = "any", default = true }]

[[qos]]
name = "scavenger"
usage_factor = 0.5
"""
)


def _runs(*rows: tuple[str, str | None, str | None, str, int | None]) -> pl.LazyFrame:
    """Rows of (cluster, partition, qos, AllocTRES, alloc_cpus)."""

    def tres(text: str) -> list[dict[str, object]]:
        items = []
        for item in filter(None, text.split(",")):
            name, value = item.split("=")
            items.append({"name": name, "count": float(value)})
        return items

    return pl.LazyFrame(
        {
            "cluster": [r[0] for r in rows],
            "partition": [r[1] for r in rows],
            "qos": [r[2] for r in rows],
            "tres": [tres(r[3]) for r in rows],
            "alloc_cpus": [r[4] for r in rows],
        },
        schema_overrides={"tres": pl.List(TRES_ITEM), "alloc_cpus": pl.Int32},
    )


def _billing(*rows: tuple[str, str | None, str | None, str, int | None]) -> list[float]:
    return usage_rates(_runs(*rows), POLICY).collect().get_column("billing_rate").to_list()


def test_billing_is_the_float_sacct_truncates():
    # the lab's job 11: 1 CPU, 1500 MB; sacct shows billing=1, Slurm charges 1.366211
    assert _billing(("lab", "cpu", "normal", "billing=1,cpu=1,mem=1500,node=1", 1)) == [
        pytest.approx(1 + 1500 / 1024 * 0.25)
    ]


def test_gpu_partition_weights_the_gpus():
    got = _billing(("lab", "gpu", "normal", "billing=4,cpu=1,gres/gpu=1,mem=2000,node=1", 1))
    assert got == [pytest.approx(0.5 + 2000 / 1024 * 0.25 + 4.0)]


def test_a_partition_without_weights_bills_the_cpu_count():
    assert _billing(("lab", "debug", None, "cpu=3,mem=9000,node=1", 3)) == [3.0]


def test_an_empty_or_unknown_partition_takes_the_default_partitions_weights():
    expected = pytest.approx(2 + 4096 / 1024 * 0.25)
    rows = [("lab", p, None, "cpu=2,mem=4096", 2) for p in ("", None, "nosuch")]
    assert _billing(*rows) == [expected, expected, expected]


def test_no_weights_anywhere_falls_back_to_the_cpu_count_then_alloc_cpus():
    assert _billing(("bare", "any", None, "cpu=6,mem=100", 6), ("bare", "", None, "", 5)) == [
        6.0,
        5.0,
    ]
    assert _billing(("unknown-cluster", "x", None, "cpu=7", None)) == [7.0]


def test_runs_keep_their_order_and_columns():
    runs = _runs(*[("lab", "cpu" if i % 2 else "debug", None, f"cpu={i}", i) for i in range(50)])
    out = usage_rates(runs, POLICY).collect()
    assert out.columns == [
        *runs.collect_schema().names(),
        "billing_rate",
        "usage_factor",
        "usage_rate",
    ]
    assert out.get_column("billing_rate").to_list() == [float(i) for i in range(50)]


def test_qos_usage_factor_multiplies_and_unknown_qos_counts_one():
    out = usage_rates(
        _runs(
            ("lab", "debug", "scavenger", "cpu=4", 4),
            ("lab", "debug", "nosuch", "cpu=4", 4),
            ("lab", "debug", None, "cpu=4", 4),
        ),
        POLICY,
    ).collect()
    assert out.get_column("usage_factor").to_list() == [0.5, 1.0, 1.0]
    assert out.get_column("usage_rate").to_list() == [2.0, 4.0, 4.0]


def test_max_tres_takes_the_largest_node_tres_plus_global_ones():
    policy = load_policy_text(
        """
[[clusters]]
name = "m"
max_tres = true
[[clusters.partitions]]
name = "p"
tres_billing_weights = "CPU=1.0,Mem=0.25G,GRES/gpu=2.0,License/foo=3"
default = true
"""
    )
    runs = _runs(
        ("m", "p", None, "cpu=1,mem=6144", 1),  # slurm-lab.md: 6 GB bills 1.5, not 2.5
        ("m", "p", None, "cpu=4,mem=4096,gres/gpu=1,license/foo=1", 4),
    )
    got = usage_rates(runs, policy).collect().get_column("billing_rate").to_list()
    assert got == [1.5, 4.0 + 3.0]
