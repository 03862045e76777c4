"""What the scenarios share: the options, the run's directory, starting the yardsticks and
the fake helpdesk, and one measured wrk run (warm-up, then CPU and RSS around the run)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.load import CONNECTIONS, Load, WrkResult, finish
from bench.processes import Running, free_port, http_ok, start
from bench.report import Row, median

HOOK_PATH = "/hooks/bench"
MB = 1024 * 1024


class Skipped(Exception):
    """The scenario cannot run here (no wrk, no PostgreSQL): the reason."""


class MeasurementFailed(Exception):
    """A measurement went wrong (errors under load, a process died)."""


@dataclass(frozen=True, kw_only=True)
class Options:
    rounds: int
    duration: float
    warmup: float
    quick: bool
    soak_minutes: float
    postgres_url: str


@dataclass
class Bench:
    """One harness run: options, its scratch directory, the load and the signed body."""

    options: Options
    root: Path
    body: bytes
    body_file: Path
    headers: dict[str, str]
    load: Load | None
    no_load: str = ""  # why there is no load (wrk missing)
    _serial: int = 0

    def need_load(self) -> Load:
        if self.load is None:
            raise Skipped(self.no_load)
        return self.load

    def fresh(self, name: str) -> Path:
        """A new, empty directory for one process or round."""
        self._serial += 1
        path = self.root / f"{self._serial:03d}-{name}"
        path.mkdir(parents=True)
        return path

    def yardstick(self, kind: str, *, synchronous: str = "normal") -> Running:
        """A, D (synchronous normal) or D_full (full) on a free port with a fresh database."""
        where = self.fresh(f"yardstick-{kind}-{synchronous}")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "bench.yardsticks", "serve", kind, "--port", str(port)]
        if kind == "D":
            command += ["--db", str(where / "d.db"), "--synchronous", synchronous]
        return start(command, log=where / "log", url=url, ready=lambda _: http_ok(url + "/healthz"))

    def helpdesk(self) -> Running:
        where = self.fresh("helpdesk")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        return start(
            [sys.executable, "-m", "bench.helpdesk", "--port", str(port)],
            log=where / "log",
            url=url,
            ready=lambda _: http_ok(url + "/healthz"),
        )


@dataclass(frozen=True, kw_only=True)
class Measured:
    rate: float
    p50_ms: float
    p99_ms: float
    cpu_us: float
    rss_mb: float
    requests: int


def measure(bench: Bench, servers: Sequence[Running]) -> Measured:
    """Warm up, then load every server at once for the run's duration (32 connections in
    all, split between them). Requests/s are summed; p99 is the worst server's."""
    load = bench.need_load()
    connections = CONNECTIONS // len(servers)
    if bench.options.warmup > 0:
        for process in [
            load.start(s.url + HOOK_PATH, seconds=bench.options.warmup, connections=connections)
            for s in servers
        ]:
            finish(process)
    cpu_before = sum(s.cpu() for s in servers)
    runs = [
        load.start(s.url + HOOK_PATH, seconds=bench.options.duration, connections=connections)
        for s in servers
    ]
    results: list[WrkResult] = [finish(process) for process in runs]
    cpu_after = sum(s.cpu() for s in servers)
    rss = sum(s.rss() for s in servers)
    for server in servers:
        if not server.alive():
            raise MeasurementFailed(f"a server died under load:\n{server.tail()}")
    requests = sum(r.requests for r in results)
    errors = sum(r.errors for r in results)
    if requests == 0 or errors > max(10, requests // 100):
        raise MeasurementFailed(f"{errors} errors in {requests} requests")
    return Measured(
        rate=sum(r.per_second for r in results),
        p50_ms=max(r.p50_ms for r in results),
        p99_ms=max(r.p99_ms for r in results),
        cpu_us=(cpu_after - cpu_before) / requests * 1e6,
        rss_mb=rss / MB,
        requests=requests,
    )


def row(scenario: str, what: str, runs: Sequence[Measured], **extra: object) -> Row:
    """A row of the medians of `runs`."""
    return Row(
        scenario=scenario,
        what=what,
        rate=median([m.rate for m in runs]),
        p99_ms=median([m.p99_ms for m in runs]),
        cpu_us=median([m.cpu_us for m in runs]),
        rss_mb=median([m.rss_mb for m in runs]),
        **extra,  # type: ignore[arg-type]
    )


def ingest_stored(bench: Bench, server: Running, count: int) -> None:
    """Offer `count` events to `server` with wrk (which stops after that many answers)."""
    bench.need_load().offer(server.url + HOOK_PATH, count)


def wait_until(
    check: Callable[[], object], *, timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll `check()` until truthy; MeasurementFailed after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise MeasurementFailed(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
