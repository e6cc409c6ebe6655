"""Hypothesis: re-deliveries, duplicates and revisions of the same runs give the same final store.

Each run has revisions v1..vk (its content over time, as sacct shows it on successive pulls; two
revisions may have the same content, as when an admin fix is undone: A, B, A). Deliveries are
arbitrary interleavings of the runs that keep each run's revisions in order, with re-deliveries
(the same revision again, from another file and line), revisions skipped (a pull that missed a
state), duplicates inside one batch (the later line wins) and arbitrary batch splits.

What the store promises, and what is checked:

* in order, the final ``runs`` table is the one delivering each run's last revision once gives
  (content and content hash), with one row per run_key, whatever the interleaving;
* ``run_versions`` holds every distinct *consecutive* content a batch stored: a re-delivery of
  the current content adds no version, A, B, A is three versions, and a revision superseded
  inside the same batch never becomes one;
* the batch summaries count new / changed / unchanged runs accordingly.

Ordering is the source's responsibility: the store does not compare revisions, the last
delivery wins. sacct returns a run's current state, so an older revision only arrives late if a
source replays old output; it then becomes the current version (and the newer one is kept in
``run_history``). ``test_any_delivery_order_last_delivery_wins`` checks exactly that promise and
nothing more.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from models.frames import QUARANTINE, RUNS, STEPS, conform
from models.store import open_store, write_batch
from models.store.runs import BatchSummary, read_run_versions

T0 = datetime(2026, 11, 1, tzinfo=UTC)
# Everything the content hash covers (RUNS without the provenance columns).
CONTENT = [c for c in RUNS if c not in ("source", "source_line")]

SETTINGS = settings(
    max_examples=30,
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
    """One line of one batch: a run's content, read from some file at some line."""

    run: int
    content: Content
    source: str
    line: int


contents = st.builds(
    Content,
    state=st.sampled_from(["PENDING", "RUNNING", "COMPLETED", "FAILED"]),
    hours=st.integers(min_value=0, max_value=2),
    cpus=st.sampled_from([1, 4]),
    # Not `\N` or "\x1f": the content hash maps null to `\N` and joins fields with "\x1f",
    # so a null job name and a literal `\N` collide (reported; not what this file checks).
    job_name=st.sampled_from([None, "", "sim", "sim|b é"]),
)


def run_key(run: int) -> str:
    return f"lab/{100 + run}/{int(T0.timestamp())}"


def runs_frame(deliveries: list[Delivery]) -> pl.DataFrame:
    rows = []
    for d in deliveries:
        c = d.content
        start = None if c.state == "PENDING" else T0 + timedelta(minutes=5)
        end = start + timedelta(hours=c.hours) if start and c.state != "RUNNING" else None
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
            }
        )
    schema = {name: RUNS[name] for name in rows[0]} if rows else RUNS
    return conform(pl.DataFrame(rows, schema=schema), RUNS)


def deliver(con: duckdb.DuckDBPyConnection, batch: list[Delivery]) -> BatchSummary:
    return write_batch(
        con,
        source="sacct:lab",
        scheduler="slurm",
        runs=runs_frame(batch),
        steps=pl.DataFrame(schema=STEPS),
        quarantine=pl.DataFrame(schema=QUARANTINE),
        lines_read=len(batch),
        started_at=T0,
    )


def stored_runs(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    select = ", ".join(f'"{c}"' for c in [*CONTENT, "row_hash"])
    return con.sql(f"SELECT {select} FROM runs ORDER BY run_key").pl()


def content_of(row: dict[str, object]) -> Content:
    elapsed = row["elapsed_s"]
    cpus = row["alloc_cpus"]
    assert isinstance(elapsed, int) and isinstance(cpus, int)
    name = row["job_name"]
    assert name is None or isinstance(name, str)
    return Content(str(row["state"]), elapsed // 3600, cpus, name)


@st.composite
def in_order_deliveries(draw: st.DrawFn) -> tuple[dict[int, list[Content]], list[list[Delivery]]]:
    """Runs with their revisions, and batches delivering them in order per run."""
    n_runs = draw(st.integers(min_value=1, max_value=4))
    revisions = {run: draw(st.lists(contents, min_size=1, max_size=4)) for run in range(n_runs)}
    # Per run, the revisions it is sent as, in order: each revision 0..3 times (a pull that
    # missed it, or re-deliveries), the last one at least once.
    queues: dict[int, list[Content]] = {}
    for run, revs in revisions.items():
        queue: list[Content] = []
        for i, rev in enumerate(revs):
            lowest = 1 if i == len(revs) - 1 else 0
            queue += [rev] * draw(st.integers(min_value=lowest, max_value=3))
        queues[run] = queue
    # Interleave the runs' queues, keeping each one's order.
    stream: list[Delivery] = []
    while any(queues.values()):
        run = draw(st.sampled_from(sorted(r for r, q in queues.items() if q)))
        content = queues[run].pop(0)
        source = draw(st.sampled_from(["pull-a.txt", "pull-b.txt", "backfill.txt"]))
        stream.append(Delivery(run, content, source, draw(st.integers(1, 500))))
    return revisions, split(draw, stream)


def split(draw: st.DrawFn, stream: list[Delivery]) -> list[list[Delivery]]:
    """Cut ``stream`` into consecutive batches at arbitrary points (each batch non-empty)."""
    cuts = sorted(
        draw(st.sets(st.integers(min_value=1, max_value=max(1, len(stream) - 1)), max_size=6))
    )
    bounds = [0, *(c for c in cuts if c < len(stream)), len(stream)]
    return [stream[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


@st.composite
def any_order_deliveries(draw: st.DrawFn) -> list[list[Delivery]]:
    """Batches delivering contents of a few runs in any order (older revisions late too)."""
    n_runs = draw(st.integers(min_value=1, max_value=3))
    events = draw(
        st.lists(
            st.builds(
                Delivery,
                run=st.integers(min_value=0, max_value=n_runs - 1),
                content=contents,
                source=st.sampled_from(["pull-a.txt", "pull-b.txt"]),
                line=st.integers(1, 500),
            ),
            min_size=1,
            max_size=14,
        )
    )
    return split(draw, events)


class Model:
    """What the store promises: per batch the last line of a run wins; a content that differs
    from the stored one is a new version, an equal one changes nothing."""

    def __init__(self) -> None:
        self.versions: dict[str, list[Content]] = {}

    def deliver(self, batch: list[Delivery]) -> tuple[int, int, int]:
        last = {run_key(d.run): d.content for d in batch}  # dict keeps the later line
        new = changed = unchanged = 0
        for key, content in last.items():
            versions = self.versions.setdefault(key, [])
            if not versions:
                new += 1
                versions.append(content)
            elif versions[-1] != content:
                changed += 1
                versions.append(content)
            else:
                unchanged += 1
        return new, changed, unchanged


def check_against_model(con: duckdb.DuckDBPyConnection, model: Model) -> pl.DataFrame:
    """Check runs and run_versions against ``model``; return the stored runs."""
    runs = stored_runs(con)
    assert runs["run_key"].is_unique().all()
    assert sorted(runs["run_key"]) == sorted(model.versions)
    current = {row["run_key"]: content_of(row) for row in runs.iter_rows(named=True)}
    for key, expected in model.versions.items():
        assert current[key] == expected[-1]
        versions = read_run_versions(con, key)
        assert versions["version"].to_list() == list(range(1, len(expected) + 1))
        assert [content_of(row) for row in versions.iter_rows(named=True)] == expected
        assert versions["is_current"].to_list() == [False] * (len(expected) - 1) + [True]
        # consecutive versions differ; the current one is the row in runs
        hashes = versions["row_hash"].to_list()
        assert all(a != b for a, b in zip(hashes, hashes[1:], strict=False))
        assert hashes[-1] == runs.filter(pl.col("run_key") == key)["row_hash"].item()
    return runs


def fresh_store(directory: str, name: str) -> duckdb.DuckDBPyConnection:
    return open_store(Path(directory) / name)


@SETTINGS
@given(in_order_deliveries())
def test_in_order_redeliveries_give_the_store_of_the_last_revisions(
    case: tuple[dict[int, list[Content]], list[list[Delivery]]],
) -> None:
    revisions, batches = case
    with tempfile.TemporaryDirectory() as directory:
        con = fresh_store(directory, "interleaved.duckdb")
        reference = fresh_store(directory, "reference.duckdb")
        try:
            model = Model()
            for batch in batches:
                summary = deliver(con, batch)
                expected = model.deliver(batch)
                got = (summary.runs_new, summary.runs_changed, summary.runs_unchanged)
                assert got == expected
            runs = check_against_model(con, model)

            # the same final store as delivering each run's last revision once
            deliver(
                reference, [Delivery(r, revs[-1], "once.txt", 1) for r, revs in revisions.items()]
            )
            assert_frame_equal(runs, stored_runs(reference))

            # and delivering the last revisions once more changes nothing
            again = deliver(
                con, [Delivery(r, revs[-1], "again.txt", 9) for r, revs in revisions.items()]
            )
            assert (again.runs_new, again.runs_changed) == (0, 0)
            assert again.runs_unchanged == len(revisions)
            assert_frame_equal(stored_runs(con), runs)
            check_against_model(con, model)
        finally:
            con.close()
            reference.close()


@SETTINGS
@given(any_order_deliveries())
def test_any_delivery_order_last_delivery_wins(batches: list[list[Delivery]]) -> None:
    # No promise about revision order: the store keeps what was delivered last (a late older
    # revision becomes current, the newer one a version in run_history). Ordering is the
    # source's responsibility; sacct reports a run's current state.
    with tempfile.TemporaryDirectory() as directory:
        con = fresh_store(directory, "s.duckdb")
        try:
            model = Model()
            for batch in batches:
                summary = deliver(con, batch)
                assert (summary.runs_new, summary.runs_changed, summary.runs_unchanged) == (
                    model.deliver(batch)
                )
            check_against_model(con, model)
            stored_versions = con.execute("SELECT count(*) FROM run_versions").fetchall()[0][0]
            assert stored_versions == sum(len(v) for v in model.versions.values())
        finally:
            con.close()


def test_a_b_a_is_three_versions_and_a_redelivery_none(tmp_path: Path) -> None:
    con = open_store(tmp_path / "s.duckdb")
    a = Content("COMPLETED", 2, 4, "sim")
    b = Content("COMPLETED", 1, 4, "sim")  # an admin fixed End, then undid it
    for i, content in enumerate([a, a, b, b, a, a]):
        deliver(con, [Delivery(0, content, f"pull-{i}.txt", i + 1)])
    # inside one batch the later line wins: b never becomes a version of run 1
    deliver(
        con, [Delivery(1, a, "x.txt", 1), Delivery(1, b, "x.txt", 2), Delivery(1, a, "x.txt", 3)]
    )
    versions = read_run_versions(con, run_key(0))
    assert [content_of(r) for r in versions.iter_rows(named=True)] == [a, b, a]
    assert read_run_versions(con, run_key(1))["version"].to_list() == [1]
    con.close()
