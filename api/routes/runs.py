"""Runs: every stored version of one run (Slurm rewrites history; fairledger keeps it)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from api.auth import ADMIN, AUDITOR, require
from api.deps import ServiceDep
from api.schemas import Problem, RunVersion, RunVersionList
from models.store.runs import read_run_versions

router = APIRouter(tags=["runs"])


@router.get(
    # run_key is "<cluster>/<JobIDRaw>/<Submit epoch s>": its slashes are part of the path
    "/v1/runs/{run_key:path}/versions",
    dependencies=[require(ADMIN, AUDITOR)],
    responses={s: {"model": Problem} for s in (401, 403, 404)},
)
def run_versions(service: ServiceDep, run_key: str) -> RunVersionList:
    """Return every content the run has had, oldest first; the last one is current."""
    with service.store.reading() as cur:
        frame = read_run_versions(cur, run_key)
    if frame.height == 0:
        raise HTTPException(404, f"no run {run_key} in the store")
    data = [RunVersion.model_validate(row) for row in frame.iter_rows(named=True)]
    return RunVersionList(run_key=run_key, data=data, count=len(data))
