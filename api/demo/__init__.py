"""The embedded demo site: a policy and a month of sacct records, moved to end now.

The records are stored with fixed dates; loading shifts every time by whole days so that the
newest record ends today, which keeps decayed usage (and so the factors) interesting.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources

import polars as pl

from ingest.sources.sacct import parse_sacct
from models.policy import load_policy_text
from models.store import Connection, has_batch_from, write_batch, write_policy

DEMO_SOURCE = "demo/sacct.txt"


def _shifted(frame: pl.DataFrame, delta: timedelta) -> pl.DataFrame:
    """Return ``frame`` with every time moved by ``delta`` and its keys made anew from them."""
    times = [name for name in frame.columns if name.endswith("_at")]
    seconds = int(delta.total_seconds())

    def rekey(column: str) -> pl.Expr:
        # keys end in "/<submit epoch seconds>"
        parts = pl.col(column).str.splitn("/", 3).struct
        epoch = parts.field("field_2").cast(pl.Int64) + seconds
        return pl.concat_str(
            [parts.field("field_0"), parts.field("field_1"), epoch.cast(pl.String)], separator="/"
        ).alias(column)

    keys = [name for name in ("run_key", "step_key") if name in frame.columns]
    return frame.with_columns(pl.col(times) + delta, *[rekey(k) for k in keys])


def load_demo(con: Connection, *, now: datetime | None = None) -> str:
    """Load the demo policy and records into ``con``; return a summary line."""
    now = now or datetime.now(UTC)
    if has_batch_from(con, DEMO_SOURCE):
        return "demo site already loaded"
    files = resources.files("api.demo")
    policy = load_policy_text(files.joinpath("policy.toml").read_text("utf-8"), origin="demo")
    version, _ = write_policy(con, policy, origin="demo/policy.toml")
    batch = parse_sacct(files.joinpath("sacct.txt").read_text("utf-8"), source=DEMO_SOURCE)
    newest = batch.runs.select(pl.max_horizontal("end_at", "start_at", "submit_at").max()).item()
    delta = timedelta(days=max(0, (now - newest).days))
    summary = write_batch(
        con,
        source=DEMO_SOURCE,
        scheduler="slurm",
        runs=_shifted(batch.runs, delta),
        steps=_shifted(batch.steps, delta),
        quarantine=batch.quarantine,
        lines_read=batch.lines_read,
        started_at=now,
    )
    return (
        f"demo site loaded: policy version {version}, {summary.runs_new} new runs "
        f"({summary.runs_unchanged} already there), {summary.quarantined} quarantined"
    )
