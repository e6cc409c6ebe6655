"""Pushed records: ``POST /v1/ingest`` lands a JSON Lines body (docs/ingest-jsonl.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from api.auth import ADMIN, Principal, require
from api.deps import ServiceDep
from api.schemas import IngestSummary, Problem, QuarantinedLine
from api.service import Service
from ingest.load import write_parsed
from ingest.sources.jobs_jsonl import parse_jobs_jsonl
from models.errors import ParseError
from models.store.quarantine import ParsedWith

router = APIRouter(tags=["ingest"])

JSONL_TYPES = frozenset({"application/x-ndjson", "application/jsonl"})


async def _body(request: Request, limit: int) -> bytes:
    """Return the request body, or raise 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the body has {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _land(service: Service, text: str, source: str) -> IngestSummary:
    """Parse and land ``text`` as one batch of ``source``; return what it did."""
    started_at = datetime.now(UTC)
    batch = parse_jobs_jsonl(text, source=source)
    if batch.lines_read == 0:
        raise ParseError("the body holds no records (one JSON object per line)")
    with service.store.write() as cur:
        summary = write_parsed(
            cur,
            batch,
            source=source,
            scheduler="push",
            started_at=started_at,
            parsed_with=ParsedWith("jsonl"),
            advance_watermark=True,
        )
    if summary.runs_new + summary.runs_changed:
        service.request_recompute()
    return IngestSummary(
        batch_id=summary.batch_id,
        source=source,
        lines_read=summary.lines_read,
        runs_new=summary.runs_new,
        runs_changed=summary.runs_changed,
        runs_unchanged=summary.runs_unchanged,
        quarantined=summary.quarantined,
        quarantine=[
            QuarantinedLine(line=row["line_no"], field=row["field"] or "", reason=row["reason"])
            for row in batch.quarantine.iter_rows(named=True)
        ],
    )


@router.post(
    "/v1/ingest",
    dependencies=[require(ADMIN)],
    responses={s: {"model": Problem} for s in (401, 403, 413, 415, 422)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {t: {"schema": {"type": "string"}} for t in sorted(JSONL_TYPES)},
        }
    },
)
async def ingest(
    request: Request,
    service: ServiceDep,
    source: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description='source name [default: "push:<token id>"]'),
    ] = None,
) -> IngestSummary:
    """Land pushed JSON Lines records as one batch; bad lines are quarantined, the rest land."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in JSONL_TYPES:
        raise HTTPException(
            415, f"send JSON Lines as {' or '.join(sorted(JSONL_TYPES))}, not {media or 'nothing'}"
        )
    body = await _body(request, service.settings.ingest_max_bytes)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"the body is not UTF-8: {exc}") from exc
    principal: Principal = request.state.principal
    name = source or f"push:{principal.token_id}"
    # parsing and the write lock may take a while: off the event loop
    return await run_in_threadpool(_land, service, text, name)
