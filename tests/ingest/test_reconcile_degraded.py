"""A failed reconciliation degrades its source in the status with the last error (as a failed
pull does), the watermark stays where the regular pull left it, and a successful one clears it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from api.service import Service
from api.settings import Reconcile, SacctSource, Settings
from ingest.jobs import run_sacct_source
from ingest.reconcile import reconcile_sacct_source
from ingest.sources.sacct import SACCT_FORMAT
from models.store.handle import StoreHandle
from models.store.sources import read_source_state

FAKE_SACCT = Path(__file__).resolve().parents[1] / "fakes" / "fake_sacct.py"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LINE = (
    "7|7|lab|cpu|normal|chem|erin|2026-11-21T10:00:00|2026-11-21T10:00:00|2026-11-21T10:00:00|"
    "2026-11-21T10:10:00|00:10:00|600|01:00:00|0:0|COMPLETED|1|2|1024M|"
    "billing=2,cpu=2,mem=1024M,node=1|n1||job"
)


def test_a_failed_reconciliation_degrades_the_source_and_a_good_one_clears_it(
    tmp_path: Path, store: StoreHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "answer.txt"
    out.write_text("|".join(SACCT_FORMAT) + "\n" + LINE + "\n", encoding="utf-8")
    monkeypatch.setenv("FAKE_SACCT_OUTPUT", str(out))
    monkeypatch.setenv("FAKE_SACCT_LOG", str(tmp_path / "calls.jsonl"))
    source = SacctSource(
        name="lab",
        cluster="lab",
        command=str(FAKE_SACCT),
        min_interval_s=0,
        reconcile=Reconcile(enabled=True, window_days=3),
    )
    service = Service(Settings(sources=[source]), store)
    assert run_sacct_source(source, store, now=lambda: NOW).status == "loaded"
    (before,) = service.status().sources
    assert not before.degraded

    monkeypatch.setenv("FAKE_SACCT_EXIT", "1")
    later = NOW + timedelta(hours=1)
    assert reconcile_sacct_source(source, store, now=lambda: later).status == "failed"
    (shown,) = service.status().sources
    assert shown.degraded and shown.consecutive_failures == 1
    assert shown.last_error is not None
    assert shown.last_error.startswith("reconciliation: ") and "exited with status 1" in (
        shown.last_error
    )
    with store.reading() as cur:
        state = read_source_state(cur, "lab")
    assert state is not None and state.watermark == NOW  # the failure never moves it

    monkeypatch.delenv("FAKE_SACCT_EXIT")
    assert reconcile_sacct_source(source, store, now=lambda: later).status == "ok"
    (cleared,) = service.status().sources
    assert not cleared.degraded and cleared.last_error is None
    assert cleared.consecutive_failures == 0
    with store.reading() as cur:
        state = read_source_state(cur, "lab")
    assert state is not None and state.watermark == NOW
