"""e2e: events stored first, then `ticketbridge worker` delivering them through the `http`
provider (concurrency 32) to the fake helpdesk, against yardstick E (the same ticket JSON
POSTed by httpx alone); then the p99 from receipt to the provider call at 200 events/s
offered to `serve` with its worker; then the rate limiter holding 50/s.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench import product
from bench.load import paced
from bench.payload import SECRET_ENV
from bench.processes import Running
from bench.report import Row, median, paired_ratio, percentile
from bench.scenarios.common import (
    HOOK_PATH,
    MB,
    Bench,
    MeasurementFailed,
    ingest_stored,
    wait_until,
)
from bench.scenarios.databases import sqlite_file

E_POOLS = ((4, 8), (1, 32))  # (clients, connections each)
LATENCY_RATE = 200.0
RATE_LIMIT = 50.0


def _stats(helpdesk: Running, *, arrivals: bool = False) -> dict[str, Any]:
    query = "?arrivals=1" if arrivals else ""
    data: dict[str, Any] = httpx.get(helpdesk.url + "/stats" + query, timeout=30).json()
    return data


def _ticket_json(bench: Bench, rules: Path, templates: Path) -> bytes:
    """The body the `http` provider sends for the load's event (from `ticketbridge try`)."""
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "try", "bench", str(bench.body_file), "--json"]
        + ["--rules", str(rules), "--templates", str(templates)],
        capture_output=True,
        text=True,
        env={**os.environ, SECRET_ENV: "unused"},
        check=False,
    )
    if done.returncode != 0:
        raise MeasurementFailed(f"ticketbridge try failed: {done.stderr[-500:]}")
    request = json.loads(done.stdout)["actions"][0]["requests"][0]
    return json.dumps(request["json"]).encode()


def _yardstick_e(bench: Bench, ticket_file: Path, count: int) -> tuple[float, str]:
    """E: the best events/s over the pool shapes, and which shape it was."""
    best = (0.0, "")
    for clients, connections in E_POOLS:
        helpdesk = bench.helpdesk()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "bench.yardsticks", "post"]
                + ["--url", helpdesk.url + "/tickets", "--body", str(ticket_file)]
                + ["--count", str(count), "--clients", str(clients)]
                + ["--connections", str(connections)],
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            helpdesk.stop()
        if done.returncode != 0:
            raise MeasurementFailed(f"yardstick E failed: {done.stderr[-1000:]}")
        result = json.loads(done.stdout)
        if result["ok"] != count:
            raise MeasurementFailed(f"yardstick E: {result['ok']} of {count} answered 2xx")
        rate = count / result["seconds"]
        if rate > best[0]:
            best = (rate, f"{clients}×{connections}")
    return best


def _stored(bench: Bench, where: Path, rules: Path, templates: Path, count: int) -> tuple[str, int]:
    """`count` events stored by `serve --no-worker`; (db URL, events stored)."""
    path = where / "bridge.db"
    db = f"sqlite:///{path}"
    server = product.serve(rules, templates, db=db, log=where / "serve.log", worker=False)
    try:
        ingest_stored(bench, server, count)
    finally:
        server.stop()
    return db, sqlite_file(path).count("SELECT count(*) FROM events")


def _product_e2e(bench: Bench, count: int) -> tuple[float, float, float, float]:
    """(events/s from worker start, events/s first to last call, CPU µs/event, RSS MB)."""
    helpdesk = bench.helpdesk()
    try:
        where = bench.fresh("e2e-product")
        rules, templates = product.write_config(
            where, rules=1, provider=product.http_provider(helpdesk.url + "/tickets")
        )
        db, stored = _stored(bench, where, rules, templates, count)
        worker = product.worker(rules, templates, db=db, log=where / "worker.log")
        try:
            wait_until(
                lambda: _stats(helpdesk)["count"] >= stored,
                timeout=max(120.0, stored / 20),
                what=f"{stored} calls at the fake helpdesk",
                interval=0.02,
            )
            elapsed = time.monotonic() - worker.started_at
            cpu, rss = worker.cpu(), worker.rss()
        finally:
            worker.stop()
        stats = _stats(helpdesk)
        steady = (stats["count"] - 1) / max(1e-9, stats["last"] - stats["first"])
        return stored / elapsed, steady, cpu / stored * 1e6, rss / MB
    finally:
        helpdesk.stop()


def _latency(bench: Bench) -> Row:
    helpdesk = bench.helpdesk()
    try:
        where = bench.fresh("e2e-latency")
        provider = product.http_provider(helpdesk.url + "/tickets", timestamps=True)
        rules, templates = product.write_config(where, rules=1, provider=provider)
        server = product.serve(
            rules, templates, db=f"sqlite:///{where / 'bridge.db'}", log=where / "serve.log"
        )
        try:
            seconds = max(bench.options.duration, 2.0)
            cpu = server.cpu()
            sent, ok = asyncio.run(
                paced(
                    server.url + HOOK_PATH,
                    body=bench.body,
                    headers=bench.headers,
                    rate=LATENCY_RATE,
                    seconds=seconds,
                )
            )
            wait_until(
                lambda: _stats(helpdesk)["count"] >= ok,
                timeout=60,
                what=f"{ok} calls at the fake helpdesk",
            )
            cpu = server.cpu() - cpu
            rss = server.rss()
        finally:
            server.stop()
        stats = _stats(helpdesk)
    finally:
        helpdesk.stop()
    if ok < sent:
        raise MeasurementFailed(f"{sent - ok} of {sent} paced webhooks were not accepted")
    lags: list[float] = stats["received_lag_ms"]
    p99 = percentile(lags, 99)
    return Row(
        scenario="e2e",
        what=(
            f"receipt→provider call, serve with worker, {LATENCY_RATE:g}/s offered "
            f"(p50 {percentile(lags, 50) or 0:.1f} ms, sender→call p99 "
            f"{percentile(stats['sent_lag_ms'], 99) or 0:.1f} ms)"
        ),
        rate=len(lags) / seconds,
        unit="ev/s",
        p99_ms=p99,
        cpu_us=cpu / max(1, ok) * 1e6,
        rss_mb=rss / MB,
        target="p99<100 ms",
        met=p99 is not None and p99 < 100,
    )


def _rate_limit(bench: Bench) -> Row:
    seconds = 10.0 if not bench.options.quick else 3.0
    count = int(RATE_LIMIT * seconds) + 1
    helpdesk = bench.helpdesk()
    try:
        where = bench.fresh("e2e-rate")
        provider = product.http_provider(
            helpdesk.url + "/tickets", rate_limit={"per_second": RATE_LIMIT, "burst": 1}
        )
        rules, templates = product.write_config(where, rules=1, provider=provider)
        db, stored = _stored(bench, where, rules, templates, count)
        worker = product.worker(rules, templates, db=db, log=where / "worker.log")
        try:
            wait_until(
                lambda: _stats(helpdesk)["count"] >= stored,
                timeout=seconds * 5 + 30,
                what=f"{stored} rate-limited calls",
                interval=0.1,
            )
        finally:
            worker.stop()
        arrivals: list[float] = _stats(helpdesk, arrivals=True)["arrivals"]
    finally:
        helpdesk.stop()
    span = arrivals[-1] - arrivals[0]
    rate = (len(arrivals) - 1) / span if span > 0 else 0.0
    deviation = rate / RATE_LIMIT - 1
    return Row(
        scenario="e2e",
        what=f"rate_limit {RATE_LIMIT:g}/s (burst 1), {len(arrivals)} calls over {span:.1f} s",
        rate=rate,
        unit="ev/s",
        ratio=f"{deviation:+.1%} from configured",
        target="holds its rate (±5%)",
        met=abs(deviation) <= 0.05,
    )


def run(bench: Bench) -> list[Row]:
    bench.need_load()
    count = 2_000 if bench.options.quick else 10_000
    where = bench.fresh("e2e-ticket")
    rules, templates = product.write_config(
        where, rules=1, provider=product.http_provider("http://127.0.0.1:9/tickets")
    )
    ticket_file = where / "ticket.json"
    ticket_file.write_bytes(_ticket_json(bench, rules, templates))
    e_rates: list[float] = []
    shapes: list[str] = []
    product_rates: list[float] = []
    steady: list[float] = []
    cpu: list[float] = []
    rss: list[float] = []
    for _ in range(bench.options.rounds):
        rate, shape = _yardstick_e(bench, ticket_file, count)
        e_rates.append(rate)
        shapes.append(shape)
        measured = _product_e2e(bench, count)
        product_rates.append(measured[0])
        steady.append(measured[1])
        cpu.append(measured[2])
        rss.append(measured[3])
    ratio = paired_ratio(product_rates, e_rates)
    return [
        Row(
            scenario="e2e",
            what=f"E: httpx POSTs only, best pools ({', '.join(shapes)} clients×conns)",
            rate=median(e_rates),
            unit="ev/s",
        ),
        Row(
            scenario="e2e",
            what=(
                f"product worker, {count:,} stored events → http provider (concurrency 32), "
                f"from worker start (first→last call: {median(steady) or 0:,.0f}/s)"
            ),
            rate=median(product_rates),
            unit="ev/s",
            cpu_us=median(cpu),
            rss_mb=median(rss),
            ratio="-" if ratio is None else f"{ratio:.2f} of E",
            target="≥0.70 of E",
            met=ratio is not None and ratio >= 0.7,
        ),
        _latency(bench),
        _rate_limit(bench),
    ]
