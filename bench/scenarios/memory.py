"""memory: RSS of `serve` (with its worker, `log` provider) after 1,000,000 events offered
with wrk (20,000 with --quick), then a soak: steady wrk load for --soak-minutes, RSS sampled
every 10 s (more often in a short soak), reported as start, end, max and slope.

"No growth" is taken as: the least-squares slope over the soak adds less than 5% of the
starting RSS over the soak's length.
"""

from __future__ import annotations

import time

from bench import product
from bench.load import finish
from bench.report import Row, slope_per_minute
from bench.scenarios.common import HOOK_PATH, MB, Bench, MeasurementFailed, ingest_stored

TARGET_MB = 150.0


def run(bench: Bench) -> list[Row]:
    load = bench.need_load()
    events = 20_000 if bench.options.quick else 1_000_000
    soak = bench.options.soak_minutes * 60
    interval = min(10.0, max(1.0, soak / 6))
    where = bench.fresh("memory")
    rules, templates = product.write_config(where, rules=10, provider=product.log_provider())
    server = product.serve(
        rules, templates, db=f"sqlite:///{where / 'bridge.db'}", log=where / "serve.log"
    )
    try:
        started = time.monotonic()
        ingest_stored(bench, server, events)
        offered_for = time.monotonic() - started
        after = server.rss() / MB
        samples: list[tuple[float, float]] = []
        wrk = load.start(server.url + HOOK_PATH, seconds=soak)
        soak_start = time.monotonic()
        while wrk.poll() is None:
            samples.append((time.monotonic() - soak_start, server.rss() / MB))
            time.sleep(interval)
        result = finish(wrk)
        samples.append((time.monotonic() - soak_start, server.rss() / MB))
        if not server.alive():
            raise MeasurementFailed(f"serve died in the soak:\n{server.tail()}")
    finally:
        server.stop()
    slope = slope_per_minute(samples) or 0.0
    values = [value for _, value in samples]
    growth = slope * bench.options.soak_minutes
    return [
        Row(
            scenario="memory",
            what=f"serve (with worker) RSS after {events:,} events ({offered_for:.0f} s)",
            rate=events / offered_for,
            rss_mb=after,
            target=f"<{TARGET_MB:g} MB after 1,000,000",
            met=after < TARGET_MB if events >= 1_000_000 else None,
            note="" if events >= 1_000_000 else "short run: target not judged",
        ),
        Row(
            scenario="memory",
            what=(
                f"soak {bench.options.soak_minutes:g} min: RSS start {values[0]:.1f}, "
                f"end {values[-1]:.1f}, max {max(values):.1f} MB, "
                f"slope {slope:+.2f} MB/min"
            ),
            rate=result.per_second,
            p99_ms=result.p99_ms,
            rss_mb=values[-1],
            target="no growth (<5% over the soak)",
            met=growth < 0.05 * values[0],
        ),
    ]
