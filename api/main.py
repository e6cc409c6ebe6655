"""The web application: ``create_app(settings)`` builds everything; nothing happens at import.

The server owns the DuckDB file while it runs. Until the serving issue lands it serves one page
with the fair-share factors computed once at start-up.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, PlainTextResponse

from api.settings import Settings
from models.fairshare import compute_factors
from models.store import Connection, open_store, read_active_policy, read_runs
from reports.sshare import build_sshare


def _sshare_text(con: Connection, as_of: datetime) -> str:
    active = read_active_policy(con)
    if active is None:
        return "No policy loaded yet: run `fairledger policy load FILE` or `fairledger demo`."
    factors = compute_factors(read_runs(con).lazy(), active.policy, as_of=as_of)
    return "\n".join(build_sshare(factors, algorithm=active.policy.fairshare.algorithm))


def create_app(settings: Settings) -> FastAPI:
    """Return the fairledger application for ``settings``."""
    state: dict[str, str] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The server owns the DuckDB file for as long as it runs (one writer per file).
        con = open_store(settings.db)
        try:
            as_of = datetime.now(UTC).replace(microsecond=0)
            state["as_of"] = as_of.isoformat()
            state["sshare"] = _sshare_text(con, as_of)
            yield
        finally:
            con.close()

    app = FastAPI(title="fairledger", version="0.1.0", lifespan=lifespan)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>fairledger</title></head>"
            "<body><h1>fairledger</h1>"
            f"<p>Fair-share factors as of {html.escape(state['as_of'])} "
            "(the layout of <code>sshare -a -l -P</code>).</p>"
            f"<pre>{html.escape(state['sshare'])}</pre></body></html>"
        )

    @app.get("/health", response_class=PlainTextResponse)
    def health() -> str:
        return "ok"

    return app
