"""The approved-infrastructure registry: regimes, certifications and the node inventory.

It is the ``[compliance]`` part of the policy file (see ``docs/compliance.md``). A
*certification* says that, for one regime, nodes of one cluster (all of them or a hostlist such
as ``gpu[001-016]``), in some partitions (or any) and with some GPU models (or any), are
approved from ``start`` to ``end``. The *inventory* says which nodes exist, in which partitions
and with which GPU model, from when to when. Dates are UTC calendar dates and ``end`` is
inclusive, as in ``models.money.grants``: in force from the start of ``start`` to the end of
``end``.

The ``*_frame`` functions turn the registry into the frames ``models.compliance.verdicts``
joins against, with half-open UTC intervals ``[from_at, until_at)``.
"""

from __future__ import annotations

from datetime import date

import polars as pl
from pydantic import Field, model_validator

from models.compliance.frames import CERTIFICATIONS, CERTIFIED_NODES, INVENTORY
from models.hostlist import expand_hostlist
from models.money.grants import day_after, day_start
from models.policy_model import PolicyModel

ANY = "*"
# An open end: far enough that no run reaches it, representable as a µs timestamp.
OPEN_END = date(9999, 12, 30)


def _hostlist_ok(text: str, where: str) -> None:
    if text == ANY:
        return
    try:
        hosts = expand_hostlist(text)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    if not hosts:
        raise ValueError(f"{where}: the node list {text!r} names no node")


class Regime(PolicyModel):
    """A compliance regime a grant can carry, e.g. ``hipaa`` or ``export-controlled``."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = ""


class Certification(PolicyModel):
    """Infrastructure approved for one regime from ``start`` to ``end`` (inclusive, or open)."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    regime: str
    cluster: str
    partitions: list[str] = [ANY]  # ["*"] = every partition of the cluster
    nodes: str = ANY  # a Slurm hostlist, or "*" = every node of the cluster
    gpu_models: list[str] = [ANY]  # ["*"] = any GPU model (and nodes without GPUs)
    start: date
    end: date | None = None  # inclusive; None = until further notice
    note: str = ""

    @model_validator(mode="after")
    def _valid(self) -> Certification:
        where = f"certification {self.id}"
        if self.end is not None and self.end < self.start:
            raise ValueError(f"{where}: end {self.end} is before start {self.start}")
        if not self.partitions or not self.gpu_models:
            raise ValueError(f'{where}: partitions and gpu_models need a name or "*"')
        _hostlist_ok(self.nodes, where)
        return self


class InventoryEntry(PolicyModel):
    """Nodes of a cluster (a hostlist), their partitions and GPU model, in a validity period."""

    cluster: str
    names: str  # a Slurm hostlist: "gpu[001-016]"
    partitions: list[str] = []
    gpu_model: str | None = None  # None: no GPU
    start: date
    end: date | None = None  # inclusive; None = still there

    @model_validator(mode="after")
    def _valid(self) -> InventoryEntry:
        where = f"inventory entry {self.cluster}/{self.names}"
        if self.end is not None and self.end < self.start:
            raise ValueError(f"{where}: end {self.end} is before start {self.start}")
        if self.names == ANY:
            raise ValueError(f"{where}: name the nodes (a hostlist), not *")
        _hostlist_ok(self.names, where)
        return self


class Compliance(PolicyModel):
    """The registry: regimes, certifications and the node inventory (all effective-dated)."""

    regimes: list[Regime] = []
    certifications: list[Certification] = []
    nodes: list[InventoryEntry] = []

    @model_validator(mode="after")
    def _consistent(self) -> Compliance:
        names = [r.name for r in self.regimes]
        ids = [c.id for c in self.certifications]
        for kind, values in (("regime", names), ("certification", ids)):
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"{kind} {repeated[0]} appears more than once")
        for cert in self.certifications:
            if cert.regime not in names:
                raise ValueError(f"certification {cert.id}: unknown regime {cert.regime!r}")
        overlap = _inventory_overlap(self.nodes)
        if overlap is not None:
            raise ValueError(overlap)
        return self


def check_compliance(
    compliance: Compliance, *, clusters: set[str], grant_regimes: dict[str, str | None]
) -> None:
    """Raise ValueError naming a certification or inventory entry on a cluster the policy does
    not define, or a grant whose regime the registry does not define."""
    for cert in compliance.certifications:
        if cert.cluster not in clusters:
            raise ValueError(
                f"compliance: certification {cert.id}: unknown cluster {cert.cluster!r}"
            )
    for entry in compliance.nodes:
        if entry.cluster not in clusters:
            raise ValueError(
                f"compliance: inventory entry {entry.names}: unknown cluster {entry.cluster!r}"
            )
    names = {r.name for r in compliance.regimes}
    for grant_id, regime in grant_regimes.items():
        if regime is not None and regime not in names:
            raise ValueError(
                f"grant {grant_id}: regime {regime!r} is not in [[compliance.regimes]]"
            )


def inventory_frame(entries: list[InventoryEntry]) -> pl.DataFrame:
    """Return one row per node and inventory entry: cluster, node, partitions, gpu_model,
    from_at, until_at (half-open UTC interval)."""
    rows = [
        {
            "cluster": e.cluster,
            "node": node,
            "partitions": e.partitions,
            "gpu_model": e.gpu_model,
            "from_at": day_start(e.start),
            "until_at": day_after(e.end or OPEN_END),
        }
        for e in entries
        for node in expand_hostlist(e.names)
    ]
    return pl.DataFrame(rows, schema=INVENTORY)


def _inventory_overlap(entries: list[InventoryEntry]) -> str | None:
    """Return a message naming a node listed twice for overlapping dates, or None."""
    frame = inventory_frame(entries).with_row_index("_e")
    pairs = frame.join(frame, on=["cluster", "node"], suffix="_b").filter(
        (pl.col("_e") < pl.col("_e_b"))
        & (pl.col("from_at") < pl.col("until_at_b"))
        & (pl.col("from_at_b") < pl.col("until_at"))
    )
    if pairs.height == 0:
        return None
    row = pairs.row(0, named=True)
    return (
        f"inventory: node {row['cluster']}/{row['node']} is listed twice from "
        f"{max(row['from_at'], row['from_at_b']):%Y-%m-%d}: end one entry before the next starts"
    )


def certification_frame(certs: list[Certification]) -> pl.DataFrame:
    """Return one row per certification: certification_id, regime, cluster, partitions,
    all_nodes, gpu_models, from_at, until_at (half-open UTC interval)."""
    rows = [
        {
            "certification_id": c.id,
            "regime": c.regime,
            "cluster": c.cluster,
            "partitions": c.partitions,
            "all_nodes": c.nodes == ANY,
            "gpu_models": c.gpu_models,
            "from_at": day_start(c.start),
            "until_at": day_after(c.end or OPEN_END),
        }
        for c in certs
    ]
    return pl.DataFrame(rows, schema=CERTIFICATIONS)


def certified_node_frame(certs: list[Certification]) -> pl.DataFrame:
    """Return one row per node named by a certification's hostlist (``*`` ones are left out):
    certification_id, regime, cluster, node."""
    rows = [
        {"certification_id": c.id, "regime": c.regime, "cluster": c.cluster, "node": node}
        for c in certs
        if c.nodes != ANY
        for node in expand_hostlist(c.nodes)
    ]
    return pl.DataFrame(rows, schema=CERTIFIED_NODES)
