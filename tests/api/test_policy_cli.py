"""``fairledger policy load`` and ``policy import-slurm`` refuse a policy whose associations are
not a tree, with one line and no new policy version (issue 16)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from live_server import ROOT, base_env, cli

from models.store import open_store, read_active_policy, write_policy
from tests.kit import CYCLIC_POLICY, self_parent_policy, site_policy


def _run(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(*args, db=db), capture_output=True, text=True, env=base_env())


def _versions(db: Path) -> list[tuple[int, str]]:
    con = open_store(db)
    try:
        return con.execute(
            "SELECT version_id, origin FROM policy_versions ORDER BY version_id"
        ).fetchall()
    finally:
        con.close()


def test_a_cycle_is_refused_in_one_line_and_the_active_policy_stays(tmp_path: Path) -> None:
    db = tmp_path / "site.duckdb"
    good = tmp_path / "good.toml"
    good.write_text(site_policy({"a": ["alice"]}), encoding="utf-8")
    assert _run(db, "policy", "load", str(good)).returncode == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(CYCLIC_POLICY, encoding="utf-8")

    refused = _run(db, "policy", "load", str(bad))

    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.splitlines() == [
        f"fairledger: error: {bad}: cluster lab: accounts a -> b -> a form a cycle"
    ]
    assert _versions(db) == [(1, str(good.resolve()))]


def test_import_slurm_refuses_a_cycle_and_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "site.duckdb"
    assoc = tmp_path / "assoc.txt"
    assoc.write_text(
        "Cluster|Account|User|ParentName|Share\nlab|root|||1\nlab|a||a|1\nlab|a|alice||1\n",
        encoding="utf-8",
    )
    out = tmp_path / "policy.toml"
    conf = ROOT / "tests" / "ingest" / "slurm_conf" / "lab.conf"

    refused = _run(
        db,
        "policy",
        "import-slurm",
        "--slurm-conf",
        str(conf),
        "--assoc",
        str(assoc),
        "--out",
        str(out),
    )

    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        f"fairledger: error: cannot build the policy from {conf}: "
        'cluster lab: account "a" is its own parent'
    ]
    assert not out.exists()
    assert _versions(db) == []


def test_a_broken_policy_an_older_release_recorded_is_replaced_by_loading_a_good_one(
    tmp_path: Path,
) -> None:
    db = tmp_path / "site.duckdb"
    con = open_store(db)
    try:
        write_policy(con, self_parent_policy(), origin="old release")
    finally:
        con.close()
    good = tmp_path / "good.toml"
    good.write_text(site_policy({"a": ["alice"]}), encoding="utf-8")

    loaded = _run(db, "policy", "load", str(good))

    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.startswith("policy recorded version 2 ")
    con = open_store(db)
    try:
        active = read_active_policy(con)
    finally:
        con.close()
    assert active is not None and active.version_id == 2
