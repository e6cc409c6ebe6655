"""Fakes for the scheduled JSON source tests: a real HTTP server standing in for slurmrestd,
and the answers of the fake sacct (``tests/fakes/fake_sacct.py``)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from api.settings import SacctSource

FAKE_SACCT = Path(__file__).resolve().parents[1] / "fakes" / "fake_sacct.py"


class Slurmrestd:
    """Answers ``/slurmdb/v0.0.NN/jobs`` from a queue of (status, body), the last answer
    repeated, each after ``delay_s``; records every request's path, query (parsed and raw) and
    headers."""

    def __init__(self, first: str) -> None:
        self.answers: list[tuple[int, str]] = [(200, first)]
        self.requests: list[dict[str, Any]] = []
        self.delay_s = 0.0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                outer.requests.append(
                    {"path": parts.path, "query": parse_qs(parts.query), "raw": parts.query,
                     "headers": dict(self.headers)}
                )  # fmt: skip
                status, body = outer.answers.pop(0) if len(outer.answers) > 1 else outer.answers[0]
                time.sleep(outer.delay_s)
                data = body.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (a timeout)
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *texts: str | None) -> None:
    """Make the fake sacct answer ``texts`` in turn (None: fail), then the last one again."""
    directory = tmp_path / f"answers-{len(list(tmp_path.glob('answers-*')))}"
    directory.mkdir()
    for i, text in enumerate(texts):
        name = f"{i:02d}.fail" if text is None else f"{i:02d}.json"
        (directory / name).write_text(text or "sacct: error: slurmdbd down", encoding="utf-8")
    monkeypatch.setenv("FAKE_SACCT_OUTPUT_DIR", str(directory))


def json_source(**overrides: Any) -> SacctSource:
    """Return a ``sacct_json`` source of cluster lab run by the fake sacct, no retries or waits."""
    settings: dict[str, Any] = {
        "name": "json-lab", "kind": "sacct_json", "cluster": "lab", "command": str(FAKE_SACCT),
        "initial_start": "2026-11-29T00:00:00", "backoff_s": 0, "retries": 0,
        "min_interval_s": 0, "lookback_s": 3600,
    }  # fmt: skip
    return SacctSource(**{**settings, **overrides})
