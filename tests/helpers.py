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
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn

from bridge.records import NewEvent

T = TypeVar("T")

EXECUTABLE_VARIABLE = "BRIDGE_TEST_EXECUTABLE"
# the example configuration that `ticketbridge init` writes, from the bridge under test
EXAMPLE = Path(str(resources.files("bridge") / "example"))


def ticketbridge_command() -> list[str]:
    """The `ticketbridge` the end-to-end tests run: the one BRIDGE_TEST_EXECUTABLE names (CI's
    wheel stage names the script of the wheel it installed), else the development install's."""
    named = os.environ.get(EXECUTABLE_VARIABLE)
    return [named] if named else [sys.executable, "-m", "bridge"]


def ticketbridge(
    *arguments: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run one `ticketbridge` command to its end, as a user at a shell would."""
    return subprocess.run(
        [*ticketbridge_command(), *arguments],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ticketbridge_json(*arguments: str, cwd: Path | None = None) -> Any:
    """The JSON a `ticketbridge ... --json` command printed; fails with its stderr otherwise."""
    done = ticketbridge(*arguments, "--json", cwd=cwd)
    assert done.returncode == 0, f"ticketbridge {' '.join(arguments)}: {done.stderr}"
    return json.loads(done.stdout)


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


@contextlib.contextmanager
def serving(app: Any, *, what: str) -> Iterator[str]:
    """An ASGI app under a real uvicorn on a free 127.0.0.1 port, in a thread; yields its URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    poll(lambda: server.started, timeout=10, what=f"{what} to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def show_event(capsys: Any, db: str, event_id: str) -> dict[str, Any]:
    """`ticketbridge show EVENT_ID --json` through the CLI: the event detail of DESIGN §4.1."""
    from bridge.cli import main

    assert main(["show", event_id, "--db", db, "--json"]) == 0
    detail: dict[str, Any] = json.loads(capsys.readouterr().out)
    return detail


def settled_event(capsys: Any, db: str, event_id: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """The event's detail once it is routed and every delivery finished (done or failed)."""

    def check() -> dict[str, Any] | None:
        detail = show_event(capsys, db, event_id)
        return detail if detail["status"] in ("done", "failed") else None

    return poll(check, timeout=timeout, what=f"event {event_id} to settle")


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


@dataclass
class BridgeProcess:
    """A running `ticketbridge serve` or `worker` process, its log, and (serve) its URL."""

    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    def kill(self) -> None:
        """SIGKILL: a crash, nothing gets to finish, release or clean up."""
        self.process.kill()
        self.process.wait(timeout=20)

    def terminate(self, *, timeout: float = 20.0) -> int:
        """SIGTERM and wait (bounded) for the process to exit; its exit code."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.process.args!r} did not exit within {timeout}s of SIGTERM:\n"
                f"{self.log.read_text()[-3000:]}"
            ) from None


ServerProcess = WorkerProcess = BridgeProcess


@contextlib.contextmanager
def _bridge_process(
    arguments: Sequence[str],
    *,
    env: Mapping[str, str] | None,
    log: Path,
    ready: Callable[[subprocess.Popen[bytes], str], bool],
    what: str,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """`ticketbridge ARGUMENTS` once `ready(process, this run's log)` holds. On leaving, a
    process still running gets SIGTERM (then SIGKILL after 20 s). `log` is appended to."""
    start = log.stat().st_size if log.exists() else 0  # only this run's lines count
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [*ticketbridge_command(), *arguments],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def check() -> bool:
        with open(log, "rb") as lines:
            lines.seek(start)
            text = lines.read().decode("utf-8", "replace")
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}:\n{text[-3000:]}")
        return ready(process, text)

    try:
        poll(check, timeout=30, interval=0.05, what=f"the {what} to be ready")
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def server_process(
    *,
    rules: Path | None,
    templates: Path | None,
    db: str | None,
    env: Mapping[str, str] | None = None,
    log: Path,
    extra: Sequence[str] = (),
    cwd: Path | None = None,
) -> Iterator[BridgeProcess]:
    """`ticketbridge serve` as a real process (real uvicorn) on a free port, once it is ready.

    The test may kill it (`server.kill()`) or stop it (`server.terminate()`) inside the block;
    on leaving, a process still running gets SIGTERM (then SIGKILL after 20 s). Start it again
    on the same `db` (and `log`, which is appended to) to play a restart; the port is new.
    `rules`, `templates` or `db` None: the option is not given (its default, relative to `cwd`).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def ready(process: subprocess.Popen[bytes], text: str) -> bool:
        try:
            return httpx.get(url + "/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    arguments = ["serve", *_config(rules, templates, db), "--host", "127.0.0.1"]
    with _bridge_process(
        [*arguments, "--port", str(port), *extra],
        env=env,
        log=log,
        ready=ready,
        what="server",
        cwd=cwd,
    ) as process:
        yield BridgeProcess(process=process, log=log, url=url)


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
    with server_process(
        rules=rules, templates=templates, db=db, env=env, log=log, extra=extra
    ) as server:
        yield server.url


@contextlib.contextmanager
def worker_process(
    *,
    rules: Path,
    templates: Path,
    db: str,
    env: Mapping[str, str] | None = None,
    log: Path,
    extra: Sequence[str] = (),
) -> Iterator[BridgeProcess]:
    """`ticketbridge worker` as a real process, once it has logged that it started.

    Like server_process: the test may `kill()` or `terminate()` it inside the block. `log` is
    appended to, so several workers may share one file only if the test does not care whose
    line is whose.
    """

    def started(process: subprocess.Popen[bytes], text: str) -> bool:
        return '"action": "worker_start"' in text

    arguments = ["worker", *_config(rules, templates, db), *extra]
    with _bridge_process(arguments, env=env, log=log, ready=started, what="worker") as process:
        yield BridgeProcess(process=process, log=log)


def _config(rules: Path | None, templates: Path | None, db: str | None) -> list[str]:
    given = {
        "--rules": rules and str(rules),
        "--templates": templates and str(templates),
        "--db": db,
    }
    return [
        part for flag, value in given.items() if value is not None for part in (flag, str(value))
    ]
