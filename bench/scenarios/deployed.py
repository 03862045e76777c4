"""deployed: `serve` as deployed (receiver and worker in one process, the default) under the
ingest load, against `serve --no-worker` under the same load, interleaved round by round; then
how fast the burst's backlog drains once the load stops, against `worker` alone draining a
backlog of the same size.

The product's rules carry a correlate unique per event (bench/product.py), and the provider
is `log`, so what is measured is the receiver, routing and the store, not a helpdesk.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench import product
from bench.report import Row, median, paired_ratio
from bench.scenarios.common import Bench, Measured, measure, row, wait_until
from bench.scenarios.databases import sqlite_file
from bench.scenarios.drain import drain_stored

P99_TARGET_MS = 50.0
DRAIN_TIMEOUT = 600.0
UNFINISHED = "SELECT count(*) FROM events WHERE status = 'accepted'"


def _config(bench: Bench, name: str) -> tuple[Path, Path, Path, str]:
    where = bench.fresh(name)
    rules, templates = product.write_config(where, rules=1, provider=product.log_provider())
    return where, rules, templates, f"sqlite:///{where / 'bridge.db'}"


def _drain(db_file: Path) -> tuple[int, float]:
    """Wait until no stored event is left unfinished: (how many were left, seconds it took)."""
    store = sqlite_file(db_file)
    left = store.count(UNFINISHED)
    started = time.monotonic()
    wait_until(
        lambda: store.count(UNFINISHED) == 0,
        timeout=DRAIN_TIMEOUT,
        what="the backlog to drain",
        interval=0.02,
    )
    return left, time.monotonic() - started


def _receiver_only(bench: Bench) -> Measured:
    where, rules, templates, db = _config(bench, "deployed-receiver")
    server = product.serve(rules, templates, db=db, log=where / "serve.log", worker=False)
    try:
        return measure(bench, [server])
    finally:
        server.stop()


def _as_deployed(bench: Bench) -> tuple[Measured, int, float]:
    """`serve` under the load, then its drain: (the load's figures, backlog, drain seconds)."""
    where, rules, templates, db = _config(bench, "deployed-serve")
    server = product.serve(rules, templates, db=db, log=where / "serve.log")
    try:
        measured = measure(bench, [server])
        left, seconds = _drain(where / "bridge.db")
    finally:
        server.stop()
    return measured, left, seconds


def _worker_alone(bench: Bench, count: int) -> float:
    """`worker` alone draining `count` events stored beforehand: events per second."""
    return drain_stored(bench, "deployed-worker", rules=1, events=count).rate


def run_deployed(bench: Bench) -> list[Row]:
    bench.need_load()
    receiver: list[Measured] = []
    deployed: list[Measured] = []
    drains: list[float] = []
    alone: list[float] = []
    for _ in range(bench.options.rounds):
        receiver.append(_receiver_only(bench))
        measured, left, seconds = _as_deployed(bench)
        deployed.append(measured)
        drains.append(left / seconds if seconds > 0 else 0.0)
        alone.append(_worker_alone(bench, max(left, 1000)))
    ratio = paired_ratio([m.rate for m in deployed], [m.rate for m in receiver])
    drain_ratio = paired_ratio(drains, alone)
    p99 = median([m.p99_ms for m in deployed])
    return [
        row("deployed", "serve --no-worker (receiver only), rules with a correlate", receiver),
        row(
            "deployed",
            "serve (receiver and worker in one), the same load",
            deployed,
            ratio=f"{_fmt(ratio)} of --no-worker",
            target="≥0.70 of --no-worker, p99<50 ms",
            met=ratio is not None and ratio >= 0.7 and p99 is not None and p99 < P99_TARGET_MS,
        ),
        Row(
            scenario="deployed",
            what="the burst's backlog drained after the load, events/s",
            rate=median(drains),
            unit="events/s",
            ratio=f"{_fmt(drain_ratio)} of worker alone ({median(alone):,.0f}/s)",
            target="≈1.0 of worker alone",
            met=drain_ratio is not None and drain_ratio >= 0.8,
        ),
    ]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
