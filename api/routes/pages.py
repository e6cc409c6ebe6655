"""The landing page: what is served, and a box to paste a token and see the factors.

The page itself shows no factors (it is public); its script fetches ``/v1/factors?format=sshare``
with the pasted token, so a browser sees exactly what that token's role allows.
"""

from __future__ import annotations

import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api.auth import public
from api.deps import ServiceDep

router = APIRouter(tags=["pages"])

_SCRIPT = """
<script>
async function show(event) {
  event.preventDefault();
  const token = document.getElementById('token').value.trim();
  const out = document.getElementById('out');
  const answer = await fetch('/v1/factors?format=sshare',
                             {headers: {'Authorization': 'Bearer ' + token}});
  const text = await answer.text();
  out.textContent = answer.ok ? text : answer.status + ' ' + text;
}
</script>
"""


@router.get("/", response_class=HTMLResponse, dependencies=[public()])
async def index(service: ServiceDep) -> str:
    """Return the landing page."""
    snapshot = service.snapshot
    if snapshot is None:
        what = "<p>No factor snapshot yet: the first recompute is running.</p>"
    else:
        meta = snapshot.meta
        what = (
            f"<p>Snapshot {meta.snapshot_id}: fair-share factors of {snapshot.count} "
            f"associations as of {html.escape(meta.as_of.isoformat())} "
            f"(policy version {meta.policy_version}, {meta.run_count} runs).</p>"
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>fairledger</title>"
        f"{_SCRIPT}</head><body><h1>fairledger</h1>{what}"
        "<form onsubmit='show(event)'><label>Token <input id='token' size='60' "
        "autocomplete='off'></label> <button>Show factors</button></form>"
        "<p><a href='/dashboards'>Dashboards</a>: usage, shares, ingest, grants, compliance.</p>"
        "<p>The factors in the layout of <code>sshare -a -l -P</code>; "
        "API: <a href='/docs'>/docs</a>, "
        "<code>curl -H 'Authorization: Bearer TOKEN' http://HOST/v1/factors</code>.</p>"
        "<pre id='out'></pre></body></html>"
    )
