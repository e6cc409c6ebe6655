"""Decayed usage as slurmctld computes it: in chunks, at the times its decay thread ran.

``models.fairshare.decay`` integrates usage continuously. Slurm does not: its decay thread
wakes every ``PriorityCalcPeriod`` (the *ticks* t_0 < t_1 < ...) and, read from
``priority/multifactor``'s ``_decay_thread``, ``_apply_decay`` and ``_apply_new_usage``:

1. at tick t_k (k >= 1) it multiplies every association's stored usage by q**(t_k - t_(k-1));
   the first tick after a fresh start (no ``priority_last_decay_ran`` state) decays nothing;
2. then, for every job running at t_k, it adds ``b * d * q**d`` with d = t_k - max(t_(k-1), s),
   the part of the job since the last tick, as if all of it were d seconds old (s: the job's
   start, b: its billing x QOS UsageFactor per second);
3. when a job ends, at e, it adds the tail ``b * d * q**d``, d = e - max(last tick, s), at once;
   the next tick then decays that tail by its whole interval like everything else;
4. at the first tick at or after a ``PriorityUsageResetPeriod`` boundary it zeroes all usage
   before step 2, so that tick's slices survive with their pre-boundary seconds.

Between ticks nothing decays: ``sshare`` shows the usage of the last tick plus the tails of
jobs that ended since. Times are whole seconds (``time_t``); a job that ends in the same second
as a tick is ambiguous in accounting data: it counts as ending *before* the tick unless its
``end_at`` carries a sub-second instant after the tick's (``order_ends_after_ticks`` sets one
from the ``ran for 0 seconds`` lines slurmctld logs in that case).

The slices at ticks k = i+1 .. j of a run are summed with prefix sums of
``w_k = D_k * q**D_k * q**(t_L - t_k)`` (D_k = t_k - t_(k-1), t_L the last tick at or before
``as_of``), so a run costs two binary searches whatever its length.

``parse_slurmctld_log`` reads the ticks from a slurmctld log written with
``DebugFlags=Priority`` at ``SlurmctldDebug=verbose`` or more (22.05 prints
``PRIO: Decay factor over 60 seconds goes from ...`` at each tick after the first).
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl

from models.errors import ParseError
from models.fairshare.decay import decay_rate, last_reset_boundary, ordered_sum
from models.fairshare.frames import ASSOC_USAGE, FACTORS
from models.policy import Decay, Policy

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)  # naive times are UTC throughout fairledger
    return moment.astimezone(UTC)


def _instant(moment: datetime) -> float:
    """Return seconds since the epoch, sub-second part kept (for ordering)."""
    return (_utc(moment) - _EPOCH).total_seconds()


class _Ticks:
    """The ticks up to ``as_of`` with the prefix sums of the full slices."""

    def __init__(self, ticks: Iterable[datetime], q: float, as_of: float) -> None:
        instants = sorted({_instant(t) for t in ticks})
        self.instants = [t for t in instants if t <= as_of]
        self.seconds = [math.floor(t) for t in self.instants]  # Slurm's time_t
        self.q = q
        self.last = len(self.seconds) - 1
        self.prefix = [0.0]
        for k in range(1, len(self.seconds)):
            d = self.seconds[k] - self.seconds[k - 1]
            self.prefix.append(self.prefix[-1] + d * q**d * self.age_factor(k))

    def age_factor(self, k: int) -> float:
        """Return the decay applied after tick k up to the last tick (1 if k is the last)."""
        return float(self.q ** (self.seconds[self.last] - self.seconds[k])) if k >= 0 else 1.0

    def first_after(self, instant: float) -> int:
        """Return the index of the first tick strictly after ``instant``."""
        return bisect.bisect_right(self.instants, instant)

    def last_before(self, instant: float) -> int:
        """Return the index of the last tick strictly before ``instant`` (-1 if none)."""
        return bisect.bisect_left(self.instants, instant) - 1


def _piece(rate: float, seconds: float, q: float) -> float:
    """Return what one chunk of ``seconds`` adds: ``rate * d * q**d`` (Slurm's run_decay)."""
    return rate * seconds * q**seconds if seconds > 0 else 0.0


def _run_usage(
    start: float | None,
    end: float | None,
    rate: float,
    ticks: _Ticks,
    as_of: float,
    reset_tick: int,
    reset_at: float | None,
) -> float:
    """Return one run's usage at ``as_of`` under Slurm's tick discretisation.

    ``reset_tick``: index of the tick that zeroed usage (0: none); ``reset_at``: a reset
    boundary before every tick, applied at its instant.
    """
    if start is None or rate == 0.0 or start > as_of:
        return 0.0
    q = ticks.q
    s = math.floor(start)
    ended = end is not None and end <= as_of
    i = ticks.first_after(start)  # the first tick that sees the run running
    j = ticks.last_before(end) if end is not None and ended else ticks.last
    total = 0.0
    first_full = i + 1
    if i <= j and i >= reset_tick:  # the first slice, from the start or the previous tick
        prev = ticks.seconds[i - 1] if i > 0 else s
        total += _piece(rate, ticks.seconds[i] - max(prev, s), q) * ticks.age_factor(i)
    first_full = max(first_full, reset_tick, 1)
    if j >= first_full:  # whole intervals between ticks: prefix sums
        total += rate * (ticks.prefix[j] - ticks.prefix[first_full - 1])
    if ended and end is not None:
        kept = j >= reset_tick if reset_tick > 0 else reset_at is None or end >= reset_at
        if kept:
            since = max(ticks.seconds[j], s) if j >= 0 else s
            tail = _piece(rate, math.floor(end) - since, q)
            total += tail * (ticks.age_factor(max(j, 0)) if ticks.last >= 0 else 1.0)
    return total


def tick_run_usage(
    runs: pl.DataFrame | pl.LazyFrame,
    *,
    decay: Decay,
    ticks: Sequence[datetime],
    as_of: datetime,
) -> pl.DataFrame:
    """Return ``runs`` with ``raw_usage``: each run's usage at ``as_of`` as slurmctld holds it.

    ``runs`` needs ``start_at``, ``end_at`` and ``usage_rate`` (``models.fairshare.usage``).
    ``ticks`` are the times the decay thread ran (any order; those after ``as_of`` are ignored);
    they should cover the runs, since a run's time before the first tick is taken as one chunk.
    ``as_of`` stands for its whole second: a tick or a job end later in that second is seen.
    """
    frame = runs.collect() if isinstance(runs, pl.LazyFrame) else runs
    q = decay_rate(decay)
    t = math.floor(_instant(as_of)) + 0.999999  # as_of covers its second, as time_t does
    grid = _Ticks(ticks, q, t)
    boundary = last_reset_boundary(_utc(as_of), decay.usage_reset)
    reset_tick, reset_at = 0, None
    if boundary is not None:
        b = _instant(boundary)
        after = bisect.bisect_left(grid.instants, b)
        if 0 < after <= grid.last:  # Slurm zeroes usage at the first tick at or after it
            reset_tick = after
        elif after == 0:  # the boundary is before every tick given: taken as applied at once
            reset_at = b
        else:  # no tick since the boundary: Slurm has not reset yet
            pass
    starts = frame.get_column("start_at").to_list()
    ends = frame.get_column("end_at").to_list()
    rates = frame.get_column("usage_rate").fill_null(0.0).to_list()
    usage = []
    for start, end, rate in zip(starts, ends, rates, strict=True):
        s = _instant(start) if start is not None else None
        if s is not None and reset_at is not None:
            s = max(s, reset_at)
        e = _instant(end) if end is not None else None
        usage.append(_run_usage(s, e, float(rate), grid, t, reset_tick, reset_at))
    return frame.with_columns(pl.Series("raw_usage", usage, dtype=pl.Float64))


def tick_decayed_usage(
    runs: pl.DataFrame | pl.LazyFrame,
    *,
    decay: Decay,
    ticks: Sequence[datetime],
    as_of: datetime,
) -> pl.DataFrame:
    """Return ``ASSOC_USAGE`` at ``as_of`` with Slurm's per-tick discretisation.

    The tick-aware counterpart of ``models.fairshare.decay.decayed_usage``: same input columns
    (plus ``cluster``, ``account``, ``user``), one row per association that has runs, the same
    bits whatever the order of ``runs``.
    """
    per_run = tick_run_usage(runs, decay=decay, ticks=ticks, as_of=as_of)
    return (
        per_run.group_by("cluster", "account", "user")
        .agg(ordered_sum("raw_usage"))
        .sort("cluster", "account", "user")
        .select([pl.col(name).cast(dtype) for name, dtype in ASSOC_USAGE.items()])
    )


def tick_factors(
    runs: pl.LazyFrame | pl.DataFrame,
    policy: Policy,
    *,
    ticks: Sequence[datetime],
    as_of: datetime,
) -> pl.DataFrame:
    """Return ``FACTORS`` like ``models.fairshare.factors.compute_factors``, tick-aware."""
    from models.fairshare.factors import classic_factors, fair_tree_factors
    from models.fairshare.usage import usage_rates

    lazy = runs.lazy() if isinstance(runs, pl.DataFrame) else runs
    rated = usage_rates(lazy, policy).collect()
    usage = tick_decayed_usage(rated, decay=policy.decay, ticks=ticks, as_of=as_of)
    assocs = policy.association_frame()
    if policy.fairshare.algorithm == "classic":
        factors = classic_factors(assocs, usage, fairshare=policy.fairshare)
    else:
        factors = fair_tree_factors(assocs, usage, fairshare=policy.fairshare)
    return factors.select(list(FACTORS))


def continuous_bound(
    decay: Decay, *, tick_interval_s: float, since_tick_s: float = 0.0
) -> tuple[float, float]:
    """Return (low, high): where ``continuous / Slurm`` lies for any association's usage.

    ``continuous`` is ``models.fairshare.decay``'s integral at ``as_of``, ``Slurm`` the
    tick-discretised usage with ticks at most ``tick_interval_s`` apart, the last one
    ``since_tick_s`` before ``as_of`` and no job ending after it. Per chunk of d seconds the ratio
    is ``(e**(λd) - 1) / (λd)`` for a slice added at a tick and at most ``e**(λΔ) (e**(λΔ) - 1) /
    (λΔ)`` for a tail (decayed over the whole interval Δ although younger), with λ = -ln q; at least
    1 for both. Every chunk is positive, so the sum lies between the extremes; the continuous model
    then decays ``since_tick_s`` more than Slurm (which decays only at ticks). See
    docs/slurm-integration.md.
    """
    q = decay_rate(decay)
    if q == 1.0:
        return 1.0, 1.0
    lam = -math.log(q)
    x = lam * tick_interval_s
    high = math.exp(x) * math.expm1(x) / x
    extra = math.exp(-lam * since_tick_s)
    return extra, high * extra


# ---------------------------------------------------------------------------- slurmctld log

_LOG_LINE = re.compile(r"^\[(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?)\] (.*)$")
_DECAY = re.compile(r"Decay factor over (\d+(?:\.\d+)?(?:e\+?\d+)?) seconds goes from")
_RAN_FOR = re.compile(r"_apply_new_usage: job (\d+) ran for (\d+(?:\.\d+)?) seconds")


@dataclass(frozen=True)
class SlurmctldDecayLog:
    """What a slurmctld log says about the decay thread.

    ``ticks``: when it ran (whole seconds, UTC). ``tick_first_ends``: (JobIDRaw, second) of job
    ends logged with ``ran for 0 seconds`` in the second of a tick, i.e. after that tick.
    """

    ticks: list[datetime] = field(default_factory=list)
    tick_first_ends: set[tuple[str, datetime]] = field(default_factory=set)


def parse_slurmctld_log(text: str, *, tz: str = "UTC") -> SlurmctldDecayLog:
    """Return the decay ticks (and same-second job ends) in a slurmctld log.

    Each ``Decay factor over D seconds`` line (``DebugFlags=Priority``, verbose) is a tick D
    seconds after the previous one. The ticks are chained by those D, and placed so that none
    is later than the second its line was logged in (a line is logged within milliseconds of
    its tick, so the latest such placement is exact); the tick before the first line (the
    decay thread's first run, which decays nothing) is included. Times in the log are local
    to slurmctld: ``tz`` names its zone. Raises ParseError when there is no such line.
    """
    zone = ZoneInfo(tz)
    deltas: list[int] = []
    logged: list[int] = []
    zero_ends: list[tuple[str, int]] = []
    for line in text.splitlines():
        match = _LOG_LINE.match(line)
        if match is None:
            continue
        stamp, message = match.groups()
        if "Decay factor over" not in message and "ran for" not in message:
            continue
        when = datetime.fromisoformat(stamp).replace(tzinfo=zone)
        second = math.floor(_instant(when))
        if (decay := _DECAY.search(message)) is not None:
            deltas.append(round(float(decay.group(1))))
            logged.append(second)
        elif (ran := _RAN_FOR.search(message)) is not None and float(ran.group(2)) == 0.0:
            zero_ends.append((ran.group(1), second))
    if not deltas:
        raise ParseError(
            "no 'Decay factor over' lines in the slurmctld log: run slurmctld with "
            "DebugFlags=Priority and SlurmctldDebug=verbose (or debug) to log its decay ticks"
        )
    offsets = []
    total = 0
    for d in deltas:
        total += d
        offsets.append(total)
    anchor = min(sec - off for sec, off in zip(logged, offsets, strict=True))
    seconds = [anchor] + [anchor + off for off in offsets]
    ticks = [_EPOCH + timedelta(seconds=s) for s in seconds]
    tick_seconds = set(seconds)
    firsts = {
        (job, _EPOCH + timedelta(seconds=sec)) for job, sec in zero_ends if sec in tick_seconds
    }
    return SlurmctldDecayLog(ticks=ticks, tick_first_ends=firsts)


def order_ends_after_ticks(
    runs: pl.DataFrame, tick_first_ends: set[tuple[str, datetime]]
) -> pl.DataFrame:
    """Return ``runs`` with ``end_at`` moved half a second later for the (JobIDRaw, end second)
    pairs in ``tick_first_ends``: those jobs ended after the tick of their last second.

    JobIDRaw is the ``job_id_raw`` column, or read from ``run_key`` when there is none.
    """
    if not tick_first_ends or runs.height == 0:
        return runs
    if "job_id_raw" not in runs.columns:  # run_key is "<cluster>/<JobIDRaw>/<submit>"
        job = pl.col("run_key").str.split("/").list.get(1, null_on_oob=True)
        return order_ends_after_ticks(
            runs.with_columns(job.alias("job_id_raw")), tick_first_ends
        ).drop("job_id_raw")
    keys = pl.DataFrame(
        {
            "job_id_raw": [job for job, _ in tick_first_ends],
            "_end_s": [_utc(sec).replace(microsecond=0) for _, sec in tick_first_ends],
        },
        schema={"job_id_raw": pl.String(), "_end_s": pl.Datetime("us", "UTC")},
    ).with_columns(pl.lit(True).alias("_after"))
    marked = runs.with_columns(
        pl.col("end_at").dt.truncate("1s").cast(pl.Datetime("us", "UTC")).alias("_end_s")
    ).join(keys, on=["job_id_raw", "_end_s"], how="left")
    shifted = (
        pl.when(pl.col("_after").fill_null(False))
        .then(pl.col("end_at").dt.truncate("1s") + pl.duration(milliseconds=500))
        .otherwise(pl.col("end_at"))
    )
    return marked.with_columns(shifted.alias("end_at")).drop("_end_s", "_after")
