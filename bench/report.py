"""Rows of results, medians and ratios, the table, and the bench/README.md section."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import re
import sqlite3
import statistics
from collections.abc import Collection, Sequence
from dataclasses import dataclass

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"


@dataclass(frozen=True, kw_only=True)
class Row:
    """One line of the table. `rate` is requests/s or events/s (median of rounds)."""

    scenario: str
    what: str
    rate: float | None = None
    unit: str = "req/s"
    p99_ms: float | None = None
    cpu_us: float | None = None
    rss_mb: float | None = None
    ratio: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""


def median(values: Sequence[float]) -> float | None:
    """The median, or None for no values."""
    return statistics.median(values) if values else None


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float | None:
    """The median of the per-round ratios a_i / b_i (rounds were interleaved, so each pair
    saw the same machine); None when there is no pair with a positive denominator."""
    ratios = [a / b for a, b in zip(numerators, denominators, strict=False) if b > 0]
    return median(ratios)


def slope_per_minute(samples: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) samples, in value per minute."""
    if len(samples) < 2:
        return None
    xs = [x for x, _ in samples]
    ys = [y for _, y in samples]
    mean_x = statistics.fmean(xs)
    mean_y = statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return None
    return 60 * sum((x - mean_x) * (y - mean_y) for x, y in samples) / spread


def _number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def met_text(met: bool | None) -> str:
    return {True: "yes", False: "NO", None: ""}[met]


def table(rows: Sequence[Row]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| scenario | what | rate | p99 ms | CPU µs/req | RSS MB | ratio | target | met |",
        "|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for row in rows:
        rate = f"{_number(row.rate)} {row.unit}" if row.rate is not None else "-"
        what = row.what + (f" ({row.note})" if row.note else "")
        lines.append(
            f"| {row.scenario} | {what} | {rate} | {_number(row.p99_ms, 1)} | "
            f"{_number(row.cpu_us)} | {_number(row.rss_mb, 1)} | {row.ratio or '-'} | "
            f"{row.target or '-'} | {met_text(row.met)} |"
        )
    return "\n".join(lines)


def machine() -> str:
    """Date, nproc, CPU model, Python and SQLite versions, on one line."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{today}; nproc {os.cpu_count()}; {model}; Python {platform.python_version()}; "
        f"SQLite {sqlite3.sqlite_version}"
    )


def section(
    rows: Sequence[Row],
    *,
    command: str,
    about: str,
    ran: Collection[str] | None = None,
    previous: str = "",
    order: Sequence[str] = (),
) -> str:
    """The README block, markers included, for this run's `rows` of the scenarios it `ran`
    (all of them when None). The rows of scenarios not run now are kept from the block in
    `previous` (a README's text), and the block says which run each scenario's figures are
    from. Scenarios are shown in `order` (others after them)."""
    old = _block(previous)
    found = _RUNS.search(old)
    runs: dict[str, str] = json.loads(found.group(1)) if found else {}
    first = re.search(r"^Latest figures: (.*)\.$", old, re.MULTILINE)
    this_run = f"`{command}`, {about}"
    shown = table(rows).splitlines()
    header, lines = shown[:2], shown[2:]
    by_scenario: dict[str, list[str]] = {}
    for line in lines:
        by_scenario.setdefault(_scenario_of(line), []).append(line)
    for scenario in by_scenario:
        runs[scenario] = this_run
    if ran is not None:
        for line in old.splitlines():
            scenario = _scenario_of(line)
            if line.startswith("| ") and scenario not in ran and scenario != "scenario":
                if scenario not in runs and first:
                    runs[scenario] = first.group(1)
                if scenario in runs and runs[scenario] != this_run:
                    by_scenario.setdefault(scenario, []).append(line)
    rank = {scenario: number for number, scenario in enumerate(order)}
    by_scenario = dict(sorted(by_scenario.items(), key=lambda item: rank.get(item[0], len(rank))))
    runs = {scenario: run for scenario, run in runs.items() if scenario in by_scenario}
    sources: dict[str, list[str]] = {}
    for scenario in by_scenario:
        sources.setdefault(runs[scenario], []).append(scenario)
    provenance = [f"- {', '.join(names)}: {run}." for run, names in sources.items()]
    return "\n".join(
        [
            BEGIN,
            f"<!-- bench:runs {json.dumps(runs, ensure_ascii=False)} -->",
            "Figures from:",
            "",
            *provenance,
            "",
            *header,
            *(line for scenario_lines in by_scenario.values() for line in scenario_lines),
            "",
            END,
        ]
    )


_RUNS = re.compile(r"<!-- bench:runs (.*?) -->")


def _scenario_of(line: str) -> str:
    return line[2:].split(" |", 1)[0] if line.startswith("| ") else ""


def _block(text: str) -> str:
    found = re.search(re.escape(BEGIN) + r".*?" + re.escape(END), text, re.DOTALL)
    return found.group(0) if found else ""


def replace_section(text: str, block: str) -> str:
    """`text` with the marked section replaced by `block` (which carries the markers), or
    `block` appended as a new section when the markers are not there yet."""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text, count=1)
    return text.rstrip("\n") + "\n\n" + block + "\n"


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]
