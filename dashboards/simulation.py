"""The what-if chart: each user's fair-share factor under the active and the other policy, and
each grant's charges under both (``models.fairshare.simulate``'s tables, already aggregated)."""

from __future__ import annotations

from typing import Any

import altair as alt
import polars as pl

MAX_POINTS = 4000  # below Altair's 5,000-row limit: the users whose factor moves most


def simulation_chart(table: pl.DataFrame, grants: pl.DataFrame) -> alt.HConcatChart:
    """Return a scatter of users' factors (current vs other; off the diagonal = changed) beside
    a bar chart of each grant's charge change."""
    users = (
        table.filter(pl.col("user") != "")
        .with_columns(moved=(pl.col("fairshare_change").abs()).fill_null(0.0))
        .sort("moved", descending=True)
        .head(MAX_POINTS)
        .select(
            "cluster",
            "account",
            "user",
            pl.col("fairshare_current").fill_null(0.0),
            pl.col("fairshare_other").fill_null(0.0),
            "rank_change",
        )
    )
    scatter = (
        alt.Chart(alt.Data(values=users.to_dicts()), title="Fair-share factor per user")
        .mark_circle(size=40, opacity=0.7)
        .encode(
            x=alt.X("fairshare_current:Q", title="active policy", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("fairshare_other:Q", title="other policy", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("cluster:N"),
            tooltip=[
                "cluster:N",
                "account:N",
                "user:N",
                "fairshare_current:Q",
                "fairshare_other:Q",
                "rank_change:Q",
            ],
        )
    )
    diagonal = (
        alt.Chart(alt.Data(values=[{"x": 0, "y": 0}, {"x": 1, "y": 1}]))
        .mark_line(strokeDash=[4, 4], color="gray")
        .encode(x="x:Q", y="y:Q")
    )
    bars_data = grants.select(
        pl.col("grant_id").fill_null("(no grant)"),
        pl.col("charges_change").cast(pl.Float64).alias("change"),
    )
    bars = (
        alt.Chart(alt.Data(values=bars_data.to_dicts()), title="Charge change per grant")
        .mark_bar()
        .encode(
            x=alt.X("change:Q", title="other − active"),
            y=alt.Y("grant_id:N", title=None, sort="-x"),
            color=alt.condition("datum.change > 0", alt.value("#c0392b"), alt.value("#27ae60")),
            tooltip=["grant_id:N", alt.Tooltip("change:Q", format=",.2f")],
        )
    )
    return alt.hconcat((diagonal + scatter).properties(width=360, height=360), bars)


def simulation_spec(table: pl.DataFrame, grants: pl.DataFrame) -> dict[str, Any]:
    """Return the what-if chart as a Vega-Lite specification (a JSON-able dict)."""
    return simulation_chart(table, grants).to_dict()
