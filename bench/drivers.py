"""Which PostgreSQL driver the store uses: psycopg 3 (+ psycopg_pool) or asyncpg, measured.

Not a test: run it by hand against a local PostgreSQL and copy the table into bench/README.md.

    python bench/drivers.py [--url postgresql://postgres@127.0.0.1:5432/test] [--loop uvloop]

Both drivers are needed (`pip install -e .[bench]`). Two workloads, each through the driver's
own async pool, on tables in a scratch schema that is dropped afterwards:

- ingest: TASKS concurrent tasks each doing BEGIN, a single-row INSERT, COMMIT (the receiver's
  durable write without group commit: the worst case for a driver, a round trip per statement);
- batch: one connection committing 64-row executemany batches (what a group commit does);
- claim: WORKERS concurrent tasks each looping the worker's claim statement,
  `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n) RETURNING ...` then a
  finishing UPDATE per row, until the queue is empty.

Both drivers run the same statements the same way: connections in autocommit, an explicit
transaction where there is more than one statement, server-side prepared statements (asyncpg
always prepares; psycopg prepares a query from its 5th execution on a connection).

Each workload runs ROUNDS times per driver, alternating drivers, and the best round is kept
(the machine's noise only ever makes a round slower).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped,import-not-found,unused-ignore]
import psycopg
import psycopg_pool

DEFAULT_URL = os.environ.get(
    "BRIDGE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

_TABLES = """
CREATE TABLE {schema}.ingest (
    id text PRIMARY KEY, source text NOT NULL, received_at double precision NOT NULL,
    payload text NOT NULL, raw bytea
);
CREATE TABLE {schema}.queue (
    seq bigserial PRIMARY KEY, id text NOT NULL UNIQUE, provider text NOT NULL,
    status text NOT NULL, next_attempt_at double precision, lease_until double precision,
    lease_token text
);
CREATE INDEX ON {schema}.queue (status, next_attempt_at);
"""
_INSERT = "INSERT INTO {schema}.ingest (id, source, received_at, payload, raw) VALUES ({params})"
_FILL = """
INSERT INTO {schema}.queue (id, provider, status, next_attempt_at)
SELECT 'd' || g, 'p' || (g % 4), 'pending', 0 FROM generate_series(1, {count}) AS g
"""
_CLAIM = """
UPDATE {schema}.queue SET status = 'in_flight', lease_until = {p1}, lease_token = {p2}
WHERE seq IN (SELECT seq FROM {schema}.queue
              WHERE status = 'pending' AND next_attempt_at <= {p1}
              ORDER BY seq LIMIT {p3} FOR UPDATE SKIP LOCKED)
RETURNING seq, id, provider
"""
_FINISH = "UPDATE {schema}.queue SET status = 'done', lease_token = NULL WHERE seq = {p1}"

PAYLOAD = '{"type":"payment_intent.succeeded","data":{"object":{"amount":1999}}}' * 28  # ~2 KB


@dataclass(frozen=True)
class Round:
    driver: str
    workload: str
    operations: int
    seconds: float
    latencies: list[float]

    @property
    def per_second(self) -> float:
        return self.operations / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# -- psycopg -------------------------------------------------------------------------------


async def psycopg_ingest(url: str, schema: str, *, tasks: int, total: int, pool: int) -> Round:
    sql = _INSERT.format(schema=schema, params="%s, %s, %s, %s, %s")
    async with psycopg_pool.AsyncConnectionPool(
        url, min_size=pool, max_size=pool, open=False, kwargs={"autocommit": True}
    ) as connections:
        await connections.wait()

        async def one(n: int) -> None:
            async with connections.connection() as connection, connection.transaction():
                await connection.execute(sql, (f"p{n}", "shop", time.time(), PAYLOAD, b"x" * 64))

        return await _spread("psycopg", "ingest", one, tasks=tasks, total=total)


async def psycopg_claim(
    url: str, schema: str, *, workers: int, batch: int, count: int, pool: int
) -> Round:
    claim = _CLAIM.format(schema=schema, p1="%(now)s", p2="%(token)s", p3="%(limit)s")
    finish = _FINISH.format(schema=schema, p1="%s")
    async with psycopg_pool.AsyncConnectionPool(
        url, min_size=pool, max_size=pool, open=False, kwargs={"autocommit": True}
    ) as connections:
        await connections.wait()

        async def step() -> int:
            async with connections.connection() as connection:
                params = {"now": time.time(), "token": secrets.token_hex(16), "limit": batch}
                rows = await (await connection.execute(claim, params)).fetchall()
            for row in rows:
                async with connections.connection() as connection:
                    await connection.execute(finish, (row[0],))
            return len(rows)

        return await _drain("psycopg", step, workers=workers, count=count)


async def psycopg_batch(url: str, schema: str, *, batch: int, total: int) -> Round:
    sql = _INSERT.format(schema=schema, params="%s, %s, %s, %s, %s")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:

        async def one(n: int) -> None:
            rows = [(f"b{n}.{i}", "shop", time.time(), PAYLOAD, b"x" * 64) for i in range(batch)]
            async with connection.transaction(), connection.cursor() as cursor:
                await cursor.executemany(sql, rows)

        return await _spread("psycopg", "batch", one, tasks=1, total=total // batch, rows=batch)


# -- asyncpg -------------------------------------------------------------------------------


async def asyncpg_ingest(url: str, schema: str, *, tasks: int, total: int, pool: int) -> Round:
    sql = _INSERT.format(schema=schema, params="$1, $2, $3, $4, $5")
    connections = await asyncpg.create_pool(url, min_size=pool, max_size=pool)
    try:

        async def one(n: int) -> None:
            async with connections.acquire() as connection, connection.transaction():
                await connection.execute(sql, f"a{n}", "shop", time.time(), PAYLOAD, b"x" * 64)

        return await _spread("asyncpg", "ingest", one, tasks=tasks, total=total)
    finally:
        await connections.close()


async def asyncpg_claim(
    url: str, schema: str, *, workers: int, batch: int, count: int, pool: int
) -> Round:
    claim = _CLAIM.format(schema=schema, p1="$1::float8", p2="$2", p3="$3")
    finish = _FINISH.format(schema=schema, p1="$1")
    connections = await asyncpg.create_pool(url, min_size=pool, max_size=pool)
    try:

        async def step() -> int:
            async with connections.acquire() as connection:
                rows = await connection.fetch(claim, time.time(), secrets.token_hex(16), batch)
            for row in rows:
                async with connections.acquire() as connection:
                    await connection.execute(finish, row[0])
            return len(rows)

        return await _drain("asyncpg", step, workers=workers, count=count)
    finally:
        await connections.close()


async def asyncpg_batch(url: str, schema: str, *, batch: int, total: int) -> Round:
    sql = _INSERT.format(schema=schema, params="$1, $2, $3, $4, $5")
    connection = await asyncpg.connect(url)
    try:

        async def one(n: int) -> None:
            rows = [(f"b{n}.{i}", "shop", time.time(), PAYLOAD, b"x" * 64) for i in range(batch)]
            async with connection.transaction():
                await connection.executemany(sql, rows)

        return await _spread("asyncpg", "batch", one, tasks=1, total=total // batch, rows=batch)
    finally:
        await connection.close()


# -- running -------------------------------------------------------------------------------


async def _spread(
    driver: str,
    workload: str,
    one: Callable[[int], Awaitable[None]],
    *,
    tasks: int,
    total: int,
    rows: int = 1,
) -> Round:
    numbers = iter(range(total))
    latencies: list[float] = []

    async def task() -> None:
        for n in numbers:
            started = time.perf_counter()
            await one(n)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(task() for _ in range(tasks)))
    return Round(driver, workload, total * rows, time.perf_counter() - started, latencies)


async def _drain(
    driver: str, step: Callable[[], Awaitable[int]], *, workers: int, count: int
) -> Round:
    latencies: list[float] = []
    claimed = 0

    async def worker() -> None:
        nonlocal claimed
        while True:
            started = time.perf_counter()
            got = await step()
            if not got:
                return
            latencies.append(time.perf_counter() - started)
            claimed += got

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    seconds = time.perf_counter() - started
    if claimed != count:
        raise SystemExit(f"{driver}: claimed {claimed} of {count}: SKIP LOCKED handed out twice?")
    return Round(driver, "claim", claimed, seconds, latencies)


async def _admin(url: str, sql: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        for statement in sql.split(";"):
            if statement.strip():
                await connection.execute(statement.encode())


async def main(args: argparse.Namespace) -> None:
    schema = f"bench_{secrets.token_hex(4)}"
    await _admin(args.url, f"CREATE SCHEMA {schema}; " + _TABLES.format(schema=schema))
    ingest: dict[str, Callable[..., Awaitable[Round]]] = {
        "psycopg": psycopg_ingest,
        "asyncpg": asyncpg_ingest,
    }
    batch: dict[str, Callable[..., Awaitable[Round]]] = {
        "psycopg": psycopg_batch,
        "asyncpg": asyncpg_batch,
    }
    claim: dict[str, Callable[..., Awaitable[Round]]] = {
        "psycopg": psycopg_claim,
        "asyncpg": asyncpg_claim,
    }
    best: dict[tuple[str, str], Round] = {}
    try:
        for number in range(args.rounds):
            order = sorted(ingest) if number % 2 == 0 else sorted(ingest, reverse=True)
            for driver in order:
                await _admin(args.url, f"TRUNCATE {schema}.ingest")
                result = await ingest[driver](
                    args.url, schema, tasks=args.tasks, total=args.inserts, pool=args.pool
                )
                _keep(best, result)
                await _admin(args.url, f"TRUNCATE {schema}.ingest")
                result = await batch[driver](args.url, schema, batch=64, total=args.inserts)
                _keep(best, result)
                await _admin(args.url, f"TRUNCATE {schema}.queue; ")
                await _admin(args.url, _FILL.format(schema=schema, count=args.queue))
                await _admin(args.url, f"VACUUM ANALYZE {schema}.queue")
                result = await claim[driver](
                    args.url,
                    schema,
                    workers=args.workers,
                    batch=args.batch,
                    count=args.queue,
                    pool=args.pool,
                )
                _keep(best, result)
    finally:
        await _admin(args.url, f"DROP SCHEMA {schema} CASCADE")
    _report(best, args)


def _keep(best: dict[tuple[str, str], Round], result: Round) -> None:
    key = (result.workload, result.driver)
    print(
        f"  {result.workload:<7} {result.driver:<8} {result.per_second:9.0f}/s",
        file=sys.stderr,
    )
    if key not in best or result.per_second > best[key].per_second:
        best[key] = result


def _report(best: dict[tuple[str, str], Round], args: argparse.Namespace) -> None:
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"psycopg {psycopg.__version__}, psycopg_pool {psycopg_pool.__version__}, "
        f"asyncpg {asyncpg.__version__}, loop {args.loop}, pool {args.pool} connections"
    )
    print(
        f"ingest: {args.tasks} tasks, {args.inserts} single-row INSERT+COMMIT; batch: "
        f"{args.inserts} rows in 64-row transactions; claim: "
        f"{args.workers} workers, batches of {args.batch}, {args.queue} rows; "
        f"best of {args.rounds}"
    )
    print()
    print("| workload | driver | rows per second | p50 ms | p99 ms |")
    print("|---|---|---:|---:|---:|")
    for (workload, driver), result in sorted(best.items()):
        print(
            f"| {workload} | {driver} | {result.per_second:,.0f} | "
            f"{statistics.median(result.latencies) * 1000:.2f} | {result.percentile(0.99):.2f} |"
        )


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    parser.add_argument("--pool", type=int, default=16, help="connections per pool")
    parser.add_argument("--tasks", type=int, default=32, help="concurrent ingest tasks")
    parser.add_argument("--inserts", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=8, help="concurrent claim loops")
    parser.add_argument("--batch", type=int, default=16, help="rows per claim")
    parser.add_argument("--queue", type=int, default=20_000, help="rows to claim")
    parser.add_argument("--rounds", type=int, default=3)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = _arguments()
    if arguments.loop == "uvloop":
        import uvloop

        uvloop.run(main(arguments))
    else:
        asyncio.run(main(arguments))
