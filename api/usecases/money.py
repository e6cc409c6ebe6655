"""Money at the edge: read the store, charge the runs, build statements, close periods.

The CLI and the HTTP routes both go through here; the computation itself is pure
(``models.money.charges``, ``models.money.ledger``, ``models.money.statement_builder``).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import polars as pl

from models.errors import InvalidRequest, PeriodClosed, UnknownGrant
from models.money.charges import Charges, charge_runs, recharge
from models.money.frames import CHARGE_RUN_COLUMNS
from models.money.grants import Grant, period_bounds, period_of
from models.money.ledger import ledger_view, next_period, to_freeze
from models.money.statement import Statement
from models.money.statement_builder import build_statement
from models.policy import Policy
from models.store import (
    Connection,
    read_runs,
    read_snapshot,
    require_active_policy,
)
from models.store.ledger import (
    ClosedPeriod,
    last_closed_period,
    read_closed_periods,
    read_entries,
    read_frozen_lines,
    write_entry,
    write_period_close,
)
from models.store.policies import read_policy_version
from models.store.run_changes import jobs_changed_since, last_change_batch, read_runs_of_jobs

RenderAll = Callable[[Statement, Sequence[str]], dict[str, bytes]]
HASHED_FORMATS = ("csv", "json", "xlsx", "pdf")


@dataclass(frozen=True)
class LedgerState:
    """Everything a statement needs, read in one transaction at ``as_of``."""

    policy_version: int
    policy: Policy
    view: pl.DataFrame  # models.money.ledger.LEDGER
    unbilled: pl.DataFrame  # models.money.charges.UNBILLED
    closed: dict[str, ClosedPeriod]
    closed_policies: dict[int, Policy]  # the policy versions closed periods were closed under
    last_closed: str | None
    as_of: datetime

    def grant(self, grant_id: str, policy: Policy | None = None) -> Grant:
        """Return the grant or raise UnknownGrant naming the ones there are."""
        for grant in (policy or self.policy).grants:
            if grant.id == grant_id:
                return grant
        known = ", ".join(g.id for g in self.policy.grants) or "none"
        raise UnknownGrant(f"unknown grant {grant_id!r} (grants in the policy: {known})")

    @property
    def next_to_close(self) -> str:
        """The period the next close must be: after the last closed one, or the earliest
        period with any line (the current month when there is none)."""
        if self.last_closed is not None:
            return next_period(self.last_closed)
        earliest = self.view["posted_period"].min()
        return str(earliest) if earliest is not None else period_of(self.as_of)

    @property
    def first_open(self) -> str:
        """The period new adjustments and entries are posted to."""
        if self.last_closed is None:
            return period_of(self.as_of)
        return next_period(self.last_closed)


class ChargeCache:
    """The charges of the stored runs under one policy version (charging every run is the
    costly part of a statement: ~4 s at 1M runs, ~40 s at 10M). After batches land only the
    jobs they touched are charged again, their runs read back (``models.money.charges.recharge``); a
    new policy version charges every run again. The ledger view on top of the charges is
    rebuilt per request. ``last_charged`` is how many runs the last update charged."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: int | None = None
        self._batch = 0
        self._charges: Charges | None = None
        self.last_charged: int | None = None

    def get(self, con: Connection, *, version: int, policy: Policy) -> Charges:
        """Return the charges of the runs stored now under ``policy`` (version ``version``),
        read in the caller's transaction."""
        clusters = [c.name for c in policy.clusters]
        with self._lock:
            batch = last_change_batch(con) or 0
            if self._charges is None or self._version != version:
                runs = read_runs(con, columns=CHARGE_RUN_COLUMNS, clusters=clusters)
                self._charges = charge_runs(runs, policy)
            elif batch != self._batch:
                jobs = jobs_changed_since(con, self._batch, clusters=clusters)
                runs = read_runs_of_jobs(con, jobs, columns=CHARGE_RUN_COLUMNS)
                self._charges = recharge(self._charges, runs, policy)
            else:
                return self._charges
            self._version, self._batch, self.last_charged = version, batch, runs.height
            return self._charges


def load_ledger(
    con: Connection, *, as_of: datetime, cache: ChargeCache | None = None
) -> LedgerState:
    """Return the ledger as of ``as_of``: the active policy's charges of the stored runs, the
    frozen lines of closed periods and people's entries (one read transaction). With
    ``cache`` only the jobs batches touched since the cache's last update are charged again
    (every run under a new policy version). The view's rows come in no meaningful order."""
    with read_snapshot(con):
        active = require_active_policy(con)
        if cache is None:
            clusters = [c.name for c in active.policy.clusters]
            runs = read_runs(con, columns=CHARGE_RUN_COLUMNS, clusters=clusters)
            charges = charge_runs(runs, active.policy)
        else:
            charges = cache.get(con, version=active.version_id, policy=active.policy)
        frozen = read_frozen_lines(con)
        entries = read_entries(con)
        closed = {c.period: c for c in read_closed_periods(con)}
        versions = {c.policy_version for c in closed.values()}
        closed_policies = {v: read_policy_version(con, v).policy for v in versions}
        last_closed = last_closed_period(con)
    view = ledger_view(charges.lines, frozen, entries, last_closed=last_closed, now=as_of)
    return LedgerState(
        policy_version=active.version_id,
        policy=active.policy,
        view=view,
        unbilled=charges.unbilled,
        closed=closed,
        closed_policies=closed_policies,
        last_closed=last_closed,
        as_of=as_of.astimezone(UTC),
    )


def statement(state: LedgerState, grant_id: str, period: str) -> Statement:
    """Return ``grant_id``'s statement for ``period`` (frozen if the period is closed)."""
    check_period(period)
    closed = state.closed.get(period)
    if closed is None and state.last_closed is not None and period <= state.last_closed:
        # a period before the first close: closed, with nothing in it (see check_closable)
        closed = state.closed[min(state.closed)]
    if closed is None:
        policy, version = state.policy, state.policy_version
    else:  # a closed statement is made with the policy it was closed under, nothing newer
        policy, version = state.closed_policies[closed.policy_version], closed.policy_version
    return build_statement(
        state.view,
        state.grant(grant_id, policy),
        period,
        rate_cards=list(policy.rate_cards),
        decimals=policy.charging.decimals,
        policy_version=version,
        closed_at=None if closed is None else closed.closed_at,
        as_of=state.as_of,
    )


def check_period(period: str) -> tuple[datetime, datetime]:
    """Return the period's [start, end); InvalidRequest naming the period if it is not one."""
    try:
        return period_bounds(period)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc


def grants_in_period(policy: Policy, period: str) -> list[Grant]:
    """Return the grants in force for at least a day of ``period``."""
    start, end = period_bounds(period)
    return [g for g in policy.grants if g.start < end.date() and g.end >= start.date()]


def check_closable(state: LedgerState, period: str) -> None:
    """Raise PeriodClosed unless ``period`` is the next one to close and has ended."""
    _, end = check_period(period)
    if period in state.closed or (state.last_closed and period <= state.last_closed):
        raise PeriodClosed(f"period {period} is already closed")
    if end > state.as_of:
        raise PeriodClosed(f"period {period} has not ended yet (it ends {end:%Y-%m-%d})")
    if state.last_closed is not None and period != next_period(state.last_closed):
        raise PeriodClosed(
            f"periods close in order: close {next_period(state.last_closed)} before {period}"
        )
    if state.last_closed is None:
        earlier = state.view.filter(pl.col("posted_period") < period)
        if earlier.height:
            first = str(earlier["posted_period"].min())
            raise PeriodClosed(f"periods close in order: {first} has charges; close it first")


def close_period(
    con: Connection,
    period: str,
    *,
    actor: str,
    now: datetime,
    render_all: RenderAll,
    made_with: dict[str, str] | None = None,
) -> tuple[ClosedPeriod, dict[tuple[str, str], tuple[str, int]]]:
    """Close ``period``: freeze its lines, record each grant's statement hashes per format,
    with ``made_with`` ({format: the versions that rendered it}) beside them.

    Returns the closed period and {(grant, format): (sha256, size)}.
    """
    state = load_ledger(con, as_of=now)
    check_closable(state, period)
    lines = to_freeze(state.view, period)
    hashes: dict[tuple[str, str], tuple[str, int]] = {}
    for grant in grants_in_period(state.policy, period):
        frozen = build_statement(
            state.view,
            grant,
            period,
            rate_cards=list(state.policy.rate_cards),
            decimals=state.policy.charging.decimals,
            policy_version=state.policy_version,
            closed_at=now.astimezone(UTC),
            as_of=now,
        )
        for fmt, data in render_all(frozen, HASHED_FORMATS).items():
            hashes[(grant.id, fmt)] = (hashlib.sha256(data).hexdigest(), len(data))
    closed = write_period_close(
        con,
        period=period,
        lines=lines,
        closed_by=actor,
        closed_at=now.astimezone(UTC),
        policy_version=state.policy_version,
        statement_hashes=hashes,
        made_with=made_with,
    )
    return closed, hashes


def post_entry(
    con: Connection,
    *,
    grant_id: str,
    amount: Decimal | None,
    reason: str,
    author: str,
    now: datetime,
    run_key: str | None = None,
) -> tuple[int, str, Decimal]:
    """Post a manual adjustment (``amount`` given) or a refund of a run (``run_key`` given,
    ``amount`` None: the run's whole charge to the grant so far, credited) to the first open
    period. Returns (entry id, period, amount posted)."""
    if not reason.strip():
        raise InvalidRequest("an adjustment needs a reason")
    state = load_ledger(con, as_of=now)
    state.grant(grant_id)
    kind = "manual"
    refers: str | None = None
    if run_key is not None:
        charged = state.view.filter(
            (pl.col("grant_id") == grant_id) & (pl.col("run_key") == run_key)
        )
        if charged.height == 0:
            raise InvalidRequest(f"run {run_key} has no charge to grant {grant_id} to refund")
        total = Decimal(charged.select(pl.col("amount").sum()).item())
        refers = charged["refers_period"].drop_nulls().min()  # type: ignore[assignment]
        if amount is None:
            amount = -total
        kind = "refund"
    if amount is None:
        raise InvalidRequest("a manual adjustment needs an amount")
    quantum = Decimal(1).scaleb(-state.policy.charging.decimals)
    if amount != amount.quantize(quantum):
        raise InvalidRequest(f"amount {amount}: at most {state.policy.charging.decimals} decimals")
    entry_id = write_entry(
        con,
        posted_period=state.first_open,
        kind=kind,
        grant_id=grant_id,
        amount=amount,
        reason=reason.strip(),
        author=author,
        posted_at=now,
        run_key=run_key,
        refers_period=refers,
    )
    return entry_id, state.first_open, amount
