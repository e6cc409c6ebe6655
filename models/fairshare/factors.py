"""Fair-share factors: Fair Tree (Slurm's default) and the classic algorithm (NO_FAIR_TREE).

Both take an ``ASSOCIATIONS`` frame and an ``ASSOC_USAGE`` frame and return ``FACTORS`` in
sshare's row order (see ``models.fairshare.tree``), per cluster, clusters by name. The values
are the ones slurmctld holds, so ``reports.sshare`` only formats them:

- root: ``effective_usage`` 1; ``norm_usage`` null (Slurm never computes it; sshare prints
  nothing); ``norm_shares`` 1 in classic mode and 0 under Fair Tree (Slurm divides root's shares
  by an unset level total); ``fairshare`` 2**(-1/d) in classic mode, null under Fair Tree.
- ``Fairshare=parent`` association: ``raw_shares`` null; its ``norm_shares`` (and in classic
  mode its ``effective_usage``) are those of its fair-share parent, the first ancestor without
  ``Fairshare=parent``; under Fair Tree a user ranks with ``level_fs`` +inf, an account has no
  ``level_fs`` (null) and its children compete as children of its fair-share parent.

``docs/fairshare.md`` explains the algorithms and where Slurm's code and documentation differ.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Literal

import polars as pl

from models.errors import UnknownAssociation
from models.fairshare.decay import decayed_usage
from models.fairshare.frames import FACTORS
from models.fairshare.tree import Node, Tree, split_usage, trees
from models.fairshare.usage import usage_rates
from models.policy import FairShare, Policy

# Slurm's "unset" value. A Fairshare=parent account carries it as its LevelFS, and the Fair Tree
# walk starts with it as the "previous" LevelFS, so it takes part in tie detection exactly as in
# slurmctld (fair_tree.c).
NO_VAL = 4294967294.0

Row = dict[str, object]


def _check_known(assocs: pl.DataFrame, usage: pl.DataFrame) -> None:
    _, unknown = split_usage(assocs, usage)
    if unknown.height:
        names = [
            f"{c}/{a}/{u}" if u else f"{c}/{a}"
            for c, a, u in unknown.select("cluster", "account", "user").iter_rows()
        ]
        raise UnknownAssociation(f"usage for unknown associations: {', '.join(sorted(names))}")


def _level_shares(tree: Tree, children: dict[int, list[Node]]) -> dict[int, int]:
    """Return, per node, the shares of its fair-share siblings (itself included).

    ``Fairshare=parent`` siblings count 0: Slurm adds their own children's shares, and they have
    none, since those children are linked one level up.
    """
    level: dict[int, int] = {}
    for parent in tree.nodes:
        kids = children[id(parent)]
        total = sum(k.shares or 0 for k in kids if not k.shares_parent)
        for kid in kids:
            level[id(kid)] = total
    return level


def _frame(tree: Tree, values: Callable[[Node], Row]) -> pl.DataFrame:
    rows = []
    for node in tree.nodes:
        rows.append(
            {
                "cluster": tree.cluster,
                "account": node.account,
                "user": node.user,
                "parent_account": node.parent_account,
                "depth": node.depth,
                "raw_shares": None if node.shares_parent else node.shares,
                "shares_parent": node.shares_parent,
                "raw_usage": node.raw_usage,
                **values(node),
            }
        )
    return pl.DataFrame(rows, schema=FACTORS)


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(frames) if frames else pl.DataFrame(schema=FACTORS)


# ---------------------------------------------------------------------------------- Fair Tree


class _Walk:
    """Slurm's Fair Tree walk (``_calc_tree_fs``), with a tolerance in place of ``==``."""

    def __init__(
        self,
        children: dict[int, list[Node]],
        level_fs: dict[int, float],
        n_users: int,
        fairshare: FairShare,
    ) -> None:
        self.children = children
        self.level_fs = level_fs
        self.n_users = n_users
        self.merge = fairshare.ties == "merge"
        self.tol = fairshare.tolerance
        self.rank = n_users
        self.rnt = n_users  # the rank if there were no ties
        self.factor: dict[int, float] = {}

    def same(self, a: float, b: float) -> bool:
        if a == b:
            return True
        if math.isinf(a) or math.isinf(b):
            return False
        return abs(a - b) <= self.tol * max(abs(a), abs(b))

    def groups(self, siblings: Sequence[Node]) -> list[list[Node]]:
        """Return the siblings as tie groups, descending LevelFS.

        Within a group: users, then accounts, each in child order, as Slurm's stable sort
        leaves exactly equal values.
        """
        position = {id(n): i for i, n in enumerate(siblings)}
        ordered = sorted(siblings, key=lambda n: -self.level_fs[id(n)])
        out: list[list[Node]] = []
        for node in ordered:
            if out and self.same(self.level_fs[id(out[-1][0])], self.level_fs[id(node)]):
                out[-1].append(node)
            else:
                out.append([node])
        return [sorted(g, key=lambda n: (not n.is_user, position[id(n)])) for g in out]

    def walk(self, siblings: Sequence[Node], account_tied: bool) -> None:
        """Rank the users below ``siblings``; ``account_tied``: the level starts tied."""
        first = True
        for group in self.groups(siblings):
            skip = 0
            for i, node in enumerate(group):
                if skip:
                    skip -= 1
                    continue
                if i > 0:
                    tied = True
                elif first:  # slurmctld compares the first with NO_VAL, its initial "previous"
                    tied = account_tied or self.same(NO_VAL, self.level_fs[id(node)])
                else:
                    tied = False
                first = False
                if node.is_user:
                    if not tied:
                        self.rank = self.rnt
                    self.factor[id(node)] = self.rank / self.n_users
                    self.rnt -= 1
                    continue
                kids = list(self.children[id(node)])
                if self.merge:  # the documented rule: tied sibling accounts merge children
                    for other in group[i + 1 :]:
                        kids.extend(self.children[id(other)])
                    skip = len(group) - i - 1
                self.walk(kids, tied)


def _fair_tree(tree: Tree, fairshare: FairShare) -> pl.DataFrame:
    children = tree.fs_children(fairshare.tie_order)
    level = _level_shares(tree, children)
    root = tree.root
    norm: dict[int, float] = {id(root): 0.0}
    for node in tree.nodes:
        if node is not root and not node.shares_parent:
            total = level[id(node)]
            norm[id(node)] = (node.shares or 0) / total if total else 0.0
    for node in tree.nodes:
        if node.shares_parent and node is not root:
            parent = tree.fs_parent(node)
            norm[id(node)] = norm[id(parent)] if parent is not None else 0.0
    level_fs: dict[int, float] = {}
    effective: dict[int, float] = {id(root): 1.0}
    for node in tree.nodes:
        if node is root:
            continue
        parent = tree.fs_parent(node)
        above = parent.raw_usage if parent is not None else 0.0
        u = node.raw_usage / above if above else 0.0
        effective[id(node)] = u
        s = norm[id(node)]
        if node.shares_parent:
            level_fs[id(node)] = math.inf if node.is_user else NO_VAL
        elif s == 0:
            level_fs[id(node)] = 0.0
        else:
            level_fs[id(node)] = s / u if u else math.inf
    users = tree.users
    walk = _Walk(children, level_fs, len(users), fairshare)
    walk.walk(children[id(root)], False)
    total_usage = root.raw_usage

    def values(node: Node) -> Row:
        lf = level_fs.get(id(node))
        return {
            "norm_shares": norm[id(node)],
            "norm_usage": None if node is root else _norm_usage(node, total_usage),
            "effective_usage": effective[id(node)],
            "fairshare": walk.factor.get(id(node), 0.0) if node.is_user else None,
            "level_fs": None if lf is None or lf == NO_VAL else lf,
        }

    return _frame(tree, values)


def _norm_usage(node: Node, total: float) -> float:
    return min(node.raw_usage / total, 1.0) if total else 0.0


def fair_tree_factors(
    assocs: pl.DataFrame, usage: pl.DataFrame, *, fairshare: FairShare
) -> pl.DataFrame:
    """Return ``FACTORS`` by Fair Tree: users ranked depth first by LevelFS, factor rank/N.

    ``assocs`` is an ``ASSOCIATIONS`` frame, ``usage`` an ``ASSOC_USAGE`` frame (usage of
    associations not in ``assocs`` raises UnknownAssociation). ``fairshare.ties`` picks how tied
    sibling accounts are walked (``slurm`` or ``merge``), ``fairshare.tie_order`` the child
    order of tied accounts, ``fairshare.tolerance`` the relative tolerance of a LevelFS tie.
    """
    _check_known(assocs, usage)
    return _concat([_fair_tree(tree, fairshare) for tree in trees(assocs, usage)])


# ------------------------------------------------------------------------------------ classic


def _classic(tree: Tree, fairshare: FairShare) -> pl.DataFrame:
    children = tree.fs_children(fairshare.tie_order)
    level = _level_shares(tree, children)
    root = tree.root
    norm: dict[int, float] = {id(root): 1.0}
    for node in tree.nodes:  # the product of share fractions along the path
        if node is root or node.shares_parent:
            continue
        value = 1.0
        step: Node | None = node
        while step is not root and step is not None:
            if not step.shares_parent:
                total = level[id(step)]
                value = value * (step.shares or 0) / total if total else 0.0
            step = step.parent
        norm[id(node)] = value
    for node in tree.nodes:
        if node.shares_parent and node is not root:
            parent = tree.fs_parent(node)
            norm[id(node)] = norm[id(parent)] if parent is not None else 1.0
    total_usage = root.raw_usage
    effective: dict[int, float] = {id(root): 1.0}
    for node in tree.nodes:  # top down: a fair-share parent is an ancestor, computed first
        if node is root:
            continue
        parent = tree.fs_parent(node)
        mine = _norm_usage(node, total_usage)
        if parent is root or parent is None:
            effective[id(node)] = mine
        elif node.shares_parent:
            effective[id(node)] = effective[id(parent)]
        else:
            siblings = level[id(node)]
            above = effective[id(parent)]
            if siblings:
                effective[id(node)] = mine + (above - mine) * (node.shares or 0) / siblings
            else:
                effective[id(node)] = above

    def factor(node: Node) -> float:
        s = norm[id(node)]
        if s <= 0:
            return 0.0
        return float(2.0 ** (-(effective[id(node)] / s) / fairshare.dampening))

    def values(node: Node) -> Row:
        return {
            "norm_shares": norm[id(node)],
            "norm_usage": None if node is root else _norm_usage(node, total_usage),
            "effective_usage": effective[id(node)],
            "fairshare": factor(node),
            "level_fs": None,
        }

    return _frame(tree, values)


def classic_factors(
    assocs: pl.DataFrame, usage: pl.DataFrame, *, fairshare: FairShare
) -> pl.DataFrame:
    """Return ``FACTORS`` by the classic algorithm: ``FairShare = 2**(-UE / S / d)``.

    S is the product of share fractions along the path, UE the effective usage
    ``U + (UE_parent - U) * S_self / S_siblings`` (U for the tier under root), d the dampening
    factor. Accounts get a factor too; ``level_fs`` is null.
    """
    _check_known(assocs, usage)
    return _concat([_classic(tree, fairshare) for tree in trees(assocs, usage)])


# ----------------------------------------------------------------------------------- pipeline


def compute_factors(
    runs: pl.LazyFrame,
    policy: Policy,
    *,
    as_of: datetime,
    unknown: Literal["raise", "drop"] = "raise",
) -> pl.DataFrame:
    """Return ``FACTORS`` for every cluster of ``policy`` from its runs, as of ``as_of``.

    Runs -> billing rates (``models.fairshare.usage``) -> decayed usage per association
    (``models.fairshare.decay``) -> the policy's algorithm. Usage of associations the policy
    does not have raises UnknownAssociation, or with ``unknown="drop"`` is left out (find it with
    ``models.fairshare.tree.split_usage`` to report it).
    """
    usage = decayed_usage(usage_rates(runs, policy), decay=policy.decay, as_of=as_of).collect()
    assocs = policy.association_frame()
    if unknown == "drop":
        usage, _ = split_usage(assocs, usage)
    if policy.fairshare.algorithm == "classic":
        return classic_factors(assocs, usage, fairshare=policy.fairshare)
    return fair_tree_factors(assocs, usage, fairshare=policy.fairshare)
