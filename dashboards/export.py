"""Charts as files and the JavaScript a browser renders them with, both by vl-convert.

vl-convert embeds the same Vega and Vega-Lite as the page's bundle, so an exported PNG or SVG
is the chart the page shows, drawn without a browser.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from dataclasses import dataclass
from typing import Any

import altair as alt
import vl_convert as vlc

# The Vega-Lite version Altair writes (``v6.4.1`` -> ``6.4``), which vl-convert also renders.
VL_VERSION = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
PNG_SCALE = 2  # pixels per CSS pixel: sharp on high-density screens and in print


def chart_svg(spec: dict[str, Any]) -> bytes:
    """Return the Vega-Lite ``spec`` drawn as SVG (UTF-8 bytes)."""
    return vlc.vegalite_to_svg(spec, vl_version=VL_VERSION).encode()


def chart_png(spec: dict[str, Any]) -> bytes:
    """Return the Vega-Lite ``spec`` drawn as PNG bytes."""
    return bytes(vlc.vegalite_to_png(spec, vl_version=VL_VERSION, scale=PNG_SCALE))


# What the bundle exports: the three libraries as globals, for the pages' module script.
_GLOBALS = "window.vegaEmbed = vegaEmbed; window.vega = vega; window.vegaLite = vegaLite;"


@dataclass(frozen=True)
class Bundle:
    """The JavaScript bundle, plain and gzipped, and its strong ETag."""

    body: bytes
    gzipped: bytes
    etag: str


@functools.cache
def vega_bundle() -> Bundle:
    """Return the Vega, Vega-Lite and vega-embed JavaScript bundle.

    The bundle sets ``window.vega``, ``window.vegaLite`` and ``window.vegaEmbed``; it is an ES
    module, loaded with ``<script type="module">``. Made once per process (about a second);
    gzipped once too (0.9 MB becomes about a quarter of that).
    """
    body = vlc.javascript_bundle(_GLOBALS, vl_version=VL_VERSION).encode()
    gzipped = gzip.compress(body, compresslevel=9, mtime=0)
    return Bundle(body, gzipped, f'"{hashlib.sha256(body).hexdigest()}"')
