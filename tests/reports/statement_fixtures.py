"""Small charge-back statements built by hand for the renderer tests.

Each amount is derived in ``tests/golden/statements/README.md``; the builders here only state
them (a renderer computes nothing, so its inputs are the numbers a finance user checks).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import polars as pl

from models.money.frames import ADJUSTMENT_COLUMNS, BURNDOWN_COLUMNS, CHARGE_COLUMNS
from models.money.statement import RateCardUsed, Statement, Summary

D = Decimal


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def charges_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Return ``rows`` (dicts with CHARGE_COLUMNS keys) as a charges frame."""
    return (
        pl.DataFrame(rows, schema=CHARGE_COLUMNS, orient="row")
        if rows
        else pl.DataFrame(schema=CHARGE_COLUMNS)
    )


def adjustments_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Return ``rows`` (dicts with ADJUSTMENT_COLUMNS keys) as an adjustments frame."""
    if not rows:
        return pl.DataFrame(schema=ADJUSTMENT_COLUMNS)
    return pl.DataFrame(rows, schema=ADJUSTMENT_COLUMNS, orient="row")


def burndown_frame(rows: list[tuple[date, str, str, bool]]) -> pl.DataFrame:
    """Return (day, spent, remaining, forecast) tuples as a burn-down frame."""
    data = [{"day": d, "spent": D(s), "remaining": D(r), "forecast": f} for d, s, r, f in rows]
    return (
        pl.DataFrame(data, schema=BURNDOWN_COLUMNS)
        if data
        else pl.DataFrame(schema=BURNDOWN_COLUMNS)
    )


def _charge(
    run: str,
    user: str,
    partition: str,
    qos: str,
    end_at: str,
    resource: str,
    quantity: float,
    hours: float,
    rate_card: str,
    unit_price: str,
    multiplier: str,
    amount: str,
    *,
    gpu_model: str | None = None,
    account: str = "physics",
) -> dict[str, Any]:
    job = run.split("/")[1]
    return {
        "run_key": run,
        "job_id": job,
        "cluster": run.split("/")[0],
        "account": account,
        "user": user,
        "partition": partition,
        "qos": qos,
        "end_at": _t(end_at),
        "resource": resource,
        "gpu_model": gpu_model,
        "quantity": quantity,
        "hours": hours,
        "rate_card": rate_card,
        "unit_price": D(unit_price),
        "multiplier": D(multiplier),
        "amount": D(amount),
    }


ZOE = "Zoë Ødegård"
LI = "李伟"


def small_statement() -> Statement:
    """A closed month of a EUR grant: 6 charge lines, 3 adjustments, 2 rate cards."""
    r1, r2 = "alpha/1001/1772530000", "alpha/1002/1772600000"
    r3, r4 = "alpha/1003_7/1773900000", "beta/2001/1772700000"
    charges = charges_frame(
        [
            _charge(r1, "ana", "cpu", "normal", "2026-03-03T10:00:00", "cpu", 32, 2.5,
                    "rc-2026a", "0.012", "1", "0.96"),
            _charge(r1, "ana", "cpu", "normal", "2026-03-03T10:00:00", "mem", 128, 2.5,
                    "rc-2026a", "0.0015", "1", "0.48"),
            _charge(r2, ZOE, "gpu", "high", "2026-03-10T18:30:00", "cpu", 16, 10,
                    "rc-2026a", "0.012", "1.5", "2.88"),
            _charge(r2, ZOE, "gpu", "high", "2026-03-10T18:30:00", "gpu", 4, 10,
                    "rc-2026a", "0.75", "1.5", "45.00", gpu_model="a100"),
            _charge(r4, "ana", "cpu", "normal", "2026-03-12T07:15:00", "node", 2, 1.5,
                    "rc-2026a", "0.5", "1", "1.50", account="physics-lab"),
            _charge(r3, LI, "cpu", "normal", "2026-03-20T23:59:59", "cpu", 64, 100.25,
                    "rc-2026b", "0.010", "1", "64.16"),
        ]
    )  # fmt: skip
    adjustments = adjustments_frame(
        [
            {"kind": "revision", "refers_period": "2026-02", "run_key": "alpha/998/1770000000",
             "resource": "cpu", "amount": D("3.20"), "reason": "end time corrected by admin",
             "author": "ingest", "posted_at": _t("2026-03-05T02:00:00")},
            {"kind": "refund", "refers_period": "2026-02", "run_key": "alpha/999/1770100000",
             "resource": "gpu", "amount": D("-12.50"), "reason": "node failure",
             "author": "finance:maria", "posted_at": _t("2026-03-10T09:30:00")},
            {"kind": "manual", "refers_period": None, "run_key": None, "resource": None,
             "amount": D("-5.00"), "reason": 'goodwill credit, ticket "4411"',
             "author": "finance:maria", "posted_at": _t("2026-03-31T16:00:00.250000")},
        ]
    )  # fmt: skip
    burndown = burndown_frame(
        [
            (date(2026, 3, 1), "1234.56", "8765.44", False),
            (date(2026, 3, 3), "1236.00", "8764.00", False),
            (date(2026, 3, 5), "1239.20", "8760.80", False),
            (date(2026, 3, 10), "1274.58", "8725.42", False),
            (date(2026, 3, 12), "1276.08", "8723.92", False),
            (date(2026, 3, 20), "1340.24", "8659.76", False),
            (date(2026, 3, 31), "1335.24", "8664.76", False),
            (date(2026, 4, 30), "1432.74", "8567.26", True),
            (date(2026, 5, 31), "1533.49", "8466.51", True),
        ]
    )
    closed = _t("2026-04-02T09:00:00")
    return Statement(
        grant_id="G-ERC-042",
        funder="European Research Council",
        unit="EUR",
        budget=D("10000.00"),
        grant_start=date(2026, 1, 1),
        grant_end=date(2026, 12, 31),
        regime="ERC",
        period="2026-03",
        period_start=_t("2026-03-01T00:00:00"),
        period_end=_t("2026-04-01T00:00:00"),
        status="closed",
        closed_at=closed,
        generated_for=closed,
        policy_version=7,
        rate_cards=(
            RateCardUsed("rc-2026a", date(2026, 1, 1), "EUR"),
            RateCardUsed("rc-2026b", date(2026, 3, 15), "EUR"),
        ),
        decimals=2,
        opening_balance=D("8765.44"),
        charges=charges,
        adjustments=adjustments,
        total_charges=D("114.98"),
        total_adjustments=D("-14.30"),
        closing_balance=D("8664.76"),
        budget_used=D("0.1335"),
        burn_rate_per_day=D("3.25"),
        run_out=date(2026, 4, 1) + timedelta(days=2666),
        summaries=(
            Summary("user", {LI: D("64.16"), ZOE: D("47.88"), "ana": D("2.94")}),
            Summary("partition", {"cpu": D("67.10"), "gpu": D("47.88")}),
            Summary(
                "resource",
                {"cpu": D("68.00"), "gpu": D("45.00"), "node": D("1.50"), "mem": D("0.48")},
            ),
        ),
        burndown=burndown,
    )


def zero_budget_statement() -> Statement:
    """An open month of a grant with no budget, in whole service units (0 decimals)."""
    run = "gamma/77/1775000000"
    charges = charges_frame(
        [
            _charge(run, "bo", "debug", "normal", "2026-04-02T12:00:00", "cpu", 8, 0.5,
                    "su-1", "1", "1", "4"),
            _charge(run, "bo", "debug", "normal", "2026-04-02T12:00:00", "minimum", 1, 0,
                    "su-1", "6", "1", "6"),
        ]
    )  # fmt: skip
    return Statement(
        grant_id="G-INTERNAL",
        funder="Institute",
        unit="SU",
        budget=D("0"),
        grant_start=date(2026, 4, 1),
        grant_end=date(2027, 3, 31),
        regime=None,
        period="2026-04",
        period_start=_t("2026-04-01T00:00:00"),
        period_end=_t("2026-05-01T00:00:00"),
        status="open",
        closed_at=None,
        generated_for=_t("2026-04-15T06:00:00"),
        policy_version=3,
        rate_cards=(RateCardUsed("su-1", date(2026, 1, 1), "SU"),),
        decimals=0,
        opening_balance=D("0"),
        charges=charges,
        adjustments=adjustments_frame([]),
        total_charges=D("10"),
        total_adjustments=D("0"),
        closing_balance=D("-10"),
        budget_used=D("0"),
        burn_rate_per_day=D("1"),
        run_out=None,
        summaries=(
            Summary("user", {"bo": D("10")}),
            Summary("partition", {"debug": D("10")}),
            Summary("resource", {"minimum": D("6"), "cpu": D("4")}),
        ),
        burndown=burndown_frame([]),
    )


def empty_statement() -> Statement:
    """An open month in which the grant was charged nothing."""
    burndown = burndown_frame(
        [
            (date(2026, 5, 1), "250.00", "750.00", False),
            (date(2026, 5, 10), "250.00", "750.00", False),
            (date(2026, 5, 31), "250.00", "750.00", True),
        ]
    )
    return Statement(
        grant_id="G-EMPTY",
        funder="Foundation",
        unit="USD",
        budget=D("1000.00"),
        grant_start=date(2026, 1, 1),
        grant_end=date(2026, 6, 30),
        regime=None,
        period="2026-05",
        period_start=_t("2026-05-01T00:00:00"),
        period_end=_t("2026-06-01T00:00:00"),
        status="open",
        closed_at=None,
        generated_for=_t("2026-05-10T00:00:00"),
        policy_version=1,
        rate_cards=(),
        decimals=2,
        opening_balance=D("750.00"),
        charges=charges_frame([]),
        adjustments=adjustments_frame([]),
        total_charges=D("0.00"),
        total_adjustments=D("0.00"),
        closing_balance=D("750.00"),
        budget_used=D("0.2500"),
        burn_rate_per_day=D("0.00"),
        run_out=None,
        summaries=(Summary("user", {}), Summary("partition", {}), Summary("resource", {})),
        burndown=burndown,
    )


def many_digits_statement() -> Statement:
    """A national-scale grant with 15-significant-digit amounts and 3 decimals."""
    run = "big/9/1780000000"
    charges = charges_frame(
        [
            _charge(run, "ops", "all", "normal", "2026-06-30T23:00:00", "node", 4096, 7200,
                    "rc-x", "3348.765432", "1", "98759111108.198"),
            _charge(run, "ops", "all", "normal", "2026-06-30T23:00:00", "gpu", 0.5, 0.000002,
                    "rc-x", "1000", "1", "0.001", gpu_model="h100"),
        ]
    )  # fmt: skip
    adjustments = adjustments_frame(
        [
            {"kind": "late run", "refers_period": "2026-05", "run_key": "big/8/1779000000",
             "resource": "node", "amount": D("-1234567.890"), "reason": "late record",
             "author": "ingest", "posted_at": _t("2026-06-02T00:00:00")},
        ]
    )  # fmt: skip
    return Statement(
        grant_id="G-NATIONAL/2026",
        funder="Ministry",
        unit="EUR",
        budget=D("123456789012.345"),
        grant_start=date(2026, 1, 1),
        grant_end=date(2030, 12, 31),
        regime="national",
        period="2026-06",
        period_start=_t("2026-06-01T00:00:00"),
        period_end=_t("2026-07-01T00:00:00"),
        status="closed",
        closed_at=_t("2026-07-01T00:00:00"),
        generated_for=_t("2026-07-01T00:00:00"),
        policy_version=12,
        rate_cards=(RateCardUsed("rc-x", date(2026, 1, 1), "EUR"),),
        decimals=3,
        opening_balance=D("120000000000.000"),
        charges=charges,
        adjustments=adjustments,
        total_charges=D("98759111108.199"),
        total_adjustments=D("-1234567.890"),
        closing_balance=D("21242123459.691"),
        budget_used=D("0.8279"),
        burn_rate_per_day=D("3291929218.010"),
        run_out=date(2026, 7, 7),
        summaries=(
            Summary("user", {"ops": D("98759111108.199")}),
            Summary("partition", {"all": D("98759111108.199")}),
            Summary("resource", {"node": D("98759111108.198"), "gpu": D("0.001")}),
        ),
        burndown=burndown_frame(
            [
                (date(2026, 6, 30), "102214665552.654", "21242123459.691", False),
                (date(2026, 7, 7), "125258170078.724", "-1801381066.379", True),
            ]
        ),
    )


ALL = {
    "small": small_statement,
    "zero_budget": zero_budget_statement,
    "empty": empty_statement,
    "many_digits": many_digits_statement,
}
