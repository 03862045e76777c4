"""A started server or worker process: readiness, CPU time and RSS from /proc, stopping.

stdlib only (no psutil): CPU is utime + stime of /proc/PID/stat, RSS is VmRSS of
/proc/PID/status.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


class ProcessError(Exception):
    """A process did not start, or died."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14, 15)


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid` now."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def family(pid: int) -> list[int]:
    """`pid` and every process descended from it."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def _alive_or_zero(read: Callable[[int], float | int], pid: int) -> float:
    try:
        return read(pid)
    except (OSError, IndexError, ValueError):
        return 0  # it ended meanwhile


def http_ok(url: str) -> bool:
    """Whether GET `url` answers 2xx within a second."""
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return 200 <= int(answer.status) < 300
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Running:
    """A process started by the harness, with its log file and, for a server, its URL."""

    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""
    started_at: float = 0.0  # time.monotonic() at Popen

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu(self) -> float:
        """Of the process and its descendants (`serve --processes N` runs N children)."""
        return sum(_alive_or_zero(cpu_seconds, pid) for pid in family(self.pid))

    def rss(self) -> int:
        return int(sum(_alive_or_zero(rss_bytes, pid) for pid in family(self.pid)))

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(
    command: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    ready: Callable[[Running], bool],
    url: str = "",
    timeout: float = 60.0,
    cwd: Path | None = None,
) -> Running:
    """Start `command` (output to `log`) and wait until `ready` holds; ProcessError if it
    exits or is not ready within `timeout` seconds."""
    with open(log, "ab") as out:
        process = subprocess.Popen(
            list(command),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
    running = Running(process=process, log=log, url=url, started_at=time.monotonic())
    deadline = time.monotonic() + timeout
    while not ready(running):
        if not running.alive():
            raise ProcessError(
                f"{command[2:4]} exited with {process.returncode}:\n{running.tail()}"
            )
        if time.monotonic() > deadline:
            running.stop()
            raise ProcessError(f"{command[2:4]} not ready after {timeout:g} s:\n{running.tail()}")
        time.sleep(0.05)
    return running
