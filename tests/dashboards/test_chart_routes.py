"""The chart routes over HTTP against a real server on the demo site: specs, role scope,
PNG and SVG export, and the pages' shells."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dashboard_site import VIEWER_SEES, Site

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _rows(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Return every inline data row of a Vega-Lite spec (Altair puts them in ``datasets``)."""
    return [row for rows in spec.get("datasets", {}).values() for row in rows]


def _spec(site: Site, path: str, role: str) -> dict[str, Any]:
    answer = site.server.get(path, token=site.tokens[role])
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    spec: dict[str, Any] = answer.json()
    assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/v6")
    return spec


def test_usage_chart_stacks_accounts_and_a_viewer_sees_only_its_own(site: Site) -> None:
    everything = _rows(_spec(site, "/v1/charts/usage?top=20", "admin"))
    names = {r["series"] for r in everything}
    assert {r["resource"] for r in everything} == {"CPU-hours", "GPU-hours"}
    assert len(names - {"other"}) > len(VIEWER_SEES)  # many accounts on the site
    assert all(r["hours"] > 0 for r in everything)
    mine = _rows(_spec(site, "/v1/charts/usage?top=20", "viewer"))
    assert mine, "the viewer's accounts ran jobs in the last 30 days"
    assert {r["series"] for r in mine} <= VIEWER_SEES
    # the viewer's hours are what an admin sees for the same subtree, and less than the site's
    same = _rows(_spec(site, "/v1/charts/usage?account=physics", "admin"))
    assert sum(r["hours"] for r in mine) == pytest.approx(sum(r["hours"] for r in same))
    assert sum(r["hours"] for r in mine) < sum(r["hours"] for r in everything) / 5


def test_usage_drill_to_one_account_stacks_its_users(site: Site) -> None:
    rows = _rows(_spec(site, "/v1/charts/usage?account=physics-lab&step=week", "viewer"))
    assert rows and all(r["series"].startswith("u") or r["series"] == "other" for r in rows)
    answer = site.server.get("/v1/charts/usage?account=ml-lab", token=site.tokens["viewer"])
    assert answer.status_code == 403
    assert "ml-lab" in answer.json()["detail"]
    unknown = site.server.get("/v1/charts/usage?account=nowhere", token=site.tokens["admin"])
    assert unknown.status_code == 404


def test_usage_refuses_more_rows_than_a_chart_holds(site: Site) -> None:
    answer = site.server.get("/v1/charts/usage?start=2025-01-01&top=20", token=site.tokens["admin"])
    assert answer.status_code == 422
    assert "per week" in answer.text
    weekly = site.server.get(
        "/v1/charts/usage?start=2025-01-01&top=20&step=week", token=site.tokens["admin"]
    )
    assert weekly.status_code == 200


def test_share_tree_level_and_viewer_scope(site: Site) -> None:
    rows = _rows(_spec(site, "/v1/charts/shares?cluster=hpc", "auditor"))
    top = {r["name"] for r in rows}
    assert {"sciences", "engineering", "root"} <= top
    counted = [r["shares_share"] for r in rows if r["shares_share"] is not None]
    assert sum(counted) == pytest.approx(1.0)
    mine = _rows(_spec(site, "/v1/charts/shares?cluster=hpc", "viewer"))
    assert {r["name"] for r in mine} == {"physics-lab", "physics-hpc"}
    users = _rows(_spec(site, "/v1/charts/shares?cluster=hpc&account=physics-lab", "viewer"))
    assert users and all(r["kind"] == "user" and 0 <= r["fairshare"] <= 1 for r in users)
    hidden = site.server.get(
        "/v1/charts/shares?cluster=hpc&account=sciences", token=site.tokens["viewer"]
    )
    assert hidden.status_code == 404


def test_ingest_health_names_the_demo_source(site: Site) -> None:
    rows = _rows(_spec(site, "/v1/charts/ingest", "admin"))
    assert any(r.get("value") == "6862" for r in rows if r.get("field") == "runs landed")
    assert any(r.get("measure") == "runs landed" for r in rows)
    assert site.server.get("/v1/charts/ingest", token=site.tokens["viewer"]).status_code == 403


@pytest.mark.parametrize("chart", ["usage", "shares", "ingest", "burndown", "compliance"])
def test_png_and_svg_export(site: Site, chart: str) -> None:
    png = site.server.get(f"/v1/charts/{chart}?format=png", token=site.tokens["admin"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(PNG_SIGNATURE) and len(png.content) > 10_000
    width = int.from_bytes(png.content[16:20], "big")
    assert width > 600
    svg = site.server.get(f"/v1/charts/{chart}?format=svg", token=site.tokens["admin"])
    assert svg.headers["content-type"] == "image/svg+xml"
    assert f'filename="{chart}' in svg.headers["content-disposition"]
    assert svg.headers["content-disposition"].endswith('.svg"')
    root = ET.fromstring(svg.content)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    marks = [e for e in root.iter() if "role-mark" in e.get("class", "")]
    assert marks, "the SVG holds Vega marks"
    refused = site.server.get(f"/v1/charts/{chart}?format=png", token=site.tokens["scheduler"])
    assert refused.status_code == 403


def test_pages_are_shells_without_data(site: Site) -> None:
    index = site.server.get("/dashboards")
    assert index.status_code == 200
    for name in ("usage", "shares", "ingest", "burndown", "compliance"):
        assert f"/dashboards/{name}" in index.text
        page = site.server.get(f"/dashboards/{name}")
        assert page.status_code == 200 and f"/v1/charts/{name}" in page.text
        assert "sessionStorage" in page.text and "cdn" not in page.text.lower()
    assert site.server.get("/dashboards/nowhere").status_code == 404
    bundle = site.server.get("/dashboards/assets/vega.js")
    assert bundle.status_code == 200 and "window.vegaEmbed" in bundle.text
    assert bundle.headers["content-encoding"] == "gzip"  # httpx asked for it and unpacked it
    assert int(bundle.headers["content-length"]) < len(bundle.content) / 2
    again = site.server.get(
        "/dashboards/assets/vega.js", headers={"If-None-Match": bundle.headers["etag"]}
    )
    assert again.status_code == 304


def test_burndown_of_a_grant_and_viewer_sees_only_its_grants(site: Site) -> None:
    spec = _spec(site, "/v1/charts/burndown?grant=DOE-ASCR-ML", "finance")
    rows = _rows(spec)
    actual = [r for r in rows if r.get("series") == "spent so far"]
    forecast = [r for r in rows if r.get("series") == "forecast"]
    assert actual and forecast, "the demo grant has spent and keeps burning"
    assert actual[0]["remaining"] == pytest.approx(60000.0)  # nothing spent on its first day
    assert all(a["remaining"] >= b["remaining"] for a, b in itertools.pairwise(actual))
    assert forecast[0]["day"] == actual[-1]["day"]  # the forecast starts where spending ends
    assert "DOE-ASCR-ML" in str(spec["title"])
    # the chart draws the burn-down of the grant's statement for this month
    period = datetime.now(UTC).strftime("%Y-%m")
    document = site.server.get(
        f"/v1/grants/DOE-ASCR-ML/statements/{period}?summary=true", token=site.tokens["finance"]
    ).json()
    drawn = {(r["day"][:10], r["series"]): r["remaining"] for r in actual + forecast}
    for point in document["burndown"]:
        series = "forecast" if point["forecast"] else "spent so far"
        assert drawn[(point["day"], series)] == pytest.approx(float(point["remaining"]))
    assert len(drawn) == len(document["burndown"]) + 1  # the forecast starts at the last day
    # physics' viewer sees the physics grant (by default) and not the ML one
    mine = _spec(site, "/v1/charts/burndown", "viewer")
    assert "NSF-PHY-2231" in str(mine["title"])
    hidden = site.server.get("/v1/charts/burndown?grant=DOE-ASCR-ML", token=site.tokens["viewer"])
    assert hidden.status_code == 404 and "NSF-PHY-2231" in hidden.json()["detail"]


def test_compliance_counts_the_stored_verdicts_per_grant(site: Site) -> None:
    rows = _rows(_spec(site, "/v1/charts/compliance?days=3660", "auditor"))
    grants = {r["grant_id"] for r in rows}
    assert grants == {"NIH-R01-GM123", "DOE-ASCR-ML"}  # the grants with a regime
    for grant in grants:
        summary = site.server.get(f"/v1/compliance/{grant}", token=site.tokens["auditor"]).json()
        charted: dict[str, int] = {}
        for r in rows:
            if r["grant_id"] == grant:
                charted[r["verdict"]] = charted.get(r["verdict"], 0) + r["runs"]
        stored = {k: v for k, v in summary["counts"].items() if v}
        assert charted == stored, grant  # the chart counts what /v1/compliance reports
    recent = _rows(_spec(site, "/v1/charts/compliance?days=7", "auditor"))
    assert 0 < sum(r["runs"] for r in recent) < sum(r["runs"] for r in rows)
    viewer = site.server.get("/v1/charts/compliance", token=site.tokens["viewer"])
    assert viewer.status_code == 403


def test_usage_dates_are_whole_utc_days_with_the_end_included(site: Site) -> None:
    day = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%d")
    rows = _rows(_spec(site, f"/v1/charts/usage?start={day}&end={day}", "admin"))
    assert rows and {r["bucket_at"][:10] for r in rows} == {day}
    two = _rows(_spec(site, f"/v1/charts/usage?start={day}&step=week", "admin"))
    assert len({r["bucket_at"] for r in two}) in (1, 2)  # this week, and the last if it began
    backwards = site.server.get(
        f"/v1/charts/usage?start={day}&end=2020-01-01", token=site.tokens["admin"]
    )
    assert backwards.status_code == 422
