"""The serving state without HTTP: publishing, delivery after a publish, start-up load."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import polars as pl
import pytest

from api.errors import NotReady
from api.main import _deliver
from api.service import Service
from api.settings import Delivery, Settings
from models.frames import QUARANTINE, RUNS, STEPS, conform
from models.store import write_batch
from models.store.handle import StoreHandle
from tests.kit import site_policy, store_handle

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
POLICY = site_policy({"chem": ["alice", "bob"]})


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def _runs(*users: str) -> pl.DataFrame:
    n = len(users)
    return conform(
        pl.DataFrame(
            {
                "run_key": [f"lab/{i}/{u}" for i, u in enumerate(users)],
                "scheduler": "slurm",
                "cluster": "lab",
                "account": "chem",
                "user": list(users),
                "partition": "cpu",
                "tres": [[{"name": "cpu", "count": 4.0}]] * n,
                "start_at": [NOW - timedelta(hours=5)] * n,
                "end_at": [NOW - timedelta(hours=1)] * n,
                "source": "test",
            }
        ),
        RUNS,
    )


def _land(store: StoreHandle, runs: pl.DataFrame) -> None:
    with store.write() as cur:
        write_batch(
            cur,
            source="test",
            scheduler="slurm",
            runs=runs,
            steps=pl.DataFrame(schema=STEPS),
            quarantine=pl.DataFrame(schema=QUARANTINE),
            lines_read=runs.height,
            started_at=NOW,
        )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreHandle]:
    with store_handle(tmp_path / "s.duckdb", policy=POLICY) as handle:
        yield handle


def test_publish_only_when_something_changed(store: StoreHandle, tmp_path: Path) -> None:
    clock = Clock()
    service = Service(Settings(db=tmp_path / "s.duckdb"), store, clock=clock)
    first = service.publish()
    assert first is not None and first.meta.snapshot_id == 1
    clock.now += timedelta(minutes=5)
    assert service.publish() is None  # no runs: the same factors, nothing new
    assert service.snapshot is first
    _land(store, _runs("alice"))
    second = service.publish()
    assert second is not None and second.meta.snapshot_id == 2
    assert second.meta.data_watermark_batch == 1 and second.meta.run_count == 1
    assert second.etag != first.etag
    assert service.recompute_status.published_snapshot_id == 2


def test_usage_outside_the_policy_is_reported(store: StoreHandle, tmp_path: Path) -> None:
    _land(store, _runs("alice", "mallory"))
    service = Service(Settings(db=tmp_path / "s.duckdb"), store, clock=Clock())
    snapshot = service.publish()
    assert snapshot is not None and snapshot.meta.run_count == 2
    assert service.recompute_status.unknown_associations == ["lab/chem/mallory"]


def test_each_publish_is_delivered(store: StoreHandle, tmp_path: Path) -> None:
    export = tmp_path / "factors.json"
    delivery = Delivery(export_path=export)
    service = Service(
        Settings(db=tmp_path / "s.duckdb", delivery=delivery),
        store,
        clock=Clock(),
        on_published=partial(_deliver, delivery),
    )
    snapshot = service.publish()
    assert snapshot is not None
    written = json.loads(export.read_text())
    assert written["meta"]["snapshot_id"] == snapshot.meta.snapshot_id
    assert written["count"] == snapshot.count
    assert service.delivery_status.error is None
    assert service.delivery_status.summary == f"wrote {export}"


def test_a_failed_delivery_does_not_stop_publishing(store: StoreHandle, tmp_path: Path) -> None:
    delivery = Delivery(export_path=tmp_path / "missing" / "factors.json")
    service = Service(
        Settings(db=tmp_path / "s.duckdb"),
        store,
        clock=Clock(),
        on_published=partial(_deliver, delivery),
    )
    service.recompute_job()
    assert service.snapshot is not None and service.snapshot.meta.snapshot_id == 1
    assert service.delivery_status.error and "factors.json" in service.delivery_status.error
    assert service.recompute_status.error is None


def test_no_policy_means_not_ready(tmp_path: Path) -> None:
    with store_handle(tmp_path / "empty.duckdb") as handle:
        service = Service(Settings(db=tmp_path / "empty.duckdb"), handle, clock=Clock())
        with pytest.raises(NotReady):
            service.current()
        service.recompute_job()  # logs, never raises
        assert service.recompute_status.error and "no policy" in service.recompute_status.error
        assert service.status().status == "starting"


def test_start_up_loads_the_latest_snapshot(store: StoreHandle, tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "s.duckdb")
    published = Service(settings, store, clock=Clock()).publish()
    assert published is not None
    restarted = Service(settings, store, clock=Clock())
    restarted.load()
    assert restarted.current().etag == published.etag
    assert restarted.current().json == published.json
