"""A real ``fairledger serve`` (uvicorn) on 127.0.0.1 for end-to-end tests.

Tests talk to it with httpx over TCP, as a scheduler would (no TestClient: it warns with this
httpx, and it would not exercise uvicorn, the lifespan or the scheduler threads).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
FAKES = ROOT / "tests" / "fakes"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str, db: Path | None = None, config: Path | None = None) -> list[str]:
    """Return the command line of ``fairledger`` with ``args``."""
    options = [*(["--db", str(db)] if db else []), *(["--config", str(config)] if config else [])]
    return [sys.executable, "-m", "api", *options, *args]


def base_env(**extra: str) -> dict[str, str]:
    return {
        "PYTHONPATH": str(ROOT),
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),
        **extra,
    }


def wait_until(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Return the first truthy ``check()``; fail after ``timeout`` seconds naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@dataclass
class LiveServer:
    base: str
    process: subprocess.Popen[str]
    log: Path

    def request(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.request(method, self.base + path, headers=headers, timeout=30, **kwargs)

    def get(self, path: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, token=token, **kwargs)

    def wait_for_snapshot(self, token: str, *, timeout: float = 30) -> httpx.Response:
        """Return the first 200 answer of /v1/factors."""

        def ready() -> httpx.Response | None:
            answer = self.get("/v1/factors", token=token)
            return answer if answer.status_code == 200 else None

        return wait_until(ready, timeout=timeout, what="a first factor snapshot")

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def live_server(
    tmp: Path,
    *,
    db: Path | None = None,
    config: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 30,
) -> Iterator[LiveServer]:
    """Run ``fairledger serve`` until the block ends; its output goes to ``tmp/server.log``."""
    port = free_port()
    log = tmp / f"server-{port}.log"
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(
            cli("serve", "--port", str(port), db=db, config=config),
            env=base_env(**(env or {})),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log)

    def healthy() -> bool:
        assert process.poll() is None, f"server exited early:\n{server.output()}"
        try:
            return server.get("/v1/health").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(healthy, timeout=timeout, what="the server to answer /v1/health")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def demo_store(db: Path, *, viewer_accounts: list[str] | None = None) -> dict[str, str]:
    """Load the demo site into a new store at ``db``; return a token for every role
    ({role: token}), the viewer's scoped to ``viewer_accounts`` (default ``["physics"]``)."""
    from api.auth import Role, create_token
    from api.demo import load_demo
    from models.store import open_store

    con = open_store(db)
    try:
        load_demo(con)
        scoped = viewer_accounts or ["physics"]
        return {
            role.value: create_token(con, role, accounts=scoped if role is Role.viewer else None)[1]
            for role in Role
        }
    finally:
        con.close()
