"""Factor snapshots: the immutable, pre-serialised answer a recompute publishes.

``build_snapshot(factors, meta)`` is pure: the same frame and metadata give the same bytes and
the same ETags, which is what lets a snapshot read back from the store be served with the ETag
it was published with.

Serialisation decisions (the public contract, see ``docs/api.md``):

- JSON ``{"snapshot": {...meta}, "data": [one object per association], "count": n}``; the
  objects have the ``FACTORS`` columns in that order. A non-finite float (``level_fs`` is +inf
  for an association with shares and no usage) is written as the *string* ``"inf"`` (``"-inf"``,
  ``"nan"``), since JSON has no infinity and ``null`` already means "not applicable".
- CSV: a header and the ``FACTORS`` columns; empty cell for null, ``inf`` for infinity.
- ``content_sha256`` is the SHA-256 of the CSV (the factors alone, no metadata); the ETags are
  strong, quoted SHA-256 hex digests of each representation's bytes.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl

from models.fairshare.frames import FACTORS
from models.frames import conform

# The fields of one association (the columns of `fairledger sshare`), in the single-association
# answer.
ASSOCIATION_FIELDS = (
    "cluster",
    "account",
    "user",
    "parent_account",
    "raw_shares",
    "shares_parent",
    "norm_shares",
    "raw_usage",
    "norm_usage",
    "effective_usage",
    "fairshare",
    "level_fs",
)
_FLOATS = [name for name, dtype in FACTORS.items() if dtype == pl.Float64()]


def iso_utc(moment: datetime) -> str:
    """Return ``moment`` as ISO 8601 in UTC with a ``Z`` (as pydantic writes times)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class SnapshotMeta:
    """What a snapshot was computed from. ``snapshot_id`` is None for an unpublished one."""

    snapshot_id: int | None
    as_of: datetime
    computed_at: datetime
    policy_version: int
    algorithm: str
    data_watermark_batch: int | None  # highest ingest batch id among the runs used
    data_watermark_at: datetime | None  # latest ingested_at among the runs used
    run_count: int

    def public(self, association_count: int) -> dict[str, Any]:
        """Return the metadata as the JSON object ``snapshot`` (times ISO 8601, UTC)."""
        return {
            "snapshot_id": self.snapshot_id,
            "as_of": iso_utc(self.as_of),
            "computed_at": iso_utc(self.computed_at),
            "policy_version": self.policy_version,
            "algorithm": self.algorithm,
            "data_watermark_batch": self.data_watermark_batch,
            "data_watermark_at": (
                iso_utc(self.data_watermark_at) if self.data_watermark_at else None
            ),
            "run_count": self.run_count,
            "association_count": association_count,
        }


@dataclass(frozen=True, eq=False)
class FactorSnapshot:
    """An immutable snapshot: the ``FACTORS`` frame and its ready-to-send representations."""

    meta: SnapshotMeta
    frame: pl.DataFrame
    json: bytes
    csv: bytes
    etag: str  # of ``json``
    csv_etag: str  # of ``csv``
    content_sha256: str  # of the factors alone (= the CSV)
    # (cluster, account, user) -> the association's JSON object; user "" for an account
    associations: Mapping[tuple[str, str, str], bytes] = field(repr=False)

    @property
    def count(self) -> int:
        return self.frame.height


def _etag(data: bytes) -> str:
    return f'"{hashlib.sha256(data).hexdigest()}"'


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf", "-inf", "nan"
    return value


def _rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    rows = frame.to_dicts()
    odd = frame.select(
        pl.any_horizontal([~pl.col(c).is_finite().fill_null(True) for c in _FLOATS]).arg_true()
    )
    for i in odd.to_series().to_list():
        rows[i] = {k: _finite(v) for k, v in rows[i].items()}
    return rows


def build_snapshot(factors: pl.DataFrame, meta: SnapshotMeta) -> FactorSnapshot:
    """Return the snapshot of ``factors`` (a ``FACTORS`` frame, rows in sshare order)."""
    frame = conform(factors, FACTORS)
    rows = _rows(frame)
    body = orjson.dumps(
        {"snapshot": meta.public(frame.height), "data": rows, "count": frame.height}
    )
    csv = frame.write_csv().encode()
    header = {"snapshot_id": meta.snapshot_id, "as_of": iso_utc(meta.as_of)}
    associations = {
        (row["cluster"], row["account"], row["user"]): orjson.dumps(
            {**header, **{k: row[k] for k in ASSOCIATION_FIELDS}}
        )
        for row in rows
    }
    digest = hashlib.sha256(csv).hexdigest()
    return FactorSnapshot(
        meta=meta,
        frame=frame,
        json=body,
        csv=csv,
        etag=_etag(body),
        csv_etag=f'"{digest}"',
        content_sha256=digest,
        associations=associations,
    )


def accounts_within(factors: pl.DataFrame, accounts: Iterable[str]) -> set[tuple[str, str]]:
    """Return the (cluster, account) pairs that are one of ``accounts`` or below one, in any
    cluster of ``factors``."""
    wanted = set(accounts)
    edges = (
        factors.filter(pl.col("user") == "")
        .select("cluster", "account", "parent_account")
        .iter_rows()
    )
    children: dict[tuple[str, str], list[str]] = {}
    clusters: set[str] = set()
    for cluster, account, parent in edges:
        clusters.add(cluster)
        if parent is not None:
            children.setdefault((cluster, parent), []).append(account)
    found: set[tuple[str, str]] = set()
    stack = [(c, a) for c in clusters for a in wanted]
    while stack:
        key = stack.pop()
        if key in found:
            continue
        found.add(key)
        stack.extend((key[0], child) for child in children.get(key, []))
    return found


def scoped_snapshot(snapshot: FactorSnapshot, accounts: Iterable[str]) -> FactorSnapshot:
    """Return ``snapshot`` limited to the associations in ``accounts`` or below them."""
    allowed = accounts_within(snapshot.frame, accounts)
    key = pl.concat_str([pl.col("cluster"), pl.col("account")], separator="\x1f")
    wanted = [f"{cluster}\x1f{account}" for cluster, account in allowed]
    return build_snapshot(snapshot.frame.filter(key.is_in(wanted)), snapshot.meta)
