"""ingest-1 and ingest-2: the receiver (`serve --no-worker`) under wrk, against the
yardsticks, interleaved round by round.

ingest-1, per round: D_full, product (default durability, FULL), D, product
(`?synchronous=normal`), A. Ratios are the medians of the per-round ratios.

ingest-2: `serve --no-worker --processes 2` (two receiver processes on one port) against
`--processes 1`, the same wrk load on each; CPU and RSS are those of the whole process tree.
On SQLite (one file) and on PostgreSQL (a fresh schema per run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import product
from bench.processes import Running
from bench.report import Row, paired_ratio
from bench.scenarios.common import Bench, Measured, Skipped, measure, row
from bench.scenarios.databases import postgres_schemas

P99_TARGET_MS = 20.0


def _product_measure(bench: Bench, *, db_query: str = "", processes: int = 1) -> Measured:
    where = bench.fresh("ingest-product")
    rules, templates = product.write_config(where, rules=1, provider=product.log_provider())
    db = f"sqlite:///{where / 'bridge.db'}{db_query}"
    with _receivers(rules, templates, db, where, processes) as servers:
        return measure(bench, servers)


@contextmanager
def _receivers(
    rules: Path, templates: Path, db: str, where: Path, processes: int
) -> Iterator[list[Running]]:
    server = product.serve(
        rules, templates, db=db, log=where / "serve.log", worker=False, processes=processes
    )
    try:
        yield [server]
    finally:
        server.stop()


def _yardstick_measure(bench: Bench, kind: str, synchronous: str = "normal") -> Measured:
    server = bench.yardstick(kind, synchronous=synchronous)
    try:
        return measure(bench, [server])
    finally:
        server.stop()


def run_ingest_1(bench: Bench) -> list[Row]:
    bench.need_load()
    runs: dict[str, list[Measured]] = {k: [] for k in ("A", "D", "D_full", "full", "normal")}
    steps: list[tuple[str, Callable[[], Measured]]] = [
        ("D_full", lambda: _yardstick_measure(bench, "D", "full")),
        ("full", lambda: _product_measure(bench)),
        ("D", lambda: _yardstick_measure(bench, "D", "normal")),
        ("normal", lambda: _product_measure(bench, db_query="?synchronous=normal")),
        ("A", lambda: _yardstick_measure(bench, "A")),
    ]
    for _ in range(bench.options.rounds):
        for name, step in steps:
            runs[name].append(step())
    rate = {name: [m.rate for m in measured] for name, measured in runs.items()}
    full = paired_ratio(rate["full"], rate["D_full"])
    normal = paired_ratio(rate["normal"], rate["D"])
    of_a = paired_ratio(rate["full"], rate["A"])
    full_p99 = row("ingest-1", "", runs["full"]).p99_ms or 0.0
    normal_p99 = row("ingest-1", "", runs["normal"]).p99_ms or 0.0
    return [
        row("ingest-1", "A: bare Starlette 202", runs["A"]),
        row("ingest-1", "D_full: HMAC+JSON+group commit, FULL", runs["D_full"]),
        row("ingest-1", "D: HMAC+JSON+group commit, NORMAL", runs["D"]),
        row(
            "ingest-1",
            "product serve --no-worker, SQLite FULL (default)",
            runs["full"],
            ratio=f"{_fmt(full)} of D_full; {_fmt(of_a)} of A",
            target="≥0.80 of D_full, p99<20 ms",
            met=_met(full, 0.8) and full_p99 < P99_TARGET_MS,
        ),
        row(
            "ingest-1",
            "product serve --no-worker, SQLite ?synchronous=normal",
            runs["normal"],
            ratio=f"{_fmt(normal)} of D",
            target="≥0.80 of D, p99<20 ms",
            met=_met(normal, 0.8) and normal_p99 < P99_TARGET_MS,
        ),
    ]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _met(value: float | None, at_least: float) -> bool:
    return value is not None and value >= at_least


# -- ingest-2 ------------------------------------------------------------------------------


def _ingest_2_on(
    bench: Bench, backend: str, database: Callable[[Path], tuple[str, Callable[[], None]]]
) -> list[Row]:
    runs: dict[int, list[Measured]] = {1: [], 2: []}
    for _ in range(bench.options.rounds):
        for processes in (1, 2):
            where = bench.fresh(f"ingest2-{backend}-{processes}")
            rules, templates = product.write_config(where, rules=1, provider=product.log_provider())
            db, cleanup = database(where)
            try:
                with _receivers(rules, templates, db, where, processes) as servers:
                    runs[processes].append(measure(bench, servers))
            finally:
                cleanup()
    ratio = paired_ratio([m.rate for m in runs[2]], [m.rate for m in runs[1]])
    return [
        row("ingest-2", f"serve --no-worker --processes 1, {backend}", runs[1]),
        row(
            "ingest-2",
            f"serve --no-worker --processes 2 (one port), {backend}",
            runs[2],
            ratio=f"{_fmt(ratio)} of 1 process",
            target="≥1.5 of 1 process",
            met=_met(ratio, 1.5),
        ),
    ]


def run_ingest_2(bench: Bench) -> list[Row]:
    bench.need_load()
    rows = _ingest_2_on(
        bench, "SQLite", lambda where: (f"sqlite:///{where / 'bridge.db'}", lambda: None)
    )
    try:
        make = postgres_schemas(bench.options.postgres_url)
    except Skipped as exc:
        return [*rows, Row(scenario="ingest-2", what="PostgreSQL", note=f"skipped: {exc}")]

    def schema(_: Path) -> tuple[str, Callable[[], None]]:
        database, drop = make()
        return database.url, drop

    return [*rows, *_ingest_2_on(bench, "PostgreSQL", schema)]
