"""Hypothesis: any interleaving of re-deliveries, duplicates and revisions of the same records
gives the same final store.

Each delivery is a run's content as a source observed it at some time (a scheduled pull's time,
a file's mtime). Batches are arbitrary groups of deliveries observed at one time; the same
deliveries are landed in any order, split into batches in any way, duplicated inside a batch or
re-delivered later from another file and line.

What the store promises, and what is checked:

* the final ``runs`` table (content, content hash, observed_at) and ``run_versions`` (the
  versions, their numbers, which one is current) are the same whatever the order and batching;
* a run's versions are its distinct contents, each observed at the latest time it was seen;
* the current version is the newest: the latest observed, then the furthest in the run's life
  (pending < running < ended), then the greatest content hash; a content observed earlier than
  the stored one goes to history and never replaces it;
* delivering anything once more changes nothing.

Each delivery also carries the run's batch step, whose content follows the run's (steps keep no
history and are compared by their content columns, not a stored hash): the final ``steps``
table is the same whatever the order, and its content is one of the newest.
"""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from models.frames import QUARANTINE, RUNS, STEPS
from models.store import open_store, write_batch
from models.store.runs import BatchSummary, read_run_versions
from tests.strategies import examples

T0 = datetime(2026, 11, 1, tzinfo=UTC)
# Everything the content hash covers (RUNS without the provenance columns).
CONTENT = [c for c in RUNS if c not in ("source", "source_line")]

SETTINGS = settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Content:
    """What a revision of a run says (small domains, so equal contents are common)."""

    state: str
    hours: int  # elapsed, whole hours
    cpus: int
    job_name: str | None


@dataclass(frozen=True)
class Delivery:
    """One line of one batch: a run's content observed at ``T0 + observed`` hours, read from
    some file at some line."""

    run: int
    content: Content
    observed: int
    source: str
    line: int


contents = st.builds(
    Content,
    state=st.sampled_from(["PENDING", "RUNNING", "COMPLETED", "FAILED"]),
    hours=st.integers(min_value=0, max_value=2),
    cpus=st.sampled_from([1, 4]),
    # `\N`, "\x1f" and a null are different contents (the old hash confused them)
    job_name=st.sampled_from([None, "", "sim", "sim|b é", "\\N", "a\x1fb"]),
)

deliveries = st.builds(
    Delivery,
    run=st.integers(min_value=0, max_value=2),
    content=contents,
    observed=st.integers(min_value=0, max_value=3),  # few times: ties are common
    source=st.sampled_from(["pull-a.txt", "pull-b.txt", "backfill.txt"]),
    line=st.integers(1, 500),
)


def run_key(run: int) -> str:
    return f"lab/{100 + run}/{int(T0.timestamp())}"


def observed_at(d: Delivery) -> datetime:
    return T0 + timedelta(hours=d.observed)


def times(c: Content) -> tuple[datetime | None, datetime | None]:
    """Return (start, end) of a run whose record says ``c``."""
    start = None if c.state == "PENDING" else T0 + timedelta(minutes=5)
    end = start + timedelta(hours=c.hours) if start and c.state != "RUNNING" else None
    return start, end


def runs_frame(batch: list[Delivery]) -> pl.DataFrame:
    rows = []
    for d in batch:
        c = d.content
        start, end = times(c)
        rows.append(
            {
                "run_key": run_key(d.run),
                "scheduler": "slurm",
                "cluster": "lab",
                "job_id": str(100 + d.run),
                "job_id_raw": str(100 + d.run),
                "user": "alice",
                "account": "chem",
                "partition": "cpu",
                "qos": "normal",
                "state": c.state,
                "exit_code": "0:0",
                "submit_at": T0,
                "eligible_at": T0,
                "start_at": start,
                "end_at": end,
                "elapsed_s": c.hours * 3600,
                "alloc_nodes": 1,
                "alloc_cpus": c.cpus,
                "tres": [{"name": "cpu", "count": float(c.cpus)}, {"name": "node", "count": 1.0}],
                "billing": float(c.cpus),
                "nodelist": "n01",
                "nodes": ["n01"],
                "job_name": c.job_name,
                "source": d.source,
                "source_line": d.line,
                "observed_at": observed_at(d),
            }
        )
    if not rows:
        return pl.DataFrame(schema=RUNS)
    schema = {name: RUNS.get(name, pl.Datetime("us", "UTC")) for name in rows[0]}
    return pl.DataFrame(rows, schema=schema)


def steps_frame(batch: list[Delivery]) -> pl.DataFrame:
    """The batch step of each delivery's run, saying what the run's content says (a pending
    run's step has null times, TRES and node list: nulls inside the content)."""
    rows = []
    for d in batch:
        c = d.content
        start, end = times(c)
        rows.append(
            {
                "step_key": f"lab/{100 + d.run}.batch/{int(T0.timestamp())}",
                "run_key": run_key(d.run),
                "cluster": "lab",
                "job_id": f"{100 + d.run}.batch",
                "step_id": "batch",
                "state": c.state,
                "exit_code": "0:0",
                "start_at": start,
                "end_at": end,
                "elapsed_s": c.hours * 3600,
                "alloc_nodes": 1,
                "alloc_cpus": c.cpus,
                "tres": None if start is None else [{"name": "cpu", "count": float(c.cpus)}],
                "nodelist": None if start is None else "n01",
                "job_name": c.job_name,
                "source": d.source,
                "source_line": d.line + 1,
                "observed_at": observed_at(d),
            }
        )
    if not rows:
        return pl.DataFrame(schema=STEPS)
    schema = {name: STEPS.get(name, pl.Datetime("us", "UTC")) for name in rows[0]}
    return pl.DataFrame(rows, schema=schema)


def deliver(con: duckdb.DuckDBPyConnection, batch: list[Delivery]) -> BatchSummary:
    """Land ``batch``; observed at its deliveries' times (one time per batch, or per row)."""
    times = {d.observed for d in batch}
    frame, steps = runs_frame(batch), steps_frame(batch)
    one_time = len(times) == 1
    return write_batch(
        con,
        source="sacct:lab",
        scheduler="slurm",
        runs=frame.drop("observed_at") if one_time else frame,
        steps=steps.drop("observed_at") if one_time else steps,
        quarantine=pl.DataFrame(schema=QUARANTINE),
        lines_read=len(batch),
        started_at=T0 + timedelta(days=30),  # landing time: never the ordering
        observed_at=observed_at(batch[0]) if one_time else None,
    )


def stored_runs(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    select = ", ".join(f'"{c}"' for c in [*CONTENT, "row_hash", "observed_at"])
    return con.sql(f"SELECT {select} FROM runs ORDER BY run_key").pl()


def stored_steps(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    select = ", ".join(f'"{c}"' for c in STEPS if c not in ("source", "source_line"))
    return con.sql(f"SELECT {select}, observed_at FROM steps ORDER BY step_key").pl()


def stored_versions(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    select = ", ".join(f'"{c}"' for c in ["version", "is_current", *CONTENT, "row_hash"])
    return con.sql(f"SELECT {select}, observed_at FROM run_versions ORDER BY run_key, version").pl()


def content_of(row: dict[str, object]) -> Content:
    elapsed = row["elapsed_s"]
    cpus = row["alloc_cpus"]
    assert isinstance(elapsed, int) and isinstance(cpus, int)
    name = row["job_name"]
    assert name is None or isinstance(name, str)
    return Content(str(row["state"]), elapsed // 3600, cpus, name)


def progress(c: Content) -> int:
    return {"PENDING": 0, "RUNNING": 1}.get(c.state, 2)


def split(draw: st.DrawFn, stream: list[Delivery]) -> list[list[Delivery]]:
    """Cut ``stream`` into consecutive non-empty batches at arbitrary points."""
    cuts = sorted(
        draw(st.sets(st.integers(min_value=1, max_value=max(1, len(stream) - 1)), max_size=6))
    )
    bounds = [0, *(c for c in cuts if c < len(stream)), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def by_time(draw: st.DrawFn, stream: list[Delivery]) -> list[list[Delivery]]:
    """Batches as sources make them: the deliveries of one observation time, split anyhow."""
    batches: list[list[Delivery]] = []
    for t in sorted({d.observed for d in stream}):
        batches += split(draw, [d for d in stream if d.observed == t])
    return draw(st.permutations(batches))


@st.composite
def two_orders(
    draw: st.DrawFn,
) -> tuple[list[Delivery], list[list[Delivery]], list[list[Delivery]]]:
    """The same deliveries (with duplicates and re-deliveries), landed in two arbitrary orders."""
    stream = draw(st.lists(deliveries, min_size=1, max_size=14))
    # re-deliveries: some deliveries again, from another file and line, at the same time
    again = [
        Delivery(d.run, d.content, d.observed, "again.txt", d.line + 1)
        for d in draw(st.lists(st.sampled_from(stream), max_size=4))
    ]
    stream = stream + again
    first = by_time(draw, draw(st.permutations(stream)))
    second = by_time(draw, draw(st.permutations(stream)))
    return stream, first, second


def check_against_model(con: duckdb.DuckDBPyConnection, stream: list[Delivery]) -> None:
    """Check what can be said without the content hash: the versions are the distinct
    contents, each observed at its latest time; the current one is the newest."""
    latest: dict[str, dict[Content, int]] = {}
    for d in stream:
        seen = latest.setdefault(run_key(d.run), {})
        seen[d.content] = max(seen.get(d.content, d.observed), d.observed)
    runs = stored_runs(con)
    assert runs["run_key"].is_unique().all()
    assert sorted(runs["run_key"]) == sorted(latest)
    versions = stored_versions(con)
    for key, seen in latest.items():
        mine = versions.filter(pl.col("run_key") == key)
        stored = {content_of(r): r["observed_at"] for r in mine.iter_rows(named=True)}
        assert stored == {c: T0 + timedelta(hours=h) for c, h in seen.items()}
        assert mine["version"].to_list() == list(range(1, len(seen) + 1))
        assert mine["is_current"].to_list() == [False] * (len(seen) - 1) + [True]
        (current,) = runs.filter(pl.col("run_key") == key).iter_rows(named=True)
        top = max((h, progress(c)) for c, h in seen.items())
        assert (seen[content_of(current)], progress(content_of(current))) == top
        assert current["row_hash"] == mine["row_hash"][-1]
        assert mine["row_hash"].is_unique().all()
    steps = stored_steps(con)
    assert steps["run_key"].to_list() == sorted(latest)  # one step per run
    for step in steps.iter_rows(named=True):
        seen = latest[step["run_key"]]
        content = content_of(step)
        top = max((h, progress(c)) for c, h in seen.items())
        assert content in seen and (seen[content], progress(content)) == top
        assert step["observed_at"] == T0 + timedelta(hours=seen[content])


def fresh_store(directory: str, name: str) -> duckdb.DuckDBPyConnection:
    return open_store(Path(directory) / name)


@pytest.mark.slow
@SETTINGS
@given(two_orders())
def test_any_interleaving_of_deliveries_gives_the_same_final_store(
    case: tuple[list[Delivery], list[list[Delivery]], list[list[Delivery]]],
) -> None:
    stream, first, second = case
    with tempfile.TemporaryDirectory() as directory:
        stores = [fresh_store(directory, f"{n}.duckdb") for n in ("first", "second", "once")]
        try:
            for batch in first:
                deliver(stores[0], batch)
            for batch in second:
                deliver(stores[1], batch)
            deliver(stores[2], stream)  # everything in one batch, each row its own time
            check_against_model(stores[0], stream)
            for other in stores[1:]:
                assert_frame_equal(stored_runs(stores[0]), stored_runs(other))
                assert_frame_equal(stored_versions(stores[0]), stored_versions(other))
                assert_frame_equal(stored_steps(stores[0]), stored_steps(other))

            # delivering any of it once more changes nothing
            before = (stored_runs(stores[0]), stored_versions(stores[0]), stored_steps(stores[0]))
            # as it was, then from another file (a name that sorts last) at other lines
            later = [
                [Delivery(d.run, d.content, d.observed, "zz-later.txt", d.line + 7) for d in b]
                for b in second
            ]
            for batch in second + later:
                again = deliver(stores[0], batch)
                assert (again.runs_new, again.runs_changed) == (0, 0)
                assert again.runs_unchanged == len({d.run for d in batch})
                assert (again.steps_new, again.steps_changed) == (0, 0)
                assert again.steps_unchanged == len({d.run for d in batch})
            assert_frame_equal(stored_runs(stores[0]), before[0])
            assert_frame_equal(stored_versions(stores[0]), before[1])
            assert_frame_equal(stored_steps(stores[0]), before[2])
        finally:
            for con in stores:
                con.close()


@pytest.mark.slow
def test_a_b_a_is_two_versions_observed_at_their_latest_time(tmp_path: Path) -> None:
    con = open_store(tmp_path / "s.duckdb")
    a = Content("COMPLETED", 2, 4, "sim")
    b = Content("COMPLETED", 1, 4, "sim")  # an admin fixed End at hour 1, then undid it
    for hour, content in enumerate([a, a, b, b, a, a]):
        deliver(con, [Delivery(0, content, hour, f"pull-{hour}.txt", 1)])
    versions = read_run_versions(con, run_key(0))
    assert [content_of(r) for r in versions.iter_rows(named=True)] == [b, a]
    assert versions["observed_at"].to_list() == [T0 + timedelta(hours=3), T0 + timedelta(hours=5)]
    assert versions["is_current"].to_list() == [False, True]
    con.close()


def test_a_step_keeps_its_newest_content_observed_at_its_latest_time(tmp_path: Path) -> None:
    con = open_store(tmp_path / "s.duckdb")
    a = Content("RUNNING", 1, 4, None)
    b = Content("COMPLETED", 1, 4, "sim")

    def step_after(hour: int, content: Content) -> tuple[tuple[int, int, int], Content, datetime]:
        s = deliver(con, [Delivery(0, content, hour, f"pull-{hour}.txt", 1)])
        (row,) = stored_steps(con).iter_rows(named=True)
        return (
            (s.steps_new, s.steps_changed, s.steps_unchanged),
            content_of(row),
            row["observed_at"],
        )

    assert step_after(0, a) == ((1, 0, 0), a, T0)
    assert step_after(2, a) == ((0, 0, 1), a, T0 + timedelta(hours=2))  # seen again later
    assert step_after(1, b) == ((0, 0, 1), a, T0 + timedelta(hours=2))  # older: dropped
    assert step_after(3, b) == ((0, 1, 0), b, T0 + timedelta(hours=3))  # newer: replaces
    assert step_after(3, a) == ((0, 0, 1), b, T0 + timedelta(hours=3))  # same time, not as far
    con.close()
