"""Factor snapshots: deterministic bytes, ETags that change iff the content does, bytes that
parse back to the factors, a store round trip that rebuilds the same ETag, viewer scoping."""

from __future__ import annotations

import io
import json
import math
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.fairshare.frames import FACTORS
from models.fairshare.snapshots import (
    FactorSnapshot,
    SnapshotMeta,
    accounts_within,
    build_snapshot,
    scoped_snapshot,
)
from models.store import open_store
from models.store.handle import StoreHandle
from models.store.snapshots import (
    list_snapshots,
    next_snapshot_id,
    prune_snapshots,
    read_latest_snapshot,
    write_snapshot,
)
from tests.strategies import examples

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
META = SnapshotMeta(
    snapshot_id=7,
    as_of=T0,
    computed_at=T0,
    policy_version=1,
    algorithm="fair_tree",
    data_watermark_batch=3,
    data_watermark_at=T0,
    run_count=10,
)
# root -> {sci -> {phys, chem}, arts}; users in phys, chem and arts
TREE = [
    ("root", "", None),
    ("sci", "", "root"),
    ("phys", "", "sci"),
    ("phys", "ann", "phys"),
    ("chem", "", "sci"),
    ("chem", "bo", "chem"),
    ("arts", "", "root"),
    ("arts", "cy", "arts"),
]


def factors(values: list[float | None] | None = None, cluster: str = "c") -> pl.DataFrame:
    n = len(TREE)
    values = values if values is not None else [0.5] * n
    return pl.DataFrame(
        {
            "cluster": [cluster] * n,
            "account": [a for a, _, _ in TREE],
            "user": [u for _, u, _ in TREE],
            "parent_account": [p for _, _, p in TREE],
            "depth": list(range(n)),
            "raw_shares": [1] * n,
            "shares_parent": [False] * n,
            "norm_shares": [0.25] * n,
            "raw_usage": values,
            "norm_usage": values,
            "effective_usage": values,
            "fairshare": [0.5] * n,
            "level_fs": [math.inf if i % 3 == 0 else 1.5 for i in range(n)],
        },
        schema=FACTORS,
    )


def strict_json(data: bytes) -> dict[str, object]:
    def refuse(constant: str) -> object:
        raise AssertionError(f"{constant} is not JSON")

    parsed: dict[str, object] = json.loads(data, parse_constant=refuse)
    return parsed


finite = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False)
usage_lists = st.lists(st.one_of(st.none(), finite), min_size=len(TREE), max_size=len(TREE))


@settings(max_examples=examples(60), deadline=None)
@given(values=usage_lists, other=usage_lists)
def test_etag_changes_iff_the_content_changes(
    values: list[float | None], other: list[float | None]
) -> None:
    a, b = build_snapshot(factors(values), META), build_snapshot(factors(other), META)
    same = factors(values).equals(factors(other))
    assert (a.etag == b.etag) is same
    assert (a.csv_etag == b.csv_etag) is same
    assert (a.content_sha256 == b.content_sha256) is same
    assert build_snapshot(factors(values), META).json == a.json  # deterministic


def test_metadata_changes_the_json_etag_but_not_the_content_hash() -> None:
    a = build_snapshot(factors(), META)
    b = build_snapshot(factors(), replace(META, snapshot_id=8))
    assert a.etag != b.etag
    assert a.content_sha256 == b.content_sha256 and a.csv == b.csv


def test_etags_are_strong_and_quoted() -> None:
    snapshot = build_snapshot(factors(), META)
    for etag in (snapshot.etag, snapshot.csv_etag):
        assert etag.startswith('"') and etag.endswith('"') and len(etag) == 66


@settings(max_examples=examples(40), deadline=None)
@given(values=usage_lists)
def test_bytes_parse_back_to_the_factors(values: list[float | None]) -> None:
    frame = factors(values)
    snapshot = build_snapshot(frame, META)
    body = strict_json(snapshot.json)
    assert body["count"] == frame.height == len(body["data"])  # type: ignore[arg-type]
    assert body["snapshot"] == {**META.public(frame.height), "as_of": "2026-11-01T12:00:00Z"}
    for row, expected in zip(body["data"], frame.to_dicts(), strict=True):  # type: ignore[call-overload]
        for key, value in expected.items():
            if isinstance(value, float) and math.isinf(value):
                assert row[key] == "inf"  # JSON has no infinity: the string "inf"
            else:
                assert row[key] == value, key
    back = pl.read_csv(io.BytesIO(snapshot.csv), schema=FACTORS)
    assert back.equals(frame)
    one = strict_json(snapshot.associations[("c", "phys", "ann")])
    assert one["fairshare"] == 0.5 and one["snapshot_id"] == 7 and one["level_fs"] == "inf"


def test_accounts_within_takes_the_subtree_in_every_cluster() -> None:
    frame = pl.concat([factors(cluster="a"), factors(cluster="b")])
    assert accounts_within(frame, ["sci"]) == {
        (c, a) for c in "ab" for a in ("sci", "phys", "chem")
    }
    assert accounts_within(frame, ["nowhere"]) == {("a", "nowhere"), ("b", "nowhere")}


def test_scoped_snapshot_keeps_the_accounts_subtree_only() -> None:
    snapshot = build_snapshot(factors(), META)
    scoped = scoped_snapshot(snapshot, ["sci"])
    assert scoped.frame.get_column("account").to_list() == ["sci", "phys", "phys", "chem", "chem"]
    assert ("c", "arts", "cy") not in scoped.associations
    assert scoped.etag != snapshot.etag
    empty = scoped_snapshot(snapshot, ["nowhere"])
    assert empty.count == 0 and strict_json(empty.json)["data"] == []


def _published(con: object, values: list[float | None]) -> FactorSnapshot:
    meta = replace(META, snapshot_id=next_snapshot_id(con))  # type: ignore[arg-type]
    snapshot = build_snapshot(factors(values), meta)
    write_snapshot(con, snapshot)  # type: ignore[arg-type]
    return snapshot


def test_store_round_trip_rebuilds_the_same_bytes(tmp_path: Path) -> None:
    con = open_store(tmp_path / "s.duckdb")
    try:
        assert read_latest_snapshot(con) is None
        _published(con, [1.0] * len(TREE))
        second = _published(con, [2.0, None, *[3.0] * (len(TREE) - 2)])
        back = read_latest_snapshot(con)
        assert back is not None
        assert back.meta == second.meta
        assert (back.json, back.csv, back.etag) == (second.json, second.csv, second.etag)
        page, total = list_snapshots(con)
        assert total == 2 and page.get_column("snapshot_id").to_list() == [2, 1]
        assert page.get_column("etag").to_list()[0] == second.etag
    finally:
        con.close()


def test_pruning_keeps_the_latest_factors_and_every_row_of_metadata(tmp_path: Path) -> None:
    con = open_store(tmp_path / "p.duckdb")
    try:
        for i in range(5):
            _published(con, [float(i)] * len(TREE))
        assert prune_snapshots(con, keep=2) == 3
        assert prune_snapshots(con, keep=2) == 0
        page, total = list_snapshots(con)
        assert total == 5
        kept = page.filter(pl.col("factors_pruned_at").is_null()).get_column("snapshot_id")
        assert kept.to_list() == [5, 4]
        rows = con.execute("SELECT DISTINCT snapshot_id FROM snapshot_factors ORDER BY 1")
        assert [r[0] for r in rows.fetchall()] == [4, 5]
        latest = read_latest_snapshot(con)
        assert latest is not None and latest.meta.snapshot_id == 5
    finally:
        con.close()


def test_store_handle_serialises_writes_and_reads_alongside(tmp_path: Path) -> None:
    handle = StoreHandle.open(tmp_path / "h.duckdb")
    errors: list[BaseException] = []
    with handle.write() as cur:
        cur.execute("CREATE TABLE counter (n INTEGER)")

    def writer() -> None:
        try:
            for i in range(50):
                with handle.write() as cur:
                    cur.execute("BEGIN TRANSACTION")
                    cur.execute("INSERT INTO counter VALUES (?), (?)", [i, i])
                    cur.execute("COMMIT")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(100):
                with handle.reading() as cur:
                    (n,) = cur.execute("SELECT count(*) FROM counter").fetchall()[0]
                    assert n % 2 == 0  # never half a transaction
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=f) for f in (writer, writer, reader, reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with handle.reading() as cur:
        assert cur.execute("SELECT count(*) FROM counter").fetchall()[0][0] == 200
    handle.close()
    assert handle.closed
    # a closed handle lets DuckDB's own error through (no StoreError of ours)
    with pytest.raises(duckdb.ConnectionException, match="Connection already closed"):
        handle.read().execute("SELECT 1")
