"""The tick-aware decay model (``models.fairshare.decay_ticks``) without a live Slurm.

Checked three ways: against an event-by-event simulation written from slurmctld's decay thread
(``_decay_thread``, ``_apply_decay``, ``_apply_new_usage``, ``priority_p_job_end``), against a
recorded live capture (``recorded/decay``: every sshare column equal), and for the bound that
separates the continuous model from Slurm's chunks. These run everywhere (no root needed).
"""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from helpers import assoc_mgr_usage, usage_close
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.sources.sacct import parse_sacct
from ingest.sources.sacctmgr_assoc import parse_sacctmgr_associations
from ingest.sources.sacctmgr_qos import parse_sacctmgr_qos
from ingest.sources.slurm_conf import read_slurm_conf
from ingest.sources.slurm_policy import policy_from_slurm
from models.errors import ParseError
from models.fairshare.decay import decay_rate, run_usage
from models.fairshare.decay_ticks import (
    continuous_bound,
    order_ends_after_ticks,
    parse_slurmctld_log,
    tick_decayed_usage,
    tick_factors,
    tick_run_usage,
)
from models.policy import Decay
from reports.sshare import build_sshare
from tests.strategies import examples

RECORDED = Path(__file__).resolve().parent / "recorded" / "decay"
T0 = datetime(2026, 11, 29, 0, 0, tzinfo=UTC)
DECAY = Decay(half_life_s=300, model="slurm", calc_period_s=60)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@dataclass
class Run:
    start: float | None
    end: float | None
    rate: float


def simulate(runs: list[Run], ticks: list[float], q: float, as_of: float) -> list[float]:
    """Slurm's decay thread, event by event: per run, the usage it holds at ``as_of``."""
    usage = [0.0] * len(runs)
    events: list[tuple[float, int, int]] = [(t, 1, k) for k, t in enumerate(ticks) if t <= as_of]
    events += [
        (r.end, 0, i)
        for i, r in enumerate(runs)
        if r.start is not None and r.end is not None and r.end <= as_of
    ]  # a job ending at a tick's instant ends first (kind 0 sorts before 1)
    last_ran: int | None = None
    ended: set[int] = set()
    for instant, kind, index in sorted(events):
        if kind == 1:
            now = math.floor(instant)
            if last_ran is not None:
                usage = [u * q ** (now - last_ran) for u in usage]
            for i, r in enumerate(runs):
                if i in ended or r.start is None or r.start >= instant:
                    continue
                if r.end is not None and r.end <= instant:
                    continue
                d = now - max(last_ran if last_ran is not None else 0, math.floor(r.start))
                usage[i] += r.rate * d * q**d if d > 0 else 0.0
            last_ran = now
        else:
            r = runs[index]
            assert r.start is not None and r.end is not None
            ended.add(index)
            since = max(last_ran if last_ran is not None else 0, math.floor(r.start))
            d = math.floor(r.end) - since
            usage[index] += r.rate * d * q**d if d > 0 else 0.0
    return usage


def frame(runs: list[Run]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "cluster": ["c"] * len(runs),
            "account": ["a"] * len(runs),
            "user": [f"u{i}" for i in range(len(runs))],
            "start_at": [at(r.start) if r.start is not None else None for r in runs],
            "end_at": [at(r.end) if r.end is not None else None for r in runs],
            "usage_rate": [r.rate for r in runs],
        },
        schema={
            "cluster": pl.String(),
            "account": pl.String(),
            "user": pl.String(),
            "start_at": pl.Datetime("us", "UTC"),
            "end_at": pl.Datetime("us", "UTC"),
            "usage_rate": pl.Float64(),
        },
    )


runs_strategy = st.lists(
    st.tuples(
        st.one_of(st.none(), st.integers(0, 500)),
        st.one_of(st.none(), st.integers(0, 400)),
        st.floats(0.0, 8.0),
    ).map(lambda t: Run(t[0], None if t[0] is None or t[1] is None else t[0] + t[1], t[2])),
    min_size=1,
    max_size=12,
)


@settings(max_examples=examples(150), deadline=None)
@given(
    runs=runs_strategy,
    first=st.integers(0, 40),
    gaps=st.lists(st.integers(50, 70), min_size=0, max_size=10),
    phase=st.floats(0.0, 0.99),
    as_of=st.integers(0, 900),
)
def test_the_model_equals_an_event_by_event_simulation(
    runs: list[Run], first: int, gaps: list[int], phase: float, as_of: int
) -> None:
    seconds = [first]
    for gap in gaps:
        seconds.append(seconds[-1] + gap)
    ticks = [s + phase for s in seconds]  # the decay thread wakes at a fixed sub-second phase
    q = decay_rate(DECAY)
    expected = simulate(runs, ticks, q, as_of + 0.999)
    got = tick_run_usage(frame(runs), decay=DECAY, ticks=[at(t) for t in ticks], as_of=at(as_of))
    for r, want, have in zip(runs, expected, got.get_column("raw_usage"), strict=True):
        assert have == pytest.approx(want, rel=1e-9, abs=1e-9), r


def test_without_decay_every_second_counts_once() -> None:
    runs = [Run(5, 130, 2.0), Run(70, None, 1.0), Run(200, 201, 3.0)]
    ticks = [at(t) for t in (0, 60, 120, 180)]
    got = tick_run_usage(frame(runs), decay=Decay(half_life_s=0), ticks=ticks, as_of=at(190))
    # the running job is charged up to the last tick only, as slurmctld does
    assert got.get_column("raw_usage").to_list() == [250.0, 110.0, 0.0]


def test_a_slice_is_decayed_whole_and_a_tail_over_the_whole_next_interval() -> None:
    q = decay_rate(DECAY)
    ticks = [at(0), at(60), at(120)]
    sliced = tick_run_usage(frame([Run(30, 90, 1.0)]), decay=DECAY, ticks=ticks, as_of=at(125))
    slice_, tail = 30 * q**30 * q**60, 30 * q**30 * q**60
    assert sliced.get_column("raw_usage")[0] == pytest.approx(slice_ + tail, rel=1e-12)


def test_a_job_ending_in_a_ticks_second_after_it() -> None:
    q = decay_rate(DECAY)
    ticks = [at(0), at(60.4), at(120.4)]
    runs = frame([Run(30, 60, 1.0)])
    first = tick_run_usage(runs, decay=DECAY, ticks=ticks, as_of=at(121))
    assert first.get_column("raw_usage")[0] == pytest.approx(30 * q**30 * q**120, rel=1e-12)
    moved = order_ends_after_ticks(runs.with_columns(job_id_raw=pl.lit("7")), {("7", at(60))})
    assert moved.get_column("end_at")[0] == at(60.5)
    after = tick_run_usage(moved, decay=DECAY, ticks=ticks, as_of=at(121))
    # charged at the tick (not decayed by it), with a zero tail
    assert after.get_column("raw_usage")[0] == pytest.approx(30 * q**30 * q**60, rel=1e-12)


def test_a_usage_reset_zeroes_what_came_before_its_first_tick() -> None:
    daily = Decay(half_life_s=0, usage_reset="DAILY")
    midnight = datetime(2026, 11, 30, tzinfo=UTC)
    ticks = [midnight + timedelta(seconds=s) for s in (-120, -60, 0.3, 60.3)]
    runs = frame([Run(0, 0, 1.0)]).with_columns(
        start_at=pl.lit(midnight - timedelta(seconds=90)).cast(pl.Datetime("us", "UTC")),
        end_at=pl.lit(midnight + timedelta(seconds=30)).cast(pl.Datetime("us", "UTC")),
    )
    got = tick_run_usage(runs, decay=daily, ticks=ticks, as_of=midnight + timedelta(seconds=61))
    # the slice 23:59:00..00:00:00 is added after the reset at 00:00:00 (with its 60 seconds),
    # then the 30-second tail; the 30 seconds before 23:59:00 were zeroed
    assert got.get_column("raw_usage").to_list() == [90.0]


@settings(max_examples=examples(100), deadline=None)
@given(runs=runs_strategy, since=st.integers(0, 59))
def test_the_continuous_model_stays_within_the_derived_bound(runs: list[Run], since: int) -> None:
    ticks = [at(60 * k) for k in range(12)]
    as_of = at(660 + since)
    ended = [
        Run(r.start, min(r.end, 650) if r.end is not None else 650, r.rate)
        for r in runs
        if r.start is not None and r.start < 600
    ]
    if not ended:
        return
    slurm = tick_run_usage(frame(ended), decay=DECAY, ticks=ticks, as_of=as_of)
    continuous = run_usage(frame(ended).lazy(), decay=DECAY, as_of=as_of).collect()
    low, high = continuous_bound(DECAY, tick_interval_s=60, since_tick_s=since)
    total_s = slurm.get_column("raw_usage").sum()
    total_c = continuous.get_column("raw_usage").sum()
    if total_s > 1e-9:
        assert low - 1e-9 <= total_c / total_s <= high + 1e-9


def test_the_bound_for_the_lab_and_for_a_production_setting() -> None:
    low, high = continuous_bound(DECAY, tick_interval_s=60)
    assert (low, round(high, 4)) == (1.0, 1.2324)
    week = Decay(half_life_s=7 * 86400, model="slurm", calc_period_s=300)
    assert continuous_bound(week, tick_interval_s=300)[1] - 1 < 1e-3  # under 0.1 %
    assert continuous_bound(Decay(half_life_s=0), tick_interval_s=60) == (1.0, 1.0)


# ---------------------------------------------------------------------------- the log


def test_ticks_are_read_from_the_slurmctld_log() -> None:
    log = parse_slurmctld_log((RECORDED / "slurmctld_priority.log").read_text())
    assert [t.strftime("%H:%M:%S") for t in log.ticks] == ["00:21:56", "00:22:56", "00:23:56"]
    last = datetime.fromisoformat((RECORDED / "last_tick.txt").read_text().strip())
    assert log.ticks[-1] == last and log.tick_first_ends == set()


def test_a_line_logged_in_the_next_second_does_not_move_the_tick() -> None:
    text = "\n".join(
        [
            "[2026-11-29T00:01:00.998] x: _decay_thread: PRIO: Decay factor over 60 seconds "
            "goes from 0.99 -> 0.8",
            "[2026-11-29T00:02:01.002] x: _decay_thread: PRIO: Decay factor over 60 seconds "
            "goes from 0.99 -> 0.8",
            "[2026-11-29T00:02:01.100] x: _apply_new_usage: job 12 ran for 0 seconds with TRES",
            "[2026-11-29T00:02:31.100] x: _apply_new_usage: job 13 ran for 0 seconds with TRES",
        ]
    )
    log = parse_slurmctld_log(text)
    assert [t.strftime("%H:%M:%S") for t in log.ticks] == ["00:00:00", "00:01:00", "00:02:00"]
    assert log.tick_first_ends == set()  # 00:02:01 is not a tick's second
    log = parse_slurmctld_log(text.replace("00:02:01.100", "00:02:00.100"))
    assert log.tick_first_ends == {("12", datetime(2026, 11, 29, 0, 2, tzinfo=UTC))}


def test_a_log_without_decay_lines_is_refused() -> None:
    with pytest.raises(ParseError, match="DebugFlags=Priority"):
        parse_slurmctld_log("[2026-11-29T00:01:00.998] slurmctld started\n")


# ---------------------------------------------------------------------------- the capture


def test_the_recorded_capture_is_reproduced_column_for_column() -> None:
    conf = read_slurm_conf(RECORDED / "slurm.conf")
    assocs = parse_sacctmgr_associations((RECORDED / "assoc_lft.txt").read_text())
    qos = parse_sacctmgr_qos((RECORDED / "qos.txt").read_text())
    policy = policy_from_slurm(conf, assocs, qos)
    runs = parse_sacct((RECORDED / "sacct.txt").read_text(), source="sacct.txt").runs
    log = parse_slurmctld_log((RECORDED / "slurmctld_priority.log").read_text())
    as_of = datetime.fromisoformat((RECORDED / "as_of.txt").read_text().strip())
    factors = tick_factors(
        order_ends_after_ticks(runs, log.tick_first_ends), policy, ticks=log.ticks, as_of=as_of
    )
    expected = [
        "|".join(line.split("|")[:9]) for line in (RECORDED / "sshare.txt").read_text().splitlines()
    ]
    assert build_sshare(factors, algorithm="fair_tree") == expected
    slurm = assoc_mgr_usage((RECORDED / "assoc_mgr.txt").read_text())
    for account, user, ours in factors.select("account", "user", "raw_usage").iter_rows():
        assert usage_close(ours, slurm[(account, user)], 1e-3), (account, user, ours)


def test_usage_per_association_sums_its_runs() -> None:
    runs = frame([Run(10, 70, 1.0), Run(20, 50, 2.0)]).with_columns(user=pl.lit("u"))
    usage = tick_decayed_usage(runs, decay=Decay(half_life_s=0), ticks=[at(0)], as_of=at(80))
    assert usage.rows() == [("c", "a", "u", 120.0)]


def test_the_drift_command_with_the_ticks_of_the_recorded_capture(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "api", "--db", str(tmp_path / "d.duckdb"), *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
            timeout=120,
        )

    imported = cli(
        "policy", "import-slurm", "--slurm-conf", str(RECORDED / "slurm.conf"),
        "--assoc", str(RECORDED / "assoc_lft.txt"), "--qos", str(RECORDED / "qos.txt"),
        "--out", str(tmp_path / "policy.toml"),
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert cli("ingest", "file", str(RECORDED / "sacct.txt")).returncode == 0
    as_of = (RECORDED / "as_of.txt").read_text().strip()
    sshare = str(RECORDED / "sshare.txt")
    continuous = cli("drift", "--sshare", sshare, "--as-of", as_of)
    assert continuous.returncode == 4  # the continuous model is a few per cent above Slurm
    log = str(RECORDED / "slurmctld_priority.log")
    ticked = cli("drift", "--sshare", sshare, "--as-of", as_of, "--slurmctld-log", log)
    assert ticked.returncode == 0, ticked.stdout + ticked.stderr
    ticks = tmp_path / "ticks.txt"
    ticks.write_text("# the decay thread's runs\n2026-11-29T00:21:56Z\n1795911776\n1795911836\n")
    listed = cli(
        "drift", "--sshare", sshare, "--as-of", as_of, "--ticks", str(ticks),
        "--usage-tolerance", "0",
    )  # fmt: skip
    assert listed.returncode == 0, listed.stdout + listed.stderr
    both = cli("drift", "--sshare", sshare, "--slurmctld-log", log, "--ticks", str(ticks))
    assert both.returncode == 2


def test_the_job_id_is_read_from_the_run_key_when_there_is_no_column() -> None:
    runs = frame([Run(30, 60, 1.0)]).with_columns(run_key=pl.lit("c/7/1795910000"))
    moved = order_ends_after_ticks(runs, {("7", at(60))})
    assert moved.get_column("end_at")[0] == at(60.5) and "job_id_raw" not in moved.columns
