"""The embedded demo site: a policy and 90 days of sacct records, moved to end now.

The records are stored with fixed dates; loading shifts every time by whole days so that the
newest record ends today, which keeps decayed usage (and so the factors) interesting. They go
through the same path as real data (``parse_sacct`` then ``write_batch``). Every load also
creates an admin and a scheduler token (stored hashed like any other) and prints them, since a
token cannot be shown again later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources

import polars as pl

from ingest.sources.sacct import SacctBatch, parse_sacct
from models.policy import load_policy_text
from models.store import Connection, has_batch_from, write_batch, write_policy

DEMO_SOURCE = "demo/sacct.txt"
DEMO_URL = "http://127.0.0.1:8000/"


@dataclass(frozen=True)
class DemoLoad:
    """What loading the demo did, and the tokens made for it (role -> token)."""

    loaded: bool  # False when the demo was already in the store
    policy_version: int | None = None
    runs_new: int = 0
    runs_unchanged: int = 0
    quarantined: int = 0
    tokens: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        if self.loaded:
            head = (
                f"demo site loaded: policy version {self.policy_version}, {self.runs_new} new "
                f"runs ({self.runs_unchanged} already there), {self.quarantined} quarantined"
            )
        else:
            head = "demo site already loaded; made new tokens"
        admin = self.tokens.get("admin", "")
        lines = [
            head,
            f"serve it (`fairledger serve`; `make run` does), open {DEMO_URL} and paste the "
            f"admin token: {admin}",
            *(f"  {role} token: {token}" for role, token in self.tokens.items()),
            f"  e.g. curl -H 'Authorization: Bearer {self.tokens.get('scheduler', '')}' "
            f"{DEMO_URL}v1/factors",
        ]
        return "\n".join(lines)


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


def _demo_batch() -> SacctBatch:
    files = resources.files("api.demo")
    return parse_sacct(files.joinpath("sacct.txt").read_text("utf-8"), source=DEMO_SOURCE)


def _shift(batch: SacctBatch, now: datetime) -> timedelta:
    """Return the whole days that move the newest record to ``now``."""
    newest = batch.runs.select(pl.max_horizontal("end_at", "start_at", "submit_at").max()).item()
    return timedelta(days=max(0, (now - newest).days))


def demo_policy(now: datetime | None = None) -> str:
    """Return the policy text ``load_demo`` records when it loads at ``now``."""
    now = now or datetime.now(UTC)
    batch = _demo_batch()
    oldest = batch.runs.select(pl.col("submit_at").min()).item()
    return demo_policy_text(oldest + _shift(batch, now), now)


def demo_policy_text(first_record: datetime, now: datetime) -> str:
    """Return the demo policy: ``policy.toml``, ``money.toml`` and ``compliance.toml`` with the
    grants running from the month of the first record for two years, a newer rate card from
    this month on, and one certification that lapsed at the end of last month."""
    files = resources.files("api.demo")
    start = first_record.date().replace(day=1)
    end = start.replace(year=start.year + 2) - timedelta(days=1)
    new_card = now.date().replace(day=1)
    cert_end = new_card - timedelta(days=1)
    text = "\n".join(
        files.joinpath(name).read_text("utf-8")
        for name in ("policy.toml", "money.toml", "compliance.toml")
    )
    for name, value in (
        ("{start}", start),
        ("{end}", end),
        ("{new_card}", new_card),
        ("{cert_end}", cert_end),
    ):
        text = text.replace(name, value.isoformat())
    return text


def _demo_tokens(con: Connection) -> dict[str, str]:
    from api.auth import Role, create_token

    return {
        role.value: create_token(con, role, note="demo")[1] for role in (Role.admin, Role.scheduler)
    }


def load_demo(con: Connection, *, now: datetime | None = None) -> DemoLoad:
    """Load the demo policy and records into ``con`` (once) and make demo tokens."""
    now = now or datetime.now(UTC)
    if has_batch_from(con, DEMO_SOURCE):
        return DemoLoad(loaded=False, tokens=_demo_tokens(con))
    batch = _demo_batch()
    delta = _shift(batch, now)
    oldest = batch.runs.select(pl.col("submit_at").min()).item()
    policy = load_policy_text(demo_policy_text(oldest + delta, now), origin="demo")
    version, _ = write_policy(con, policy, origin="demo/policy.toml + money.toml + compliance.toml")
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
    return DemoLoad(
        loaded=True,
        policy_version=version,
        runs_new=summary.runs_new,
        runs_unchanged=summary.runs_unchanged,
        quarantined=summary.quarantined,
        tokens=_demo_tokens(con),
    )
