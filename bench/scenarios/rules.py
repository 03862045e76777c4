"""match and load: what 10,000 rules cost against 10.

match: events stored first by `serve --no-worker`, then drained by `ticketbridge worker`
with the `log` provider; the rate is taken from the store's own timestamps (first routing to
last attempt's end), so the worker's start-up (config load: see `load`) is not in it.
load: `ticketbridge check` on each configuration: wall time and max RSS.
"""

from __future__ import annotations

from bench import product
from bench.report import Row, median, paired_ratio
from bench.scenarios.common import MB, Bench, MeasurementFailed
from bench.scenarios.drain import drain_stored

COUNTS = (10, 10_000)


def run_match(bench: Bench) -> list[Row]:
    bench.need_load()
    events = 2_000 if bench.options.quick else 10_000
    rates: dict[int, list[float]] = {n: [] for n in COUNTS}
    cpu: dict[int, list[float]] = {n: [] for n in COUNTS}
    rss: dict[int, list[float]] = {n: [] for n in COUNTS}
    for _ in range(bench.options.rounds):
        for count in COUNTS:
            drained = drain_stored(bench, f"match-{count}", rules=count, events=events)
            rates[count].append(drained.rate)
            cpu[count].append(drained.cpu_us)
            rss[count].append(drained.rss_mb)
    cost_ratio = paired_ratio(rates[10], rates[10_000])  # cost per event is 1/rate
    memory_ratio = paired_ratio(rss[10_000], rss[10])
    rows = [
        Row(
            scenario="match",
            what=f"worker, log provider, {count:,} rules (last matches), {events:,} events",
            rate=median(rates[count]),
            unit="ev/s",
            cpu_us=median(cpu[count]),
            rss_mb=median(rss[count]),
        )
        for count in COUNTS
    ]
    rows.append(
        Row(
            scenario="match",
            what="10,000 rules against 10: cost per event; worker RSS",
            ratio=f"cost {_fmt(cost_ratio)}×; RSS {_fmt(memory_ratio)}×",
            target="cost ≤2×, RSS ≤2×",
            met=cost_ratio is not None
            and cost_ratio <= 2
            and memory_ratio is not None
            and memory_ratio <= 2,
        )
    )
    return rows


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def run_load(bench: Bench) -> list[Row]:
    seconds: dict[int, list[float]] = {n: [] for n in COUNTS}
    rss: dict[int, list[float]] = {n: [] for n in COUNTS}
    for _ in range(bench.options.rounds):
        for count in COUNTS:
            where = bench.fresh(f"load-{count}")
            rules, templates = product.write_config(
                where, rules=count, provider=product.log_provider()
            )
            took, memory, code = product.check(rules, templates)
            if code != 0:
                raise MeasurementFailed(f"ticketbridge check on {count} rules exited {code}")
            seconds[count].append(took)
            rss[count].append(memory / MB)
    slow = median(seconds[10_000]) or 0.0
    memory_ratio = paired_ratio(rss[10_000], rss[10])
    return [
        Row(
            scenario="load",
            what=f"ticketbridge check, {count:,} rules: {median(seconds[count]) or 0:.2f} s",
            rss_mb=median(rss[count]),
            ratio=(
                f"RSS {_fmt(memory_ratio)}× of 10; time "
                f"{_fmt(paired_ratio(seconds[10_000], seconds[10]))}×"
                if count == 10_000
                else ""
            ),
            target="load <3 s, RSS ≤2× of 10" if count == 10_000 else "",
            met=(slow < 3 and memory_ratio is not None and memory_ratio <= 2)
            if count == 10_000
            else None,
        )
        for count in COUNTS
    ]
