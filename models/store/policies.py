"""Recording policy versions (with their association trees) and reading the active one.

Every load of a policy whose hash differs from the active version's records a new version; the
active policy is the latest version recorded. Earlier versions are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from models.errors import PolicyError
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
    current = read_active_policy(con)
    if current is not None and current.sha256 == digest:
        return current.version_id, False
    version_id = (current.version_id + 1) if current else 1
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
    version_id, digest, origin, loaded_at, text = rows[0]
    policy = load_policy_text(text, origin=f"policy version {version_id}")
    if policy.sha256() != digest:
        raise PolicyError(f"policy version {version_id} does not match its recorded hash")
    return PolicyVersion(version_id, digest, origin, loaded_at, policy)
