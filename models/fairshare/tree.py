"""The association tree of one cluster, with usage rolled up to every ancestor.

Two orders matter, both Slurm's:

- **sshare order** (``Tree.nodes``): depth first from root, each parent followed by its children,
  user associations before sub-accounts, each group by name (byte order, as ``strcmp``).
- **fair-share parent** (``Tree.fs_parent``): the first ancestor that is not ``Fairshare=parent``.
  Slurm links every association into its fair-share parent's child list, so the children of a
  ``Fairshare=parent`` account compete as children of that ancestor, and the account itself
  keeps no children of its own for fair-share purposes.

Usage rolls up along the real tree: an account's usage is its own (usage charged to the account
itself, ``user == ""`` in ``ASSOC_USAGE``) plus all of its descendants'.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from models.errors import PolicyError, UnknownAssociation
from models.fairshare.frames import ASSOC_USAGE

TieOrder = Literal["name", "lft"]


@dataclass(eq=False)
class Node:
    """One association: an account (``user == ""``) or a user in an account."""

    account: str
    user: str
    parent_account: str | None
    shares: int | None
    shares_parent: bool
    lft: int | None
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)
    depth: int = 0
    own_usage: float = 0.0  # usage charged to exactly this association
    raw_usage: float = 0.0  # own usage plus every descendant's

    @property
    def is_user(self) -> bool:
        return self.user != ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.account, self.user)

    def label(self) -> str:
        return f"{self.account}/{self.user}" if self.user else self.account


@dataclass
class Tree:
    """The associations of one cluster, in sshare order, linked to parents and children."""

    cluster: str
    root: Node
    nodes: list[Node]
    by_key: dict[tuple[str, str], Node]

    @property
    def users(self) -> list[Node]:
        return [n for n in self.nodes if n.is_user]

    def fs_parent(self, node: Node) -> Node | None:
        """Return the first ancestor that is not ``Fairshare=parent`` (None for root)."""
        parent = node.parent
        while parent is not None and parent.shares_parent and parent is not self.root:
            parent = parent.parent
        return parent

    def fs_children(self, order: TieOrder = "name") -> dict[int, list[Node]]:
        """Return, per fair-share parent (by ``id``), its fair-share children in child order.

        Child order is the order Slurm's child lists have: sshare order while slurmctld runs
        (``"name"``), the association table's ``lft`` after a restart (``"lft"``; associations
        without ``lft`` keep sshare order, after those with one).
        """
        position = {id(n): i for i, n in enumerate(self.nodes)}
        ordered = self.nodes
        if order == "lft":
            ordered = sorted(
                self.nodes,
                key=lambda n: (n.lft is None, n.lft if n.lft is not None else 0, position[id(n)]),
            )
        groups: dict[int, list[Node]] = {id(n): [] for n in self.nodes}
        for node in ordered:
            parent = self.fs_parent(node)
            if parent is not None:
                groups[id(parent)].append(node)
        return groups


def _sort_key(node: Node) -> tuple[bool, bytes]:
    name = node.user if node.is_user else node.account
    return (not node.is_user, name.encode())


def build_tree(assocs: pl.DataFrame, cluster: str) -> Tree:
    """Return the tree of ``cluster`` from an ``ASSOCIATIONS`` frame (PolicyError if broken)."""
    rows = assocs.filter(pl.col("cluster") == cluster).to_dicts()
    nodes: dict[tuple[str, str], Node] = {}
    for row in rows:
        user = row["user"] or ""
        node = Node(
            account=row["account"],
            user=user,
            parent_account=row["account"] if user else row["parent_account"],
            shares=row["shares"],
            shares_parent=bool(row["shares_parent"]),
            lft=row.get("lft"),
        )
        if node.key in nodes:
            raise PolicyError(f"cluster {cluster}: association {node.label()} is defined twice")
        if node.shares is None and not node.shares_parent and node.account != "root":
            raise PolicyError(f"cluster {cluster}: association {node.label()} has no shares")
        nodes[node.key] = node
    root = nodes.get(("root", ""))
    if root is None:
        raise PolicyError(f"cluster {cluster}: no root account")
    root.parent_account = None
    for node in nodes.values():
        if node is root:
            continue
        parent = nodes.get((node.parent_account or "", ""))
        if parent is None:
            raise PolicyError(
                f"cluster {cluster}: {node.label()} has unknown parent {node.parent_account!r}"
            )
        node.parent = parent
        parent.children.append(node)
    order: list[Node] = []
    stack = [root]
    while stack:
        node = stack.pop()
        order.append(node)
        node.children.sort(key=_sort_key)
        for child in node.children:
            child.depth = node.depth + 1
        stack.extend(reversed(node.children))
    if len(order) != len(nodes):
        lost = sorted(n.label() for n in nodes.values() if n not in order)
        raise PolicyError(f"cluster {cluster}: associations not under root: {', '.join(lost)}")
    return Tree(cluster=cluster, root=root, nodes=order, by_key=nodes)


def clusters_of(assocs: pl.DataFrame) -> list[str]:
    """Return the clusters of an ``ASSOCIATIONS`` frame, sorted."""
    return sorted(assocs.get_column("cluster").unique().to_list())


def split_usage(assocs: pl.DataFrame, usage: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (usage of known associations, usage of associations the tree does not have)."""
    keys = assocs.select("cluster", "account", pl.col("user").fill_null("")).unique()
    marked = usage.with_columns(pl.col("user").fill_null("")).join(
        keys.with_columns(pl.lit(True).alias("__known")),
        on=["cluster", "account", "user"],
        how="left",
        maintain_order="left",
    )
    known = pl.col("__known").fill_null(False)
    return marked.filter(known).drop("__known"), marked.filter(~known).drop("__known")


def attach_usage(tree: Tree, usage: pl.DataFrame) -> None:
    """Set every node's own and rolled-up usage from an ``ASSOC_USAGE`` frame.

    Raises UnknownAssociation when usage names an association the tree does not have.
    """
    for node in tree.nodes:
        node.own_usage = 0.0
    mine = usage.filter(pl.col("cluster") == tree.cluster)
    unknown: list[str] = []
    for account, user, raw in mine.select("account", "user", "raw_usage").iter_rows():
        found = tree.by_key.get((account, user or ""))
        if found is None:
            unknown.append(f"{account}/{user}" if user else account)
            continue
        found.own_usage += float(raw or 0.0)
    if unknown:
        raise UnknownAssociation(
            f"cluster {tree.cluster}: usage for unknown associations: {', '.join(sorted(unknown))}"
        )
    for node in reversed(tree.nodes):  # children come after their parent in sshare order
        node.raw_usage = node.own_usage + sum(c.raw_usage for c in node.children)


def rolled_usage(assocs: pl.DataFrame, usage: pl.DataFrame) -> pl.DataFrame:
    """Return ``ASSOC_USAGE`` with one row per association, ``raw_usage`` summed over its subtree.

    Rows come per cluster in sshare order.
    """
    rows: list[tuple[str, str, str, float]] = []
    for cluster in clusters_of(assocs):
        tree = build_tree(assocs, cluster)
        attach_usage(tree, usage)
        rows.extend((cluster, n.account, n.user, n.raw_usage) for n in tree.nodes)
    return pl.DataFrame(rows, schema=ASSOC_USAGE, orient="row")


def trees(assocs: pl.DataFrame, usage: pl.DataFrame) -> Iterable[Tree]:
    """Yield each cluster's tree with usage attached, clusters in name order."""
    for cluster in clusters_of(assocs):
        tree = build_tree(assocs, cluster)
        attach_usage(tree, usage)
        yield tree
