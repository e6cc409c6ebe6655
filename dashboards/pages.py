"""The dashboard pages: static HTML shells that ask for a token once and draw a chart.

A page holds no data, so it is public and cacheable. Its script keeps the pasted token in
``sessionStorage`` (gone when the tab closes; never a cookie, so no request is made with it
unless the script adds it), fetches the chart's Vega-Lite spec with ``Authorization: Bearer``
from ``/v1/charts/<name>`` with the page's own query string, and draws it with vega-embed,
which the app serves itself (``/dashboards/assets/vega.js``; no CDN). The server applies the
token's role and account scope when it builds the spec, exactly as for any API call.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

BUNDLE_PATH = "/dashboards/assets/vega.js"
TOKEN_KEY = "fairledger.token"


@dataclass(frozen=True)
class Control:
    """One field of a page's form; its value goes to the chart route as a query parameter."""

    name: str
    label: str
    kind: str = "text"  # an <input> type, or "select"
    options: tuple[str, ...] = ()
    hint: str = ""


@dataclass(frozen=True)
class Page:
    name: str
    title: str
    chart: str  # the route that answers the chart's spec (and ?format=png|svg)
    blurb: str
    controls: tuple[Control, ...] = ()


PAGES: dict[str, Page] = {
    page.name: page
    for page in (
        Page(
            "usage",
            "Usage over time",
            "/v1/charts/usage",
            "CPU-hours and GPU-hours allocated per day or week, stacked by account (the ten "
            "largest of each resource, the rest as other). Click an account to see its users.",
            (
                Control("start", "From", "date"),
                Control("end", "To", "date"),
                Control("step", "Per", "select", ("day", "week")),
                Control("top", "Top", "number", hint="series shown by name"),
                Control("account", "Account", hint="its users, its sub-accounts included"),
            ),
        ),
        Page(
            "shares",
            "Share tree",
            "/v1/charts/shares",
            "One level of the fair-share tree as Fair Tree compares it: each child's share of "
            "the shares (S), of the parent's decayed usage (U) and, for users, the factor. "
            "Children are in Fair Tree order (descending S / U). Click an account to go down.",
            (Control("cluster", "Cluster"), Control("account", "Account")),
        ),
        Page(
            "ingest",
            "Ingest health",
            "/v1/charts/ingest",
            "Each source's last success, failures in a row and totals, and per day the runs "
            "landed, records quarantined and batches.",
            (Control("days", "Days", "number"),),
        ),
        Page(
            "burndown",
            "Grant burn-down",
            "/v1/charts/burndown",
            "A grant's remaining budget per day since it began, and the forecast at the "
            "period's burn rate (dashed) until it runs out or the grant ends.",
            (Control("grant", "Grant"), Control("period", "Period", hint="YYYY-MM")),
        ),
        Page(
            "compliance",
            "Compliance",
            "/v1/charts/compliance",
            "Runs charged to each regulated grant by verdict: approved, violation (a node, "
            "partition or cluster not certified for the grant's regime) or unknown.",
            (Control("days", "Days", "number"),),
        ),
    )
}


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
nav a { margin-right: 1rem; } form { margin: .8rem 0; } label { margin-right: .8rem; }
#message { color: #a00; white-space: pre-wrap; } #login[hidden], #view[hidden] { display: none; }
"""

_SCRIPT = """
const KEY = %(key)s, CHART = %(chart)s;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
for (const [name, value] of params) {
  const field = $('f-' + name);
  if (field) field.value = value;
}

function say(text) { $('message').textContent = text; }
function showLogin(text) { $('login').hidden = false; $('view').hidden = true; say(text || ''); }
function chartUrl(format) {
  const query = new URLSearchParams(params);
  if (format) query.set('format', format);
  const text = query.toString();
  return CHART + (text ? '?' + text : '');
}
async function call(format) {
  const answer = await fetch(chartUrl(format),
                             {headers: {'Authorization': 'Bearer ' + sessionStorage.getItem(KEY)}});
  if (answer.ok) return answer;
  let detail = answer.statusText;
  try { detail = (await answer.json()).detail; } catch (e) { /* not problem+json */ }
  if (answer.status === 401) { sessionStorage.removeItem(KEY); showLogin(detail); }
  else { say(answer.status + ': ' + detail); }
  return null;
}
async function load() {
  if (!sessionStorage.getItem(KEY)) { showLogin(''); return; }
  $('login').hidden = true; $('view').hidden = false; say('');
  const answer = await call(null);
  if (!answer) return;
  const spec = await answer.json();
  const result = await vegaEmbed('#chart', spec, {actions: false, renderer: 'svg'});
  const drill = (spec.usermeta || {}).drill;
  if (drill) {
    result.view.addEventListener('click', (event, item) => {
      const datum = item && item.datum;
      const value = datum && datum[drill.field];
      if (!value || value === 'other' || (drill.kind && datum.kind !== drill.kind)) return;
      params.set(drill.param, value);
      location.search = params.toString();
    });
  }
  document.body.dataset.rendered = 'true';
}
async function download(format) {
  const answer = await call(format);
  if (!answer) return;
  const link = document.createElement('a');
  link.href = URL.createObjectURL(await answer.blob());
  link.download = %(name)s + '.' + format;
  link.click();
  URL.revokeObjectURL(link.href);
}
$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $('token').value.trim());
  $('token').value = '';
  load();
});
$('controls').addEventListener('submit', (event) => {
  event.preventDefault();
  const query = new URLSearchParams();
  for (const field of $('controls').elements) {
    if (field.name && field.value) query.set(field.name, field.value);
  }
  location.search = query.toString();
});
$('signout').addEventListener('click', () => { sessionStorage.removeItem(KEY); showLogin(''); });
$('png').addEventListener('click', () => download('png'));
$('svg').addEventListener('click', () => download('svg'));
load();
"""


def _head(title: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)} · fairledger</title>"
        "<link rel='icon' href='data:,'>"  # no favicon request, so no 404 in the console
        f"<style>{_STYLE}</style>"
    )


def _nav() -> str:
    links = "".join(
        f"<a href='/dashboards/{p.name}'>{html.escape(p.title)}</a>" for p in PAGES.values()
    )
    return f"<nav><a href='/'>fairledger</a><a href='/dashboards'>Dashboards</a>{links}</nav>"


def _control(control: Control) -> str:
    name = html.escape(control.name)
    if control.kind == "select":
        options = "".join(f"<option>{html.escape(o)}</option>" for o in ("", *control.options))
        field = f"<select id='f-{name}' name='{name}'>{options}</select>"
    else:
        field = (
            f"<input id='f-{name}' name='{name}' type='{html.escape(control.kind)}' "
            f"placeholder='{html.escape(control.hint)}'>"
        )
    return f"<label>{html.escape(control.label)} {field}</label>"


def page_html(page: Page) -> str:
    """Return the HTML shell of ``page``."""
    script = _SCRIPT % {
        "key": json.dumps(TOKEN_KEY),
        "chart": json.dumps(page.chart),
        "name": json.dumps(page.name),
    }
    controls = "".join(_control(c) for c in page.controls)
    return (
        f"{_head(page.title)}<script type='module' src='{BUNDLE_PATH}'></script>"
        f"<script type='module'>{script}</script></head><body>{_nav()}"
        f"<h1>{html.escape(page.title)}</h1><p>{html.escape(page.blurb)}</p>"
        "<form id='login' hidden><label>Token <input id='token' type='password' size='60' "
        "autocomplete='off'></label> <button>Show</button> "
        "<small>kept in this tab only (sessionStorage)</small></form>"
        "<p id='message' role='alert'></p>"
        f"<div id='view' hidden><form id='controls'>{controls} <button>Apply</button></form>"
        "<div id='chart'></div><p><button id='png' type='button'>Download PNG</button> "
        "<button id='svg' type='button'>Download SVG</button> "
        "<button id='signout' type='button'>Forget token</button></p></div></body></html>"
    )


def index_html() -> str:
    """Return the list of dashboards."""
    items = "".join(
        f"<li><a href='/dashboards/{p.name}'>{html.escape(p.title)}</a>: "
        f"{html.escape(p.blurb)}</li>"
        for p in PAGES.values()
    )
    return (
        f"{_head('Dashboards')}</head><body>{_nav()}<h1>Dashboards</h1>"
        "<p>Each page asks for a token once per tab and shows what that token's role and "
        f"accounts may see.</p><ul>{items}</ul></body></html>"
    )
