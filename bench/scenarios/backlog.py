"""backlog and history: the worker's cost per event as the store fills, on SQLite and on
PostgreSQL (a fresh schema per drain; skipped when none answers).

backlog: 1,000, 10,000 and 100,000 events (--quick: 1,000 and 10,000) stored by `serve
--no-worker`, then drained by `worker` (the `log` provider, a correlate unique per event);
the cost per event at the largest backlog against the smallest.

history: a batch of 5,000 events (--quick: 1,000) drained into an empty store and into one
already holding 1,000,000 finished events (--quick: 100,000): each with its delivery, its
attempt, its entry in the ticket map and its dedupe key, copies of one lifecycle that the
product made itself, so the rows are the product's own. Cost per event against the empty
store's.
"""

from __future__ import annotations

from pathlib import Path

from bench import product
from bench.report import Row
from bench.scenarios.common import Bench, Skipped, ingest_stored, wait_until
from bench.scenarios.databases import Database, postgres_schemas
from bench.scenarios.drain import ACCEPTED, Drained, drain_stored, drained_rows

TARGET = 1.3  # cost per event, largest against smallest
WHAT = "worker, log provider, correlate per event"


def _backends(bench: Bench, scenario: str) -> tuple[list[str], list[Row]]:
    """The backends to run on, and a row saying why PostgreSQL is left out if it is."""
    try:
        postgres_schemas(bench.options.postgres_url)
    except Skipped as exc:
        return ["SQLite"], [Row(scenario=scenario, what="PostgreSQL", note=f"skipped: {exc}")]
    return ["SQLite", "PostgreSQL"], []


def run_backlog(bench: Bench) -> list[Row]:
    bench.need_load()
    sizes = (1_000, 10_000) if bench.options.quick else (1_000, 10_000, 100_000)
    backends, rows = _backends(bench, "backlog")
    for backend in backends:
        drained: dict[int, list[Drained]] = {size: [] for size in sizes}
        for _ in range(bench.options.rounds):
            for size in sizes:
                drained[size].append(
                    drain_stored(bench, f"backlog-{size}", rules=1, events=size, backend=backend)
                )
        rows += drained_rows(
            "backlog",
            {f"{WHAT}, {backend}: {size:,} waiting": runs for size, runs in drained.items()},
            compared=f"{sizes[-1]:,} against {sizes[0]:,} waiting, {backend}",
            target=TARGET,
        )
    return rows


def run_history(bench: Bench) -> list[Row]:
    bench.need_load()
    batch = 1_000 if bench.options.quick else 5_000
    history = 100_000 if bench.options.quick else 1_000_000
    backends, rows = _backends(bench, "history")
    for backend in backends:
        empty: list[Drained] = []
        full: list[Drained] = []
        for _ in range(bench.options.rounds):
            empty.append(
                drain_stored(bench, "history-empty", rules=1, events=batch, backend=backend)
            )
            full.append(
                drain_stored(
                    bench,
                    "history-full",
                    rules=1,
                    events=batch,
                    backend=backend,
                    before=lambda where, rules, templates, database: _fill(
                        bench, where, rules, templates, database, history
                    ),
                )
            )
        rows += drained_rows(
            "history",
            {
                f"{WHAT}, {backend}: {batch:,} into an empty store": empty,
                f"{WHAT}, {backend}: {batch:,} into {history:,} finished": full,
            },
            compared=f"{history:,} finished against an empty store, {backend}",
            target=TARGET,
        )
    return rows


def _fill(
    bench: Bench, where: Path, rules: Path, templates: Path, database: Database, count: int
) -> None:
    """`count` finished events in `database`: one lifecycle made by the product (an event
    stored, routed and delivered; wrk may send one or two more), then copied with new ids,
    older than it."""
    db = database.url
    server = product.serve(rules, templates, db=db, log=where / "seed.log", worker=False)
    try:
        ingest_stored(bench, server, 1)
    finally:
        server.stop()
    worker = product.worker(rules, templates, db=db, log=where / "seed.log")
    try:
        wait_until(
            lambda: database.count(ACCEPTED) == 0,
            timeout=60,
            what="the seed events to be delivered",
        )
    finally:
        worker.stop()
    database.copy_lifecycle(count)
