"""Small things many tests need: free ports, bounded polling, config trees, a real server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

from bridge.store.base import NewEvent

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll(
    check: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "condition",
) -> T:
    """Call `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def shop_event(number: int, payload: Any) -> NewEvent:
    """A stored-ready JSON event of source `shop`, numbered for a stable, sortable id."""
    return NewEvent(
        id=f"evt_{number:026d}",
        source="shop",
        received_at=1.0e9 + number,
        headers={},
        query={},
        payload=json.dumps(payload),
        raw=None,
        content_type="application/json",
        dedupe_key=None,
    )


def write_tree(root: Path, files: Mapping[str, str]) -> Path:
    """Write {relative path: text} under root (text is dedented)."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


@contextlib.contextmanager
def running_server(
    *,
    rules: Path,
    templates: Path,
    db: str,
    env: Mapping[str, str] | None = None,
    log: Path,
    extra: Sequence[str] = (),
) -> Iterator[str]:
    """`ticketbridge serve` as a real process (real uvicorn) on a free port; yields its URL."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "bridge",
        "serve",
        "--rules",
        str(rules),
        "--templates",
        str(templates),
        "--db",
        db,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
    ]
    with open(log, "ab") as out:
        process = subprocess.Popen(
            command, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(
                f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            return httpx.get(url + "/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        poll(ready, timeout=30, interval=0.05, what="the server to be ready")
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
