"""backlog and history: the worker's cost per event as the store fills (SQLite).

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

import sqlite3
from pathlib import Path

from bench import product
from bench.report import Row
from bench.scenarios.common import (
    Bench,
    Drained,
    drain_stored,
    drained_rows,
    ingest_stored,
    sqlite_count,
    wait_until,
)

TARGET = 1.3  # cost per event, largest against smallest
WHAT = "worker, log provider, correlate per event"


def run_backlog(bench: Bench) -> list[Row]:
    bench.need_load()
    sizes = (1_000, 10_000) if bench.options.quick else (1_000, 10_000, 100_000)
    drained: dict[int, list[Drained]] = {size: [] for size in sizes}
    for _ in range(bench.options.rounds):
        for size in sizes:
            drained[size].append(drain_stored(bench, f"backlog-{size}", rules=1, events=size))
    return drained_rows(
        "backlog",
        {f"{WHAT}: {size:,} waiting": runs for size, runs in drained.items()},
        compared=f"{sizes[-1]:,} against {sizes[0]:,} waiting",
        target=TARGET,
    )


def run_history(bench: Bench) -> list[Row]:
    bench.need_load()
    batch = 1_000 if bench.options.quick else 5_000
    history = 100_000 if bench.options.quick else 1_000_000
    empty: list[Drained] = []
    full: list[Drained] = []
    for _ in range(bench.options.rounds):
        empty.append(drain_stored(bench, "history-empty", rules=1, events=batch))
        full.append(
            drain_stored(
                bench,
                "history-full",
                rules=1,
                events=batch,
                before=lambda where, rules, templates, _: _fill(
                    bench, where, rules, templates, history
                ),
            )
        )
    return drained_rows(
        "history",
        {
            f"{WHAT}: {batch:,} into an empty store": empty,
            f"{WHAT}: {batch:,} into {history:,} finished": full,
        },
        compared=f"{history:,} finished against an empty store",
        target=TARGET,
    )


def _fill(bench: Bench, where: Path, rules: Path, templates: Path, count: int) -> None:
    """`count` finished events in the store at `where`: one lifecycle made by the product
    (an event stored, routed and delivered; wrk may send one or two more), then copied with
    new ids, older than it."""
    path = where / "bridge.db"
    db = f"sqlite:///{path}"
    server = product.serve(rules, templates, db=db, log=where / "seed.log", worker=False)
    try:
        ingest_stored(bench, server, 1)
    finally:
        server.stop()
    worker = product.worker(rules, templates, db=db, log=where / "seed.log")
    try:
        wait_until(
            lambda: (
                sqlite_count(path, "SELECT count(*) FROM events WHERE status = 'accepted'") == 0
            ),
            timeout=60,
            what="the seed events to be delivered",
        )
    finally:
        worker.stop()
    connection = sqlite3.connect(path)
    try:
        _copy_lifecycle(connection, count)
        connection.commit()
    finally:
        connection.close()


# Each copy i: event evh_<i> (before the seed in time and id order), its delivery dlh_<i> with
# the correlate bench:evh_<i>, its attempt, its ticket-map entry and its dedupe key.
_COPIES: dict[str, dict[str, str | None]] = {
    "events": {
        "id": "printf('evh_%09d', n.i)",
        "received_at": "s.received_at - 86400 + n.i * 1e-3",
        "routed_at": "s.routed_at - 86400 + n.i * 1e-3",
        "dedupe_key": "printf('history-%09d', n.i)",
    },
    "deliveries": {
        "seq": None,
        "id": "printf('dlh_%09d', n.i)",
        "event_id": "printf('evh_%09d', n.i)",
        "correlate": "printf('bench:evh_%09d', n.i)",
        "event_received_at": "s.event_received_at - 86400 + n.i * 1e-3",
    },
    "attempts": {"id": None, "delivery_id": "printf('dlh_%09d', n.i)"},
    "tickets": {"correlate": "printf('bench:evh_%09d', n.i)"},
    "dedupe": {
        "key": "printf('history-%09d', n.i)",
        "event_id": "printf('evh_%09d', n.i)",
        "created_at": "s.created_at - 86400 + n.i * 1e-3",
    },
}


def _copy_lifecycle(connection: sqlite3.Connection, count: int) -> None:
    for table, changed in _COPIES.items():
        columns = [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
        kept = [c for c in columns if changed.get(c, "") is not None]
        values = [changed.get(c) or f"s.{c}" for c in kept]
        connection.execute(
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            f"INSERT INTO {table} ({', '.join(kept)}) "
            f"SELECT {', '.join(values)} FROM n, (SELECT * FROM {table} LIMIT 1) AS s",
            (count,),
        )
