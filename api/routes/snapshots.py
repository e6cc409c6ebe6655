"""Published snapshots, and (admin only) a recompute for another time that is not published."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.auth import ADMIN, AUDITOR, SCHEDULER, require
from api.deps import ServiceDep
from api.schemas import FactorsPublic, Problem, SnapshotInfo, SnapshotList
from models.store.snapshots import list_snapshots

router = APIRouter(tags=["snapshots"])


@router.get(
    "/v1/snapshots",
    dependencies=[require(SCHEDULER, AUDITOR, ADMIN, only={"as_of": (ADMIN,)})],
    responses={
        200: {
            "model": SnapshotList | FactorsPublic,
            "description": "the snapshots, newest first; with `as_of`, the factors at that "
            "time from the runs and policy known now (snapshot_id null: not published)",
        },
        **{s: {"model": Problem} for s in (401, 403, 422, 503)},
    },
)
def snapshots(
    service: ServiceDep,
    as_of: Annotated[
        datetime | None, Query(description="ISO 8601; without a zone it is UTC (admin only)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """Return the published snapshots, or the factors recomputed for ``as_of``."""
    if as_of is not None:
        moment = as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of.astimezone(UTC)
        computed = service.compute_at(moment)
        return Response(
            computed.json, media_type="application/json", headers={"Cache-Control": "no-store"}
        )
    with service.store.reading() as cur:
        page, total = list_snapshots(cur, limit=limit, offset=offset)
    data = [
        SnapshotInfo.model_validate({**row, "factors_kept": row["factors_pruned_at"] is None})
        for row in page.iter_rows(named=True)
    ]
    body = SnapshotList(data=data, count=total).model_dump_json().encode()
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-cache"})
