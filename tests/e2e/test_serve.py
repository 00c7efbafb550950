"""`lendsafe serve` starts a real HTTP server with OpenAPI docs and authenticated routes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_starts_and_guards_routes(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "LENDSAFE_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
           "LENDSAFE_DATA_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "lendsafe.entrypoints.cli", "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                docs = httpx.get(f"{base}/docs", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "server did not start within 60 s"
                time.sleep(0.3)
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        spec = httpx.get(f"{base}/openapi.json", timeout=5).json()
        assert "/loans/{loan_id}/payments" in spec["paths"]
        assert httpx.get(f"{base}/loans/1", timeout=5).status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=20)
        if process.stderr:
            process.stderr.close()
