"""Import a node inventory from Slurm: ``scontrol show node`` output or slurm.conf lines.

``parse_*`` functions are pure (text in, inventory entries out). Either input gives, for each
node, its partitions and its GPU model (the type of its ``gpu`` GRES, e.g. ``a100`` in
``Gres=gpu:a100:4(S:0-1)``); nodes that share both are grouped under one hostlist
(``gpu[001-016]``). Entries are valid from the date passed in, with an open end: the admin pastes
them into the policy's ``[compliance]`` table (see ``docs/compliance.md``).

- ``scontrol show node`` (the multi-line form, or ``-o`` one line per node): records start at
  ``NodeName=``; ``Partitions=`` and ``Gres=`` are read, the free text of ``OS=`` and
  ``Reason=`` is cut first (it may hold anything, ``Partitions=`` too).
- slurm.conf: ``NodeName=`` lines (hostlist names; ``NodeName=DEFAULT`` sets ``Gres`` for the
  lines after it) and ``PartitionName=`` lines, whose ``Nodes=`` (a hostlist, or ``ALL``) say
  which partitions a node is in. Comments, quoted values and continued lines are read as
  Slurm reads them; ``NodeSet`` names in ``Nodes=`` are not expanded (listed in the notes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from models.compliance.registry import InventoryEntry
from models.errors import ParseError
from models.hostlist import compress_hostlist, expand_hostlist

_PAIR = re.compile(r'([A-Za-z][A-Za-z0-9_.]*)=(?:"([^"]*)"|(\S*))')
_SCONTROL_HINT = re.compile(r"(?m)\b(?:Partitions|CPUTot|CPUAlloc)=")
_FREE_OS = re.compile(r"(?:^|(?<=\s))OS=.*?(?=\s+RealMemory=|\n|$)", re.MULTILINE)
_FREE_REASON = re.compile(r"(?:^|(?<=\s))Reason=.*$", re.MULTILINE)
_NULL = {"", "(null)", "none", "n/a"}


@dataclass(frozen=True)
class NodeInventory:
    """Inventory entries read from one input, and what was skipped or assumed."""

    entries: tuple[InventoryEntry, ...]
    nodes: int
    notes: tuple[str, ...] = ()

    def to_toml(self) -> str:
        """Return the entries as ``[[compliance.nodes]]`` tables to paste into a policy."""
        tables = []
        for e in self.entries:
            lines = ["[[compliance.nodes]]", f"cluster = {_string(e.cluster)}"]
            lines.append(f"names = {_string(e.names)}")
            lines.append(f"partitions = [{', '.join(_string(p) for p in e.partitions)}]")
            if e.gpu_model is not None:
                lines.append(f"gpu_model = {_string(e.gpu_model)}")
            lines.append(f"start = {e.start.isoformat()}")
            tables.append("\n".join(lines) + "\n")
        return "\n".join(tables)


def _string(value: str) -> str:
    """Return ``value`` as a TOML basic string (JSON's escaping is valid TOML)."""
    return json.dumps(value, ensure_ascii=False)


def gpu_model(gres: str) -> str | None:
    """Return the type of the first typed ``gpu`` GRES in a Gres value, or None.

    ``gpu:a100:4(S:0-1)`` gives ``a100``; ``gpu:4``, ``(null)`` and ``mps:100`` give None.
    """
    for item in re.split(r",(?![^(]*\))", gres):
        parts = item.split("(", 1)[0].strip().split(":")
        if parts[0].lower() != "gpu" or len(parts) < 2:
            continue
        if len(parts) >= 3 or not re.fullmatch(r"\d+[KMG]?", parts[1]):
            return parts[1]
    return None


def _pairs(text: str) -> dict[str, str]:
    """Return the ``Key=Value`` pairs of ``text`` (lower-case keys; the last one wins)."""
    return {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _PAIR.finditer(text)
    }


def _hosts(text: str, where: str) -> list[str]:
    try:
        return expand_hostlist(text)
    except ValueError as exc:
        raise ParseError(f"{where}: {exc}") from exc


def _grouped(
    nodes: dict[str, tuple[tuple[str, ...], str | None]], *, cluster: str, valid_from: date
) -> tuple[InventoryEntry, ...]:
    """Return one entry per (partitions, gpu model), its nodes as one hostlist, in name order."""
    groups: dict[tuple[tuple[str, ...], str | None], list[str]] = {}
    for node, key in nodes.items():
        groups.setdefault(key, []).append(node)
    entries = [
        InventoryEntry(
            cluster=cluster,
            names=compress_hostlist(names),
            partitions=list(partitions),
            gpu_model=model,
            start=valid_from,
        )
        for (partitions, model), names in groups.items()
    ]
    return tuple(sorted(entries, key=lambda e: e.names))


def parse_scontrol_nodes(text: str, *, cluster: str, valid_from: date) -> NodeInventory:
    """Return the inventory in ``scontrol show node`` output (one or many records).

    Raises ParseError when no ``NodeName=`` record is found or a name is not a hostlist.
    """
    starts = [m.start() for m in re.finditer(r"(?m)^\s*NodeName=", text)]
    if not starts:
        raise ParseError("scontrol output: no NodeName= record found")
    nodes: dict[str, tuple[tuple[str, ...], str | None]] = {}
    notes: list[str] = []
    for begin, end in zip(starts, [*starts[1:], len(text)], strict=True):
        # Free text may hold anything, "Partitions=" too: cut OS= (up to RealMemory= in the
        # one-line form) and Reason= (to the end of its line, where scontrol prints it).
        record = _FREE_OS.sub("", text[begin:end])
        record = _FREE_REASON.sub("", record)
        name = re.search(r"NodeName=(\S+)", record)
        parts = re.search(r"(?:^|\s)Partitions=(\S+)", record)
        gres = re.search(r"(?:^|\s)Gres=(\S+)", record)
        assert name is not None
        partitions = (
            tuple(sorted(p for p in parts.group(1).split(",") if p))
            if parts and parts.group(1).lower() not in _NULL
            else ()
        )
        if not partitions:
            notes.append(f"node {name.group(1)}: in no partition")
        model = gpu_model(gres.group(1)) if gres else None
        for node in _hosts(name.group(1), f"NodeName={name.group(1)}"):
            nodes[node] = (partitions, model)
    entries = _grouped(nodes, cluster=cluster, valid_from=valid_from)
    return NodeInventory(entries, len(nodes), tuple(notes))


def _conf_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield (line number, logical line) of a slurm.conf: comments cut, continuations joined."""
    buffer, first = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.sub(r"(?<!\\)#.*", "", raw).rstrip()
        if not buffer:
            first = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        yield first, (buffer + line).replace("\\#", "#")
        buffer = ""
    if buffer:
        yield first, buffer


def parse_slurm_conf_nodes(
    text: str, *, cluster: str, valid_from: date, origin: str = "slurm.conf"
) -> NodeInventory:
    """Return the inventory that slurm.conf's ``NodeName=`` and ``PartitionName=`` lines give.

    Raises ParseError naming the line when a name is not a hostlist, or when no node is defined.
    """
    defaults: dict[str, str] = {}
    models: dict[str, str | None] = {}
    memberships: list[tuple[str, str, int]] = []  # (partition, Nodes= value, line)
    notes: list[str] = []
    for number, line in _conf_lines(text):
        pairs = _pairs(line)
        where = f"{origin}:{number}"
        first_key = line.lstrip().split("=", 1)[0].lower()
        if first_key == "nodename" and "nodename" in pairs:
            name = pairs.pop("nodename")
            if name.upper() == "DEFAULT":
                defaults.update(pairs)
                continue
            model = gpu_model({**defaults, **pairs}.get("gres", ""))
            for node in _hosts(name, where):
                models[node] = model
        elif first_key == "partitionname" and "partitionname" in pairs:
            name = pairs["partitionname"]
            if name.upper() != "DEFAULT" and "nodes" in pairs:
                memberships.append((name, pairs["nodes"], number))
    if not models:
        raise ParseError(f"{origin}: no NodeName= line defines a node")
    partitions: dict[str, set[str]] = {node: set() for node in models}
    for partition, value, number in memberships:
        for item in re.split(r",(?![^\[]*\])", value):
            if item.upper() == "ALL":
                targets = list(models)
            else:
                targets = _hosts(item, f"{origin}:{number}: PartitionName={partition}")
            unknown = [t for t in targets if t not in partitions]
            if unknown:
                notes.append(
                    f"{origin}:{number}: partition {partition}: {item} is not a node defined "
                    "by NodeName= (a NodeSet?); left out"
                )
            for node in targets:
                partitions.get(node, set()).add(partition)
    for node, found in partitions.items():
        if not found:
            notes.append(f"node {node}: in no partition")
    nodes = {node: (tuple(sorted(partitions[node])), models[node]) for node in models}
    entries = _grouped(nodes, cluster=cluster, valid_from=valid_from)
    return NodeInventory(entries, len(nodes), tuple(notes))


def parse_node_inventory(text: str, *, cluster: str, valid_from: date) -> NodeInventory:
    """Return the inventory in ``text``, recognising ``scontrol show node`` output (it has
    ``Partitions=`` or ``CPUTot=``) from slurm.conf text."""
    if _SCONTROL_HINT.search(text):
        return parse_scontrol_nodes(text, cluster=cluster, valid_from=valid_from)
    return parse_slurm_conf_nodes(text, cluster=cluster, valid_from=valid_from)
