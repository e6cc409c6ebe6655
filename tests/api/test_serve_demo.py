"""What `make run` does: load the demo site, then serve it with a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "api", "--db", str(db), *args]


def test_demo_loads_once_and_is_served(tmp_path: Path) -> None:
    db = tmp_path / "demo.duckdb"
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    first = subprocess.run(_cli(db, "demo"), capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    assert "1091 new runs" in first.stdout and "0 quarantined" in first.stdout
    again = subprocess.run(_cli(db, "demo"), capture_output=True, text=True, env=env)
    assert "already loaded" in again.stdout

    port = _free_port()
    server = subprocess.Popen(
        _cli(db, "serve", "--port", str(port)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health").text == "ok":
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, "server exited early"
            assert time.monotonic() < deadline, "server did not answer within 30 s"
            time.sleep(0.2)
        page = httpx.get(f"{base}/")
        assert page.status_code == 200
        assert "Account|User|RawShares|NormShares|RawUsage" in page.text
        assert "ml-lab|heidi" in page.text
        # while the server holds the store, a CLI writer is refused with a clear message
        refused = subprocess.run(_cli(db, "demo"), capture_output=True, text=True, env=env)
        assert refused.returncode == 1 and "fairledger serve" in refused.stderr
    finally:
        server.terminate()
        server.communicate(timeout=30)
