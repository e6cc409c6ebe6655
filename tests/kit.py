"""Builders the tests share: a store handle on a DuckDB file and a small site's policy TOML.

The ``store`` fixture (``tests/conftest.py``) is ``store_handle`` on ``tmp_path``; a test that
needs another file or a policy in force calls ``store_handle`` itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from models.policy import Association, Cluster, Policy, load_policy_text
from models.store import write_policy
from models.store.handle import StoreHandle


@contextmanager
def store_handle(path: Path, *, policy: str | None = None) -> Iterator[StoreHandle]:
    """Yield a handle on a migrated store at ``path`` (with the ``policy`` TOML active if
    given) and close it afterwards."""
    handle = StoreHandle.open(path)
    try:
        if policy is not None:
            with handle.write() as cur:
                write_policy(cur, load_policy_text(policy), origin="test")
        yield handle
    finally:
        handle.close()


def site_policy(
    tree: Mapping[str, Sequence[str]],
    *,
    cluster: str = "lab",
    partition: str = "cpu",
    billing: str | None = "CPU=1.0",
    account_shares: int | None = None,
    user_shares: int | None = None,
    half_life_s: int | None = None,
    extra: str = "",
) -> str:
    """Return the policy TOML of one cluster with one default partition (billed by ``billing``),
    a root account, the accounts of ``tree`` under it and each account's users, in that order;
    ``extra`` (more tables) goes first."""
    weights = f', tres_billing_weights = "{billing}"' if billing is not None else ""
    parts = [
        extra,
        "[[clusters]]",
        f'name = "{cluster}"',
        f'partitions = [{{ name = "{partition}"{weights}, default = true }}]',
        "",
    ]
    if half_life_s is not None:
        parts += ["[decay]", f"half_life_s = {half_life_s}", ""]

    def association(account: str, *, parent: bool, user: str | None = None) -> list[str]:
        lines = ["[[associations]]", f'cluster = "{cluster}"', f'account = "{account}"']
        if parent:
            lines.append('parent = "root"')
        if user is not None:
            lines.append(f'user = "{user}"')
        shares = user_shares if user is not None else account_shares if parent else None
        if shares is not None:
            lines.append(f"shares = {shares}")
        return [*lines, ""]

    parts += association("root", parent=False)
    for account in tree:
        parts += association(account, parent=True)
    for account, users in tree.items():
        for user in users:
            parts += association(account, parent=False, user=user)
    return "\n".join(parts)


# accounts a and b of cluster lab are each other's parent: refused since issue 16
CYCLIC_POLICY = """
[[clusters]]
name = "lab"

[[associations]]
cluster = "lab"
account = "root"

[[associations]]
cluster = "lab"
account = "a"
parent = "b"

[[associations]]
cluster = "lab"
account = "b"
parent = "a"
"""


def self_parent_policy() -> Policy:
    """Return a policy of cluster lab whose account "a" is its own parent, built without
    validation: what releases before issue 16 loaded and recorded."""
    return Policy.model_construct(
        clusters=[Cluster(name="lab")],
        associations=[
            Association(cluster="lab", account="root"),
            Association(cluster="lab", account="a", parent="a"),
        ],
    )
