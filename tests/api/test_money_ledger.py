"""The ledger against a real DuckDB file: golden statements for a small site, closed periods
that never change, adjustments for late and revised runs, refunds, the CLI and the order rules."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from api.cli import app
from api.usecases.money import (
    ChargeCache,
    LedgerState,
    close_period,
    load_ledger,
    post_entry,
    statement,
)
from ingest.load import load_sacct_file
from models.errors import InvalidRequest, PeriodClosed, UnknownGrant
from models.frames import QUARANTINE, RUNS, STEPS, conform, empty
from models.money.statement import Statement
from models.policy import load_policy, load_policy_text
from models.store import Connection, open_store, write_policy
from models.store.ledger import read_statement_hashes
from models.store.runs import write_batch
from reports.statements import render, render_all
from tests.strategies import examples

SITE = Path(__file__).parents[1] / "golden" / "money_small"
CLOSE_SEPT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
CLOSE_OCT = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
FAST = ("csv", "json", "xlsx")
FIRST_PULL = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
LATER_PULL = datetime(2026, 11, 4, 6, 0, tzinfo=UTC)


def fast_render(made: Statement, formats: Sequence[str]) -> dict[str, bytes]:
    """All formats but PDF (the slowest), for tests that close many periods."""
    return {f: render(made, f) if f in FAST else b"pdf not rendered in this test" for f in formats}


def small_site(db: Path) -> Connection:
    con = open_store(db)
    write_policy(con, load_policy(SITE / "policy.toml"), origin="money_small")
    # when the source saw the records decides which content of a run is current (not the
    # files' mtimes, which a checkout sets): the first pull, then later deliveries
    load_sacct_file(con, SITE / "sacct.txt", observed_at=FIRST_PULL)
    return con


def test_golden_statement_of_the_small_site(tmp_path: Path, update_golden: bool) -> None:
    con = small_site(tmp_path / "site.duckdb")
    close_period(con, "2026-09", actor="finance", now=CLOSE_SEPT, render_all=render_all)
    close_period(con, "2026-10", actor="finance", now=CLOSE_OCT, render_all=render_all)
    made = statement(load_ledger(con, as_of=CLOSE_OCT), "G-PHYS", "2026-10")
    assert (made.opening_balance, made.total_charges, made.closing_balance) == (
        Decimal("100.00"),
        Decimal("14.87"),
        Decimal("85.13"),
    )
    for fmt in ("csv", "json"):
        golden = SITE / f"G-PHYS_2026-10.{fmt}"
        got = render(made, fmt)
        if update_golden:
            golden.write_bytes(got)
        assert got.decode() == golden.read_text(encoding="utf-8"), fmt
    # the hashes recorded at close are those of the statement as served later, in every format
    recorded = read_statement_hashes(con, "G-PHYS", "2026-10")
    assert set(recorded) == {"csv", "json", "xlsx", "pdf"}
    for fmt, sha in recorded.items():
        assert hashlib.sha256(render(made, fmt)).hexdigest() == sha, fmt


def test_late_and_revised_runs_become_adjustments_in_the_first_open_period(
    tmp_path: Path,
) -> None:
    con = small_site(tmp_path / "site.duckdb")
    close_period(con, "2026-09", actor="finance", now=CLOSE_SEPT, render_all=fast_render)
    close_period(con, "2026-10", actor="finance", now=CLOSE_OCT, render_all=fast_render)
    before = {
        f: render(statement(load_ledger(con, as_of=CLOSE_OCT), "G-PHYS", "2026-10"), f)
        for f in FAST
    }
    # job 1002 ran an hour longer; 1010 arrives late
    load_sacct_file(con, SITE / "late.txt", observed_at=LATER_PULL)
    later = CLOSE_OCT + timedelta(days=3)
    state = load_ledger(con, as_of=later)
    for f in FAST:  # the closed statement is the same bytes
        assert render(statement(state, "G-PHYS", "2026-10"), f) == before[f], f
    nov = statement(state, "G-PHYS", "2026-11")
    adjustments = {
        (r["kind"], r["refers_period"], r["run_key"].split("/")[1], r["resource"]): r["amount"]
        for r in nov.adjustments.iter_rows(named=True)
    }
    # 1002: 8 CPUs x 1 h x 0.10 x 1.5, 1 GPU x 1 h x 2.00 x 1.5, 15.625 GiB x 4 h x 0.01 x 1.5
    # = 0.9375 -> 0.94 now against 0.70 then
    assert adjustments == {
        ("revision", "2026-10", "1002", "cpu"): Decimal("1.20"),
        ("revision", "2026-10", "1002", "gpu"): Decimal("3.00"),
        ("revision", "2026-10", "1002", "mem"): Decimal("0.24"),
    }
    assert nov.total_adjustments == Decimal("4.44")
    assert nov.opening_balance == Decimal("85.13")
    bio = statement(state, "G-BIO", "2026-11")
    late = bio.adjustments.row(0, named=True)
    assert (late["kind"], late["refers_period"], late["amount"]) == (
        "late run",
        "2026-10",
        Decimal("1.200000"),  # 2 CPUs x 5 h x 0.12 (v2 from Oct 15)
    )
    assert "arrived after 2026-10 closed" in late["reason"]


def test_refunds_and_manual_adjustments_need_a_reason_and_name_the_author(
    tmp_path: Path,
) -> None:
    con = small_site(tmp_path / "site.duckdb")
    close_period(con, "2026-09", actor="finance", now=CLOSE_SEPT, render_all=fast_render)
    close_period(con, "2026-10", actor="finance", now=CLOSE_OCT, render_all=fast_render)
    state = load_ledger(con, as_of=CLOSE_OCT)
    key = state.view.filter(pl.col("run_key").str.contains("/1002/"))["run_key"][0]
    with pytest.raises(InvalidRequest, match="reason"):
        post_entry(
            con, grant_id="G-PHYS", amount=None, reason=" ", author="x", now=CLOSE_OCT, run_key=key
        )
    _entry, period, amount = post_entry(
        con,
        grant_id="G-PHYS",
        amount=None,
        reason="GPU fault",
        author="ana",
        now=CLOSE_OCT,
        run_key=key,
    )
    assert (period, amount) == ("2026-11", Decimal("-13.300000"))
    post_entry(
        con,
        grant_id="G-PHYS",
        amount=Decimal("2.50"),
        reason="consulting",
        author="ana",
        now=CLOSE_OCT,
    )
    with pytest.raises(InvalidRequest, match="at most 2 decimals"):
        post_entry(
            con, grant_id="G-PHYS", amount=Decimal("0.001"), reason="x", author="a", now=CLOSE_OCT
        )
    with pytest.raises(UnknownGrant, match="G-NOPE"):
        post_entry(con, grant_id="G-NOPE", amount=Decimal(1), reason="x", author="a", now=CLOSE_OCT)
    nov = statement(load_ledger(con, as_of=CLOSE_OCT), "G-PHYS", "2026-11")
    rows = sorted(nov.adjustments.select("kind", "amount", "reason", "author").rows())
    assert rows == [
        ("manual", Decimal("2.500000"), "consulting", "ana"),
        ("refund", Decimal("-13.300000"), "GPU fault", "ana"),
    ]
    assert nov.closing_balance == Decimal("85.13") + Decimal("13.30") - Decimal("2.50") - Decimal(
        "0.24"  # run 1008 ends on Nov 1: 1 CPU x 2 h x 0.12
    )


def test_periods_close_in_order_only_once_and_only_when_ended(tmp_path: Path) -> None:
    con = small_site(tmp_path / "site.duckdb")
    with pytest.raises(PeriodClosed, match=r"2026-10 has charges|close it first"):
        close_period(
            con, "2026-11", actor="f", now=datetime(2026, 12, 2, tzinfo=UTC), render_all=fast_render
        )
    with pytest.raises(PeriodClosed, match="has not ended"):
        close_period(
            con,
            "2026-10",
            actor="f",
            now=datetime(2026, 10, 20, tzinfo=UTC),
            render_all=fast_render,
        )
    with pytest.raises(InvalidRequest, match="YYYY-MM"):
        close_period(con, "2026-13", actor="f", now=CLOSE_OCT, render_all=fast_render)
    close_period(con, "2026-10", actor="f", now=CLOSE_OCT, render_all=fast_render)
    with pytest.raises(PeriodClosed, match="already closed"):
        close_period(con, "2026-10", actor="f", now=CLOSE_OCT, render_all=fast_render)
    with pytest.raises(PeriodClosed, match="already closed"):
        close_period(con, "2026-09", actor="f", now=CLOSE_OCT, render_all=fast_render)


def test_statement_totals_are_sums_of_lines_and_balances_chain(tmp_path: Path) -> None:
    con = small_site(tmp_path / "site.duckdb")
    state = load_ledger(con, as_of=datetime(2026, 11, 20, tzinfo=UTC))
    sept, octo, nov = (statement(state, "G-PHYS", p) for p in ("2026-09", "2026-10", "2026-11"))
    for made in (sept, octo, nov):
        assert made.total_charges == sum(made.charges["amount"].to_list(), Decimal(0))
        for s in made.summaries:
            assert sum(s.amounts.values(), Decimal(0)) == made.total_charges, s.dimension
        assert made.closing_balance == (
            made.opening_balance - made.total_charges - made.total_adjustments
        )
    assert octo.opening_balance == sept.closing_balance
    assert nov.opening_balance == octo.closing_balance
    assert octo.status == "open" and octo.burn_rate_per_day == Decimal("0.48")  # 14.87 / 31
    assert octo.run_out is not None


def test_cli_writes_statements_and_closes_periods(tmp_path: Path) -> None:
    db = tmp_path / "site.duckdb"
    small_site(db).close()
    runner = CliRunner()
    closed = runner.invoke(app, ["--db", str(db), "close-period", "2026-09", "--actor", "ana"])
    assert closed.exit_code == 0, closed.output
    assert "closed 2026-09: 0 lines" in closed.output
    assert f"pdf rendered with fairledger {version('fairledger')}" in closed.output
    out = tmp_path / "oct.xlsx"
    made = runner.invoke(
        app, ["--db", str(db), "statement", "G-PHYS", "2026-10", "-f", "xlsx", "-o", str(out)]
    )
    assert made.exit_code == 0, made.output
    assert out.read_bytes()[:2] == b"PK"
    as_json = runner.invoke(app, ["--db", str(db), "statement", "G-PHYS", "2026-10", "-f", "json"])
    body = json.loads(as_json.stdout)
    assert body["total_charges"] == "14.87"
    grants = runner.invoke(app, ["--db", str(db), "grants"])
    assert "G-PHYS|Physics Foundation|USD|100.00|15.11|84.89|" in grants.output  # Oct + Nov 1
    unbilled = runner.invoke(app, ["--db", str(db), "unbilled", "--period", "2026-10"])
    assert "chem" in unbilled.output and "NODE_FAIL" in unbilled.output
    quote = runner.invoke(
        app,
        [
            "--db",
            str(db),
            "quote",
            "--cluster",
            "lab",
            "--account",
            "phys",
            "--hours",
            "2",
            "--cpus",
            "4",
            "--partition",
            "cpu",
        ],
    )
    assert quote.exit_code == 0, quote.output
    assert "paid by grant G-PHYS" in quote.output


@settings(
    max_examples=examples(12),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    later=st.lists(
        st.tuples(
            st.sampled_from(["phys", "bio", "chem"]),
            st.integers(0, 75),  # days after Sept 20
            st.integers(60, 200_000),  # seconds
            st.integers(1, 64),  # CPUs
            st.sampled_from(["1001", "1002", "new"]),  # revise a run or add one
        ),
        min_size=1,
        max_size=6,
    )
)
def test_a_closed_statement_is_byte_identical_after_any_later_ingest(
    tmp_path_factory: pytest.TempPathFactory, later: list[tuple[str, int, int, int, str]]
) -> None:
    db = tmp_path_factory.mktemp("prop") / "site.duckdb"
    con = small_site(db)
    close_period(con, "2026-09", actor="f", now=CLOSE_SEPT, render_all=fast_render)
    close_period(con, "2026-10", actor="f", now=CLOSE_OCT, render_all=fast_render)
    frozen = {
        (g, f): render(statement(load_ledger(con, as_of=CLOSE_OCT), g, "2026-10"), f)
        for g in ("G-PHYS", "G-BIO")
        for f in FAST
    }
    header, *lines = (SITE / "sacct.txt").read_text().splitlines()
    original = {ln.split("|")[0]: ln for ln in lines}
    out = [header]
    for i, (account, day, seconds, cpus, which) in enumerate(later):
        start = datetime(2026, 9, 20, tzinfo=UTC) + timedelta(days=day)
        if which == "new":
            job, submit = str(2000 + i), (start - timedelta(minutes=1))
        else:
            job = which
            submit = datetime.fromisoformat(original[which].split("|")[7]).replace(tzinfo=UTC)
        end = start + timedelta(seconds=seconds)
        fmt = "%Y-%m-%dT%H:%M:%S"
        out.append(
            "|".join(
                [
                    job,
                    job,
                    "lab",
                    "cpu",
                    "normal",
                    account,
                    "zed",
                    submit.strftime(fmt),
                    submit.strftime(fmt),
                    start.strftime(fmt),
                    end.strftime(fmt),
                    f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}",
                    str(seconds),
                    "3-00:00:00",
                    "0:0",
                    "COMPLETED",
                    "1",
                    str(cpus),
                    "0M",
                    f"billing={cpus},cpu={cpus},node=1",
                    "n02",
                    "",
                    "later",
                ]
            )
        )
    path = db.parent / "later.txt"
    path.write_text("\n".join(out) + "\n")
    load_sacct_file(con, path, observed_at=LATER_PULL)
    state = load_ledger(con, as_of=CLOSE_OCT + timedelta(days=40))
    for (grant, fmt), data in frozen.items():
        assert render(statement(state, grant, "2026-10"), fmt) == data, (grant, fmt)
    con.close()


def test_cached_charges_follow_new_batches_and_policies(tmp_path: Path) -> None:
    con = small_site(tmp_path / "site.duckdb")
    cache = ChargeCache()
    first = load_ledger(con, as_of=CLOSE_OCT, cache=cache)
    again = load_ledger(con, as_of=CLOSE_OCT, cache=cache)
    assert again.view.equals(first.view)
    load_sacct_file(con, SITE / "late.txt", observed_at=LATER_PULL)  # a new batch
    after = load_ledger(con, as_of=CLOSE_OCT, cache=cache)
    fresh = load_ledger(con, as_of=CLOSE_OCT)
    assert after.view.equals(fresh.view) and not after.view.equals(first.view)
    cheaper = load_policy(SITE / "policy.toml").model_copy(update={"rate_cards": []})
    write_policy(con, cheaper, origin="no cards")  # a new policy version: nothing is priced
    priced = load_ledger(con, as_of=CLOSE_OCT, cache=cache)
    assert priced.view.height == 0 and priced.unbilled.height > 0


def test_after_a_batch_the_cache_charges_again_only_the_jobs_it_touched(tmp_path: Path) -> None:
    con = small_site(tmp_path / "site.duckdb")
    cache = ChargeCache()
    load_ledger(con, as_of=CLOSE_OCT, cache=cache)
    stored = con.execute("SELECT count(*) FROM runs").fetchall()[0][0]
    assert cache.last_charged == stored
    # a revision of 1002 and a new job 1010 (late.txt), and a requeued run of job 1003
    late = (SITE / "late.txt").read_text().splitlines()
    requeue = (
        "1003|1003|lab|cpu|normal|phys|alice|2026-10-20T09:40:00|2026-10-20T09:40:00|"
        "2026-10-20T09:45:00|2026-10-20T10:45:00|01:00:00|3600|1-00:00:00|0:0|COMPLETED|1|2|"
        "0M|billing=2,cpu=2,node=1|n01||job1003"
    )
    path = tmp_path / "later.txt"
    path.write_text("\n".join([*late, requeue]) + "\n")
    load_sacct_file(con, path, observed_at=LATER_PULL)
    for policy in (None, "\n[charging]\ncharge_requeued_runs = false\n"):
        if policy is not None:  # a new policy version: every run is charged again
            text = (SITE / "policy.toml").read_text() + policy
            write_policy(con, load_policy_text(text), origin="last runs only")
        after = load_ledger(con, as_of=CLOSE_OCT, cache=cache)
        assert cache.last_charged == (4 if policy is None else stored + 2)
        fresh = load_ledger(con, as_of=CLOSE_OCT)
        # the same lines (in another order: readers sort them)
        assert after.view.sort(pl.all()).equals(fresh.view.sort(pl.all()))
        assert after.unbilled.sort(pl.all()).equals(fresh.unbilled.sort(pl.all()))
    assert "requeued" in " ".join(after.unbilled["reason"].to_list())
    again = load_ledger(con, as_of=CLOSE_OCT, cache=cache)  # nothing new: nothing charged
    assert again.view.equals(after.view) and cache.last_charged == stored + 2


def test_an_earlier_content_that_is_current_again_is_charged_again(tmp_path: Path) -> None:
    con = small_site(tmp_path / "site.duckdb")  # job 1002 ends at 03:00
    cache = ChargeCache()
    first = load_ledger(con, as_of=CLOSE_OCT, cache=cache)
    load_sacct_file(con, SITE / "late.txt", observed_at=LATER_PULL)  # 1002 ends at 04:00
    revised = load_ledger(con, as_of=CLOSE_OCT, cache=cache)
    # the first file observed again later: its content of 1002 is the newest, current again
    load_sacct_file(con, SITE / "sacct.txt", observed_at=LATER_PULL + timedelta(days=1))
    back = load_ledger(con, as_of=CLOSE_OCT, cache=cache)
    fresh = load_ledger(con, as_of=CLOSE_OCT)
    assert back.view.sort(pl.all()).equals(fresh.view.sort(pl.all()))

    def gpu_hours(state: LedgerState) -> float:
        line = state.view.filter(
            pl.col("run_key").str.contains("/1002/") & (pl.col("resource") == "gpu")
        )
        return float(line["hours"].sum())

    assert (gpu_hours(first), gpu_hours(revised), gpu_hours(back)) == (3.0, 4.0, 3.0)


def test_a_stored_run_too_large_to_charge_leaves_finance_answering(tmp_path: Path) -> None:
    con = small_site(tmp_path / "site.duckdb")
    cache = ChargeCache()
    before = load_ledger(con, as_of=CLOSE_OCT, cache=cache)
    grants = [g.id for g in before.policy.grants]
    statements = {g: render(statement(before, g, "2026-10"), "json") for g in grants}
    # a run read before the parsers bounded sizes: written straight into the store
    at = datetime(2026, 10, 5, 10, 0, tzinfo=UTC)
    poisoned = {"run_key": "lab/1999/1", "scheduler": "slurm", "cluster": "lab", "job_id": "1999",
                "job_id_raw": "1999", "user": "alice", "account": "phys", "partition": "cpu",
                "qos": "normal", "state": "COMPLETED", "submit_at": at, "start_at": at,
                "end_at": at + timedelta(hours=1), "elapsed_s": 3600, "alloc_cpus": 4,
                "alloc_nodes": 1, "alloc_mem_mb": 1e19}  # fmt: skip
    write_batch(con, source="old.txt", scheduler="slurm",
                runs=conform(pl.DataFrame([poisoned]), RUNS), steps=empty(STEPS),
                quarantine=empty(QUARANTINE), lines_read=1, started_at=LATER_PULL)  # fmt: skip
    for state in (
        load_ledger(con, as_of=CLOSE_OCT),
        load_ledger(con, as_of=CLOSE_OCT, cache=cache),
    ):
        row = state.unbilled.filter(pl.col("run_key") == "lab/1999/1")
        assert row["reason"].to_list() == ["alloc_mem_mb 1e+19 is beyond what can be charged"]
        for g in grants:  # every grant's statement, the poisoned run's grant's too, unchanged
            assert render(statement(state, g, "2026-10"), "json") == statements[g], g
