"""Recording policy versions (with their association trees) and reading the active one.

Every load of a policy whose hash differs from the active version's records a new version; the
active policy is the latest version recorded. Earlier versions are kept.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from models.errors import NoActivePolicy, PolicyError
from models.policy import Policy, load_policy_text
from models.store.audit import append_audit


@dataclass(frozen=True)
class PolicyVersion:
    version_id: int
    sha256: str
    origin: str
    loaded_at: datetime
    policy: Policy


def write_policy(
    con: duckdb.DuckDBPyConnection, policy: Policy, *, origin: str
) -> tuple[int, bool]:
    """Record ``policy`` as the active version; return (version_id, whether it is new)."""
    digest = policy.sha256()
    # the active version's id and hash only: a version an older release accepted may no longer
    # validate, and loading a good policy over it is how it is replaced
    rows = con.execute(
        "SELECT version_id, sha256 FROM policy_versions ORDER BY version_id DESC LIMIT 1"
    ).fetchall()
    if rows and rows[0][1] == digest:
        return int(rows[0][0]), False
    version_id = int(rows[0][0]) + 1 if rows else 1
    assocs = policy.association_frame()
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "INSERT INTO policy_versions VALUES (?, ?, ?, now(), ?)",
            [version_id, digest, origin, policy.to_toml()],
        )
        con.register("assoc_incoming", assocs.to_arrow())
        con.execute(
            'INSERT INTO associations SELECT ?, cluster, account, "user", parent_account, '
            "shares, shares_parent, lft FROM assoc_incoming",
            [version_id],
        )
        con.unregister("assoc_incoming")
        append_audit(
            con,
            kind="policy_version",
            actor="policy",
            payload={"version_id": version_id, "policy_sha256": digest, "origin": origin},
        )
        con.execute("COMMIT")
    except duckdb.Error:
        con.execute("ROLLBACK")
        raise
    return version_id, True


def read_active_policy(con: duckdb.DuckDBPyConnection) -> PolicyVersion | None:
    """Return the latest recorded policy version, or None when none was loaded."""
    rows = con.execute(
        "SELECT version_id, sha256, origin, loaded_at, policy_toml FROM policy_versions "
        "ORDER BY version_id DESC LIMIT 1"
    ).fetchall()
    if not rows:
        return None
    return _version(rows[0])


def require_active_policy(con: duckdb.DuckDBPyConnection) -> PolicyVersion:
    """Return the latest recorded policy version; NoActivePolicy when none was ever loaded."""
    active = read_active_policy(con)
    if active is None:
        raise NoActivePolicy()
    return active


def read_policy_version(con: duckdb.DuckDBPyConnection, version_id: int) -> PolicyVersion:
    """Return the recorded policy version ``version_id``; PolicyError if there is none."""
    rows = con.execute(
        "SELECT version_id, sha256, origin, loaded_at, policy_toml FROM policy_versions "
        "WHERE version_id = ?",
        [version_id],
    ).fetchall()
    if not rows:
        raise PolicyError(f"no policy version {version_id}")
    return _version(rows[0])


def _version(row: tuple[Any, ...]) -> PolicyVersion:
    """Return the policy version in a policy_versions row, checking the stored text's hash
    (the hash covers the text, so a later release that adds policy fields with defaults still
    reads the versions an earlier one recorded)."""
    version_id, digest, origin, loaded_at, text = row
    if hashlib.sha256(text.encode()).hexdigest() != digest:
        raise PolicyError(f"policy version {version_id} does not match its recorded hash")
    policy = load_policy_text(text, origin=f"policy version {version_id}")
    return PolicyVersion(version_id, digest, origin, loaded_at, policy)
