"""Altair charts of frames the models already aggregated: ``<metric>_chart(df) -> alt chart``.

Pure: a frame in, a chart out (no store, no clock). Times are handed to Vega-Lite as ISO 8601
UTC text and read with UTC time units, so the browser's time zone never shifts a day.
"""

from __future__ import annotations

import altair as alt
import polars as pl

RESOURCE_TITLES = {"cpu": "CPU-hours", "gpu": "GPU-hours"}
WIDTH = 720


def _iso(frame: pl.DataFrame, *columns: str) -> pl.DataFrame:
    return frame.with_columns(
        pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%SZ") for c in columns if c in frame.columns
    )


def usage_chart(series: pl.DataFrame, *, by: str, step: str, title: str) -> alt.FacetChart:
    """Return stacked bars of CPU-hours and GPU-hours per bucket, one colour per series
    (``USAGE_SERIES`` frame), one row of bars per resource."""
    frame = _iso(series, "bucket_at").with_columns(
        pl.col("resource").replace_strict(RESOURCE_TITLES, default=pl.col("resource"))
    )
    names = frame.sort("series_rank").get_column("series").unique(maintain_order=True).to_list()
    unit = "utcyearmonthdate"
    bars = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X(f"{unit}(bucket_at):T", title=f"{step} (UTC)"),
            y=alt.Y("sum(hours):Q", title="hours", stack="zero"),
            color=alt.Color("series:N", title=by, sort=names, scale=alt.Scale(scheme="tableau20")),
            order=alt.Order("series_rank:Q", sort="ascending"),
            tooltip=[
                alt.Tooltip(f"{unit}(bucket_at):T", title=step),
                alt.Tooltip("series:N", title=by),
                alt.Tooltip("resource:N"),
                alt.Tooltip("sum(hours):Q", title="hours", format=",.1f"),
            ],
        )
        .properties(width=WIDTH, height=220)
    )
    return (
        bars.facet(row=alt.Row("resource:N", title=None, sort=list(RESOURCE_TITLES.values())))
        .resolve_scale(y="independent")
        .properties(title=title)
    )


def share_level_chart(level: pl.DataFrame, *, title: str) -> alt.HConcatChart:
    """Return, for one level of the share tree (``SHARE_LEVEL`` frame), bars of each child's
    share of the shares (S), share of the usage (U) and fair-share factor, in Fair Tree order."""
    order = level.sort("rank").get_column("name").to_list()
    height = max(60, 22 * level.height)
    base = alt.Chart(level).encode(
        y=alt.Y("name:N", sort=order, title=None),
        tooltip=[
            alt.Tooltip("name:N"),
            alt.Tooltip("kind:N"),
            alt.Tooltip("raw_shares:Q", title="shares"),
            alt.Tooltip("shares_share:Q", title="S (share of shares)", format=".3f"),
            alt.Tooltip("raw_usage:Q", title="usage (decayed billing-s)", format=",.0f"),
            alt.Tooltip("usage_share:Q", title="U (share of usage)", format=".3f"),
            alt.Tooltip("level_fs_text:N", title="LevelFS = S / U"),
            alt.Tooltip("fairshare:Q", title="fair-share factor", format=".4f"),
        ],
    )
    kind = alt.Color("kind:N", title="association", scale=alt.Scale(domain=["account", "user"]))

    def panel(field: str, heading: str) -> alt.Chart:
        return (
            base.mark_bar()
            .encode(
                x=alt.X(f"{field}:Q", title=heading, scale=alt.Scale(domain=[0, 1])), color=kind
            )
            .properties(width=220, height=height)
        )

    return alt.hconcat(
        panel("shares_share", "S: share of the siblings' shares"),
        panel("usage_share", "U: share of the parent's usage").encode(
            y=alt.Y("name:N", sort=order, axis=None)
        ),
        panel("fairshare", "fair-share factor (users)").encode(
            y=alt.Y("name:N", sort=order, axis=None)
        ),
    ).properties(title=title)


def ingest_chart(
    daily: pl.DataFrame, table: pl.DataFrame, *, start: str, end: str, title: str
) -> alt.VConcatChart:
    """Return ingest health: a table of each source's state (``INGEST_TABLE`` cells) above the
    runs landed, records quarantined and batches per day and source (``INGEST_DAILY``) from
    ``start`` to ``end`` (ISO 8601 dates)."""
    cells = (
        alt.Chart(table)
        .mark_text(baseline="middle")
        .encode(
            x=alt.X(
                "field:N",
                sort=alt.EncodingSortField("field_order"),
                title=None,
                axis=alt.Axis(orient="top", labelAngle=0),
            ),
            y=alt.Y("source:N", title=None),
            text="value:N",
        )
        .properties(width=WIDTH, height=max(30, 26 * table.get_column("source").n_unique()))
    )
    frame = _iso(daily, "day_at")
    lines = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X(
                "utcyearmonthdate(day_at):T",
                title="day (UTC)",
                scale=alt.Scale(domain=[start, end]),
            ),
            y=alt.Y("sum(count):Q", title=None),
            color=alt.Color("source:N"),
            tooltip=[
                alt.Tooltip("utcyearmonthdate(day_at):T", title="day"),
                alt.Tooltip("source:N"),
                alt.Tooltip("measure:N"),
                alt.Tooltip("sum(count):Q", title="count", format=","),
            ],
        )
        .properties(width=WIDTH, height=120)
        .facet(row=alt.Row("measure:N", title=None))
        .resolve_scale(y="independent")
    )
    return alt.vconcat(cells, lines).properties(title=title)


def burndown_chart(points: pl.DataFrame, *, unit: str, title: str) -> alt.LayerChart:
    """Return a grant's remaining budget per day (``BURNDOWN_POINTS``): the actual line, the
    forecast dashed after it, and zero marked."""
    frame = points.with_columns(pl.col("day").dt.strftime("%Y-%m-%d"))
    line = (
        alt.Chart(frame)
        .mark_line(point=False, strokeWidth=2)
        .encode(
            x=alt.X("day:T", title="day"),
            y=alt.Y("remaining:Q", title=f"remaining ({unit})"),
            color=alt.Color(
                "series:N",
                title=None,
                scale=alt.Scale(domain=["spent so far", "forecast"], range=["#1f77b4", "#ff7f0e"]),
            ),
            strokeDash=alt.StrokeDash(
                "series:N",
                legend=None,
                scale=alt.Scale(domain=["spent so far", "forecast"], range=[[1, 0], [6, 4]]),
            ),
            tooltip=[
                alt.Tooltip("day:T"),
                alt.Tooltip("series:N"),
                alt.Tooltip("spent:Q", format=",.2f"),
                alt.Tooltip("remaining:Q", format=",.2f"),
            ],
        )
    )
    zero = alt.Chart(pl.DataFrame({"y": [0]})).mark_rule(color="#a00").encode(y="y:Q")
    return alt.LayerChart(layer=[line, zero]).properties(width=WIDTH, height=320, title=title)


VERDICT_COLOURS = {"approved": "#2ca02c", "violation": "#d62728", "unknown": "#7f7f7f"}


def compliance_chart(status: pl.DataFrame, *, title: str) -> alt.Chart:
    """Return runs per grant stacked by verdict (``COMPLIANCE_STATUS``), the deciding rule in
    the tooltip."""
    grants = max(1, status.get_column("grant_id").n_unique())
    return (
        alt.Chart(status)
        .mark_bar()
        .encode(
            y=alt.Y("grant_id:N", title="grant"),
            x=alt.X("sum(runs):Q", title="runs charged to the grant"),
            color=alt.Color(
                "verdict:N",
                scale=alt.Scale(domain=list(VERDICT_COLOURS), range=list(VERDICT_COLOURS.values())),
            ),
            order=alt.Order("verdict:N"),
            tooltip=[
                alt.Tooltip("grant_id:N", title="grant"),
                alt.Tooltip("regime:N"),
                alt.Tooltip("verdict:N"),
                alt.Tooltip("rule:N"),
                alt.Tooltip("sum(runs):Q", title="runs"),
            ],
        )
        .properties(width=WIDTH, height=40 * grants, title=title)
    )
