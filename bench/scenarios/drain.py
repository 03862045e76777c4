"""`worker` draining a stored backlog, the measure of backlog, history, lifecycle, match and
deployed: events stored by `serve --no-worker` (or a lifecycle's sender), then drained by
`worker` with the `log` provider, on SQLite or on a fresh PostgreSQL schema."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.processes import Running
from bench.report import Row, median, paired_ratio
from bench.scenarios.common import MB, Bench, MeasurementFailed, ingest_stored, wait_until
from bench.scenarios.databases import Database, postgres_schemas, sqlite_file

UNROUTED = "SELECT count(*) FROM events WHERE routed_at IS NULL"
ACCEPTED = "SELECT count(*) FROM events WHERE status = 'accepted'"


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


def drain_stored(
    bench: Bench,
    name: str,
    *,
    rules: int,
    events: int,
    backend: str = "SQLite",
    before: Callable[[Path, Path, Path, Database], None] | None = None,
    lifecycle: Callable[[Running, Path, Path], None] | None = None,
) -> Drained:
    """Store `events` with `serve --no-worker` and wrk, then drain them with `worker` and the
    `log` provider, on `backend` (SQLite, PostgreSQL). `before(where, rules, templates,
    database)` runs first, on the configuration and an empty store (to fill it with
    history). With `lifecycle`, the rules are product.lifecycle_yaml's and
    `lifecycle(server, rules, templates)` stores the events."""
    from bench import product

    where = bench.fresh(name)
    rules_dir, templates = product.write_config(
        where, rules=rules, provider=product.log_provider(), lifecycle=lifecycle is not None
    )
    if backend == "SQLite":
        database, drop = sqlite_file(where / "bridge.db"), (lambda: None)
    else:
        database, drop = postgres_schemas(bench.options.postgres_url)()
    try:
        if before is not None:
            before(where, rules_dir, templates, database)
        server = product.serve(
            rules_dir, templates, db=database.url, log=where / "serve.log", worker=False
        )
        try:
            if lifecycle is None:
                ingest_stored(bench, server, events)
            else:
                lifecycle(server, rules_dir, templates)
        finally:
            server.stop()
        return _drain(
            database,
            lambda: product.worker(rules_dir, templates, db=database.url, log=where / "worker.log"),
        )
    finally:
        drop()


def _drain(database: Database, start: Callable[[], Running]) -> Drained:
    """What the worker `start()` starts takes to finish the unrouted events of `database`."""
    waiting = database.count(UNROUTED)
    started = time.time()  # the store's clock is the wall clock: the batch is what comes after
    worker = start()
    try:
        wait_until(lambda: database.count(UNROUTED) < waiting, timeout=120, what="routing")
        cpu_start, left = worker.cpu(), database.count(ACCEPTED)
        wait_until(
            lambda: database.count(ACCEPTED) == 0,
            timeout=max(120.0, waiting / 20),
            what=f"{waiting} events done",
            # the rate is from the store's timestamps: a poll need not be quick. On
            # PostgreSQL counting the accepted rows reads the table (100-130 ms at 100,000
            # waiting): every 0.5 s that was a fifth of a core taken from the drain measured
            interval=max(0.5, waiting / 20_000),
        )
        cpu = worker.cpu() - cpu_start
        rss = worker.rss()
    finally:
        worker.stop()
    span = database.span(since=started)
    if span <= 0:
        raise MeasurementFailed("no routing or attempt times in the store")
    return Drained(
        events=waiting, rate=waiting / span, cpu_us=cpu / max(1, left) * 1e6, rss_mb=rss / MB
    )


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
