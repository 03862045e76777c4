"""What the scenarios share: the options, the run's directory, starting the yardsticks and
the fake helpdesk, and one measured wrk run (warm-up, then CPU and RSS around the run)."""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.load import CONNECTIONS, Load, WrkResult, finish
from bench.processes import Running, free_port, http_ok, start
from bench.report import Row, median, paired_ratio

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


def sqlite_count(path: Path, sql: str) -> int:
    """One integer from a read of the product's SQLite file (read-only, beside its writer)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        value = connection.execute(sql).fetchone()[0]
        return int(value or 0)
    finally:
        connection.close()


def wait_until(
    check: Callable[[], object], *, timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll `check()` until truthy; MeasurementFailed after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise MeasurementFailed(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


@dataclass(frozen=True, kw_only=True)
class Drained:
    """`worker` draining a stored backlog: events per second from the store's own timestamps
    (the batch's first routing to its last attempt's end, so start-up is not in it), CPU µs
    per event while draining, the worker's RSS at the end."""

    events: int
    rate: float
    cpu_us: float
    rss_mb: float

    @property
    def us_per_event(self) -> float:
        return 1e6 / self.rate if self.rate > 0 else float("inf")


_UNROUTED = "SELECT count(*) FROM events WHERE routed_at IS NULL"
_ACCEPTED = "SELECT count(*) FROM events WHERE status = 'accepted'"


def drain_stored(
    bench: Bench,
    name: str,
    *,
    rules: int,
    events: int,
    before: Callable[[Path, Path, Path, str], None] | None = None,
    lifecycle: Callable[[Running, Path, Path], None] | None = None,
) -> Drained:
    """Store `events` with `serve --no-worker` and wrk, then drain them with `worker` and the
    `log` provider. `before(where, rules, templates, db)` runs first, on the configuration
    and an empty store (to fill it with history). With `lifecycle`, the rules are
    product.lifecycle_yaml's and `lifecycle(server, rules, templates)` stores the events."""
    from bench import product

    where = bench.fresh(name)
    rules_dir, templates = product.write_config(
        where, rules=rules, provider=product.log_provider(), lifecycle=lifecycle is not None
    )
    path = where / "bridge.db"
    db = f"sqlite:///{path}"
    if before is not None:
        before(where, rules_dir, templates, db)
    server = product.serve(rules_dir, templates, db=db, log=where / "serve.log", worker=False)
    try:
        if lifecycle is None:
            ingest_stored(bench, server, events)
        else:
            lifecycle(server, rules_dir, templates)
    finally:
        server.stop()
    waiting = sqlite_count(path, _UNROUTED)
    started = time.time()  # the store's clock is the wall clock: the batch is what comes after
    worker = product.worker(rules_dir, templates, db=db, log=where / "worker.log")
    try:
        wait_until(lambda: sqlite_count(path, _UNROUTED) < waiting, timeout=120, what="routing")
        cpu_start, left = worker.cpu(), sqlite_count(path, _ACCEPTED)
        wait_until(
            lambda: sqlite_count(path, _ACCEPTED) == 0,
            timeout=max(120.0, waiting / 20),
            what=f"{waiting} events done",
            interval=0.1,
        )
        cpu = worker.cpu() - cpu_start
        rss = worker.rss()
    finally:
        worker.stop()
    span = sqlite_span(path, since=started)
    if span <= 0:
        raise MeasurementFailed("no routing or attempt times in the store")
    return Drained(
        events=waiting, rate=waiting / span, cpu_us=cpu / max(1, left) * 1e6, rss_mb=rss / MB
    )


def sqlite_span(path: Path, *, since: float = 0.0) -> float:
    """Seconds from the first routing to the last attempt's end, of what happened after
    `since` (epoch seconds), in the store's own clock."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        (first,) = connection.execute(
            "SELECT min(routed_at) FROM events WHERE routed_at >= ?", (since,)
        ).fetchone()
        (last,) = connection.execute(
            "SELECT max(started_at + duration) FROM attempts WHERE started_at >= ?", (since,)
        ).fetchone()
    finally:
        connection.close()
    return float(last - first) if first is not None and last is not None else 0.0


def drained_rows(
    scenario: str, runs: dict[str, list[Drained]], *, compared: str, target: float
) -> list[Row]:
    """A row for each of `runs` (what: its drains), then one for the cost per event of the
    last against the first (rates paired round by round), with its target."""
    rows = [
        Row(
            scenario=scenario,
            what=what,
            rate=median([d.rate for d in drained]),
            unit="ev/s",
            cpu_us=median([d.cpu_us for d in drained]),
            rss_mb=median([d.rss_mb for d in drained]),
        )
        for what, drained in runs.items()
    ]
    first, *_, last = runs.values()
    ratio = paired_ratio([d.rate for d in first], [d.rate for d in last])  # cost is 1/rate
    rows.append(
        Row(
            scenario=scenario,
            what=f"cost per event, {compared}",
            ratio="-" if ratio is None else f"{ratio:.2f}×",
            target=f"≤{target}×",
            met=ratio is not None and ratio <= target,
        )
    )
    return rows
