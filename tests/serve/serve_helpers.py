"""Small helpers shared by the REST service tests."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def wait_ready(client: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError(f"not ready after {timeout}s: {client.get('/readyz').json()}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_subprocess(models: list[str], db: Path, log_file: Path, **options: Any) -> Iterator[tuple[str, Any]]:
    """`shipyard serve` (``models`` as NAME=PATH, keys in ``db``, ``options`` as serve_command's keywords) in a
    subprocess on a free loopback port, once ready; yields (base_url, process) and stops it afterwards."""
    port = free_port()
    extra = "".join(f", {k}={v!r}" for k, v in options.items())
    code = (
        "import logging, sys; from pathlib import Path; "
        "logging.basicConfig(level=logging.INFO, stream=sys.stderr); "
        "from shipyard.cli.serve import serve_command; "
        f"serve_command({models!r}, host='127.0.0.1', port={port}, store=Path({str(db)!r}){extra})"
    )
    with open(log_file, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"server exited: {log_file.read_text()[-3000:]}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=1.0).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"server not ready: {log_file.read_text()[-3000:]}"
            time.sleep(0.1)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
