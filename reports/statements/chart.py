"""The burn-down chart of a statement: remaining budget per day, the forecast days dashed."""

from __future__ import annotations

import altair as alt
import polars as pl
import vl_convert

from models.dashboard_data import burndown_points as dashboard_points
from models.money.statement import Statement

WIDTH = 520
HEIGHT = 210


def burndown_points(statement: Statement) -> pl.DataFrame:
    """Return the chart's points: day (ISO text), remaining (float, display only), series
    ("actual" or "forecast", the forecast starting on the last actual day): the dashboards'
    points (``models.dashboard_data.burndown_points``) with the statement's labels."""
    points = dashboard_points(statement.burndown, actual="actual")
    return points.select(pl.col("day").dt.strftime("%Y-%m-%d"), "remaining", "series")


def burndown_chart(statement: Statement) -> alt.LayerChart:
    """Return the Altair chart of the remaining budget per day (forecast dashed, zero ruled)."""
    points = burndown_points(statement)
    line = (
        alt.Chart(points)
        .mark_line(point=False, strokeWidth=2)
        .encode(
            x=alt.X("day:T", title="day (UTC)", axis=alt.Axis(format="%Y-%m-%d")),
            y=alt.Y("remaining:Q", title=f"remaining ({statement.unit})"),
            strokeDash=alt.StrokeDash(
                "series:N",
                scale=alt.Scale(domain=["actual", "forecast"], range=[[1, 0], [6, 4]]),
                legend=alt.Legend(title=None, orient="top-right"),
            ),
        )
    )
    zero = alt.Chart(pl.DataFrame({"zero": [0.0]})).mark_rule(color="#b00").encode(y="zero:Q")
    title = f"Burn-down of {statement.grant_id}"
    return alt.LayerChart(layer=[line, zero], width=WIDTH, height=HEIGHT, title=title)


def burndown_png(statement: Statement, *, scale: float = 2.0) -> bytes | None:
    """Return the burn-down chart as PNG bytes (vl-convert), or None without burn-down days."""
    if statement.burndown.height == 0:
        return None
    spec = burndown_chart(statement).to_dict()
    return bytes(vl_convert.vegalite_to_png(spec, scale=scale))
