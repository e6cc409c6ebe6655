"""Read ``sacctmgr --parsable2 show associations`` output as the policy's associations.

``parse_sacctmgr_associations`` is pure (text in, ``Association`` list out). Columns are found
by the header; without a ParentName column the account tree is recovered from Lft/Rgt where it
can be. Every problem is a ``PolicyError`` that names the file, the line and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ingest.sources.sacctmgr_table import parse_sacctmgr_table
from models.errors import PolicyError
from models.policy import Association

# What to run when the association list lacks the columns the tree needs.
ASSOC_EXPORT_COMMAND = (
    "sacctmgr --parsable2 show associations format=Cluster,Account,User,ParentName,Share,Lft"
)

_WHOLE_RE = re.compile(r"[0-9]+")

_ASSOC_COLUMNS = {
    "cluster": "cluster",
    "account": "account",
    "user": "user",
    "partition": "partition",
    "parname": "parent",
    "parentname": "parent",
    "share": "shares",
    "shares": "shares",
    "fairshare": "shares",
    "lft": "lft",
    "rgt": "rgt",
}


def _shares(value: str, where: str) -> int | Literal["parent"]:
    if value == "":
        return 1  # Slurm's default
    if value.lower() == "parent":
        return "parent"
    if not _WHOLE_RE.fullmatch(value):
        raise PolicyError(f"{where} Share: {value!r} is not a whole number >= 0 or 'parent'")
    return int(value)


def _optional_int(value: str, where: str) -> int | None:
    if value == "":
        return None
    if not _WHOLE_RE.fullmatch(value):
        raise PolicyError(f"{where}: {value!r} is not a whole number")
    return int(value)


@dataclass
class _AssocRow:
    line: int
    cluster: str
    account: str
    user: str
    parent: str | None
    shares: int | Literal["parent"]
    lft: int | None
    rgt: int | None


def _derive_parents(rows: list[_AssocRow], origin: str, have_bounds: bool) -> None:
    """Fill in account parents when the output has no ParentName column.

    With Lft and Rgt (Slurm's nested-set bounds) the parent is the innermost enclosing account.
    Without them only a cluster with at most one account below root is unambiguous: sacctmgr's
    row order (each account followed by its users, then its sub-accounts by name) cannot tell a
    sub-account of the previous account from its next sibling.
    """
    accounts = [r for r in rows if not r.user and r.account != "root"]
    for row in accounts:
        where = f"{origin}:{row.line}: account {row.account!r}"
        if have_bounds and row.lft is not None and row.rgt is not None:
            lft, rgt = row.lft, row.rgt
            enclosing = [
                p
                for p in rows
                if not p.user and p.cluster == row.cluster and p.lft is not None
                if p.rgt is not None and p.lft < lft and p.rgt > rgt
            ]
            if not enclosing:
                raise PolicyError(f"{where}: no account's Lft..Rgt encloses {lft}..{rgt}")
            row.parent = max(enclosing, key=lambda p: p.lft or 0).account
            continue
        siblings = [a for a in accounts if a.cluster == row.cluster]
        if len(siblings) > 1:
            raise PolicyError(
                f"{origin}: no ParentName column, so the account tree of cluster "
                f"{row.cluster!r} ({len(siblings)} accounts below root) cannot be recovered "
                f"(sacctmgr's row order does not say whose sub-account an account is); "
                f"export it with: {ASSOC_EXPORT_COMMAND}"
            )
        row.parent = "root"


def parse_sacctmgr_associations(
    text: str,
    *,
    origin: str = "<assoc>",
    partition_rows: Literal["error", "drop"] = "error",
) -> list[Association]:
    """Return the associations in ``sacctmgr --parsable2 show associations [format=...]`` output.

    Columns are found by the header (any order, any case, extra columns ignored). Per-partition
    user associations (Partition set) raise PolicyError unless ``partition_rows="drop"``, which
    leaves them out: the policy has one association per (cluster, account, user).
    """
    required = {"cluster": "Cluster", "account": "Account", "user": "User", "shares": "Share"}
    table, present = parse_sacctmgr_table(
        text, origin, _ASSOC_COLUMNS, required, ASSOC_EXPORT_COMMAND
    )
    rows: list[_AssocRow] = []
    seen: dict[tuple[str, str, str], int] = {}
    for number, cells in table:
        where = f"{origin}:{number}:"
        account, user = cells["account"], cells["user"]
        if not account:
            raise PolicyError(f"{where} Account is empty")
        if cells.get("partition"):
            if partition_rows == "drop":
                continue
            raise PolicyError(
                f"{where} association {account}/{user} is limited to partition "
                f"{cells['partition']!r}; a policy has one association per user and account: "
                "delete the per-partition rows to import without them"
            )
        key = (cells["cluster"], account, user)
        if key in seen:
            raise PolicyError(
                f"{where} association {'/'.join(key)} repeats line {seen[key]} (per-partition "
                "associations? add Partition to the format)"
            )
        seen[key] = number
        parent: str | None = account if user else (cells.get("parent") or None)
        if not user and account != "root" and "parent" in present and parent is None:
            raise PolicyError(f"{where} ParentName is empty for account {account!r}")
        rows.append(
            _AssocRow(
                line=number,
                cluster=cells["cluster"],
                account=account,
                user=user,
                parent=None if (account == "root" and not user) else parent,
                shares=_shares(cells["shares"], where),
                lft=_optional_int(cells.get("lft", ""), f"{where} Lft"),
                rgt=_optional_int(cells.get("rgt", ""), f"{where} Rgt"),
            )
        )
    if "parent" not in present:
        _derive_parents(rows, origin, have_bounds={"lft", "rgt"} <= present)
    accounts = {(r.cluster, r.account) for r in rows if not r.user}
    for r in rows:
        needed = r.account if r.user else r.parent
        if needed is not None and (r.cluster, needed) not in accounts:
            raise PolicyError(
                f"{origin}:{r.line}: {'account' if r.user else 'parent'} {needed!r} of "
                f"{r.account}/{r.user or '-'} has no account row in cluster {r.cluster!r}"
            )
    return [
        Association(
            cluster=r.cluster,
            account=r.account,
            user=r.user,
            parent=r.parent,
            shares=r.shares,
            lft=r.lft,
        )
        for r in rows
    ]
