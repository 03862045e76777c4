"""What is particular to the PostgreSQL store: several processes on one database (claims,
per-key order, dedupe, routing, rate buckets, migrations at once), group commit, error
mapping without the password, open_store's URLs.

"Processes" are stores with pools of their own; where it matters they run on threads of
their own, each with its own event loop, so that their transactions truly overlap.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import traceback
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import psycopg
import psycopg_pool
import pytest
from psycopg.rows import dict_row

from bridge.config import RateLimit
from bridge.exceptions import StoreError, StoreUnavailable
from bridge.records import (
    Claim,
    DeliveryStatus,
    HoldState,
    IngestResult,
    ProviderHold,
    Routing,
)
from bridge.store import autovacuum, intake, open_store, postgres
from bridge.store.autovacuum import Tended
from bridge.store.postgres import PostgresStore, drive
from bridge.store.postgres_connection import Credentials, connect
from bridge.store.schema import apply_migrations, load_migrations
from bridge.store.steps import Query

from .conftest import (
    BEFORE_0007,
    BEFORE_0007_AFTER,
    T0,
    Run,
    make_delivery,
    make_event,
    postgres_server,
    result_for,
    scratch_schema,
)
from .test_contract import WINDOW, ingest_one, route

BOUND = 10.0  # seconds: a notification arrives in milliseconds

PASSWORD = "s3cret-Pa55word"


@pytest.fixture
def url() -> Iterator[str]:
    """The URL of an empty schema of its own."""
    with scratch_schema() as schema_url:
        yield schema_url


@asynccontextmanager
async def opened(url: str, **options: Any) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(url, max_connections=options.pop("max_connections", 3), **options)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one statement on a connection of its own; its rows, if it returns any."""
    with psycopg.connect(url, autocommit=True) as connection:
        cursor = connection.execute(sql.encode(), params or None)
        return cursor.fetchall() if cursor.description is not None else []


def in_threads(*jobs: Any) -> list[Any]:
    """Run each coroutine function on a thread and event loop of its own; their results."""
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            results[index] = asyncio.run(jobs[index]())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a job never finished"
    if errors:
        raise errors[0]
    return results


def everything_said(exc: BaseException) -> str:
    """The exception's text, its repr, and its whole traceback with every chained cause."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


# -- several processes on one database ---------------------------------------------------------


def test_workers_claiming_at_once_never_share_a_delivery_and_keep_each_key_in_order(
    url: str,
) -> None:
    keys = asyncio.run(_seed(url))
    lock = threading.Lock()
    claimed: list[str] = []
    in_flight: set[str] = set()
    overlaps: list[str] = []

    async def worker() -> int:
        finished = 0
        idle = 0
        async with opened(url) as store:
            while idle < 20:
                claims = await store.claim_due(now=T0 + 1000, limit=5, lease=600)
                if not claims:
                    idle += 1
                    await asyncio.sleep(0.01)
                    continue
                idle = 0
                with lock:
                    for claim in claims:
                        key = keys[claim.delivery.id]
                        claimed.append(claim.delivery.id)
                        if key is not None:
                            if key in in_flight:
                                overlaps.append(claim.delivery.id)
                            in_flight.add(key)
                for claim in claims:
                    with lock:  # before the finish commits, so no false overlap
                        in_flight.discard(keys[claim.delivery.id] or "")
                    done = result_for(claim, DeliveryStatus.DONE)
                    assert await store.finish_attempt(claim, done, now=T0 + 10)
                    finished += 1
        return finished

    finished = in_threads(worker, worker, worker)

    assert sorted(claimed) == sorted(keys), "every delivery claimed exactly once"
    assert sum(finished) == len(keys)
    assert all(n > 0 for n in finished), f"every worker got some work: {finished}"
    assert overlaps == []
    by_key: defaultdict[str, list[str]] = defaultdict(list)
    for delivery_id in claimed:
        if keys[delivery_id] is not None:
            by_key[keys[delivery_id] or ""].append(delivery_id)
    for key, order in by_key.items():
        assert order == sorted(order), f"key {key} was claimed out of order"


async def _seed(url: str) -> dict[str, str | None]:
    """40 events: 3 deliveries on one of 6 keys and one uncorrelated each; id -> correlate."""
    keys: dict[str, str | None] = {}
    async with opened(url) as store:
        for n in range(40):
            event = make_event(received_at=T0 + n)
            await store.ingest([event], dedupe_window=WINDOW, now=T0 + n)
            batch = [make_delivery(event.id, correlate=f"k{n % 6}") for _ in range(3)]
            batch.append(make_delivery(event.id, provider="glassix"))
            routing = Routing(event_id=event.id, matched_rules=("r",), trace=(), deliveries=batch)
            await store.save_routing(routing, now=T0 + n)
            keys.update({d.id: d.correlate for d in batch})
    return keys


def test_routing_while_workers_finish_leaves_no_key_stuck_or_out_of_order(url: str) -> None:
    async def seed() -> list[str]:
        async with opened(url) as store:
            events = [make_event(received_at=T0 + n) for n in range(150)]
            await store.ingest(events, dedupe_window=WINDOW, now=T0)
            return [event.id for event in events]

    event_ids = asyncio.run(seed())
    routed = threading.Event()
    lock = threading.Lock()
    claimed: list[str] = []

    async def router() -> None:
        async with opened(url) as store:
            for n, event_id in enumerate(event_ids):
                deliveries = [make_delivery(event_id, correlate=f"k{n % 3}") for _ in range(2)]
                routing = Routing(
                    event_id=event_id, matched_rules=("r",), trace=(), deliveries=deliveries
                )
                await store.save_routing(routing, now=T0 + 1)
                await asyncio.sleep(0.002)  # at the workers' pace: queues stay short
        routed.set()

    async def worker() -> None:
        async with opened(url) as store:
            idle = 0
            while idle < 30:
                claims = await store.claim_due(now=T0 + 1000, limit=3, lease=600)
                idle = 0 if claims or not routed.is_set() else idle + 1
                with lock:
                    claimed.extend(claim.delivery.id for claim in claims)
                for claim in claims:
                    done = result_for(claim, DeliveryStatus.DONE)
                    assert await store.finish_attempt(claim, done, now=T0 + 10)
                await asyncio.sleep(0 if claims else 0.005)

    in_threads(router, worker, worker)

    assert query(url, "SELECT status, count(*) FROM deliveries GROUP BY status") == [
        ("done", 2 * len(event_ids))
    ]
    seq = dict(query(url, "SELECT id, seq FROM deliveries"))
    key = dict(query(url, "SELECT id, correlate FROM deliveries"))
    for correlate in {"k0", "k1", "k2"}:
        order = [seq[d] for d in claimed if key[d] == correlate]
        assert order == sorted(order), f"key {correlate} was claimed out of order"


def test_a_key_goes_in_the_order_its_webhooks_arrived_whichever_was_routed_first(
    run: Run[Any], url: str
) -> None:
    async def scenario() -> None:
        async with opened(url) as store:
            early, late = make_event(received_at=T0), make_event(received_at=T0 + 1)
            await store.ingest([early, late], dedupe_window=WINDOW, now=T0 + 1)
            first = make_delivery(early.id, correlate="order-1")
            second = make_delivery(late.id, correlate="order-1")
            loose = make_delivery(late.id)  # on no key: nothing to wait for

            # another worker routes the later webhook first
            await store.save_routing(
                Routing(event_id=late.id, matched_rules=(), trace=(), deliveries=[second, loose]),
                now=T0 + 2,
            )
            claims = await store.claim_due(now=T0 + 2, limit=10, lease=60)
            assert [c.delivery.id for c in claims] == [loose.id]  # `early` may bring `first`
            await store.save_routing(
                Routing(event_id=early.id, matched_rules=(), trace=(), deliveries=[first]),
                now=T0 + 3,
            )
            detail = await store.get_event(late.id)
            assert detail is not None
            [waiting] = [d for d in detail.deliveries if d.id == second.id]
            assert (waiting.status, waiting.blocked_by) == (DeliveryStatus.WAITING, first.id)

            order = []
            for step in range(2):
                [claim] = await store.claim_due(now=T0 + 4 + step, limit=10, lease=60)
                order.append(claim.delivery.id)
                done = result_for(claim, DeliveryStatus.DONE)
                assert await store.finish_attempt(claim, done, now=T0 + 4 + step)
            assert order == [first.id, second.id]

    run(scenario())


def test_finishing_the_head_of_a_key_waits_for_a_routing_of_that_key_in_progress(
    run: Run[Any], url: str
) -> None:
    async def scenario() -> tuple[bool, bool, DeliveryStatus]:
        async with opened(url) as store:
            first = make_event()
            await store.ingest([first], dedupe_window=WINDOW, now=T0)
            head = make_delivery(first.id, correlate="k")
            await store.save_routing(
                Routing(event_id=first.id, matched_rules=(), trace=(), deliveries=[head]), now=T0
            )
            [claim] = await store.claim_due(now=T0, limit=10, lease=60)
            second = make_event()
            await store.ingest([second], dedupe_window=WINDOW, now=T0)
            follower = make_delivery(second.id, correlate="k")
            async with (
                await psycopg.AsyncConnection.connect(
                    url, autocommit=True, row_factory=dict_row
                ) as router,
                router.transaction(),
            ):
                # another process routes `follower` behind the head, and has not committed
                await postgres.drive(
                    router,
                    intake.save_routing(
                        Routing(
                            event_id=second.id,
                            matched_rules=(),
                            trace=(),
                            deliveries=[follower],
                            only_if_unrouted=True,
                        ),
                        now=T0,
                    ),
                )
                finishing = asyncio.create_task(
                    store.finish_attempt(claim, result_for(claim, DeliveryStatus.DONE), now=T0)
                )
                await asyncio.sleep(0.3)
                waited = not finishing.done()
            finished = await finishing
            detail = await store.get_event(second.id)
            assert detail is not None
            return waited, finished, detail.deliveries[0].status

    waited, finished, follower_status = run(scenario())

    assert waited, "the finish went ahead of a routing of its key that was in progress"
    assert finished
    assert follower_status is DeliveryStatus.PENDING  # released, not left waiting forever


def test_one_dedupe_key_ingested_by_two_receivers_at_once_is_stored_once(url: str) -> None:
    async def receiver() -> list[IngestResult]:
        async with opened(url) as store:
            results = []
            for n in range(30):
                event = make_event(dedupe_key=f"k{n}")
                results += await store.ingest([event], dedupe_window=WINDOW, now=T0)
            return results

    first, second = in_threads(receiver, receiver)

    for a, b in zip(first, second, strict=True):
        assert a.event_id == b.event_id
        assert a.duplicate != b.duplicate
    assert query(url, "SELECT count(*) FROM events") == [(30,)]


def test_of_two_routers_whose_leases_overlapped_only_one_stores_its_routing(url: str) -> None:
    async def seed() -> list[str]:
        async with opened(url) as store:
            events = [make_event() for _ in range(20)]
            await store.ingest(events, dedupe_window=WINDOW, now=T0)
            return [event.id for event in events]

    event_ids = asyncio.run(seed())

    async def router() -> list[bool]:
        async with opened(url) as store:
            saved = []
            for event_id in event_ids:
                routing = Routing(
                    event_id=event_id,
                    matched_rules=("r",),
                    trace=(),
                    deliveries=[make_delivery(event_id, correlate="same")],
                    only_if_unrouted=True,
                )
                saved.append(await store.save_routing(routing, now=T0 + 1))
            return saved

    first, second = in_threads(router, router)

    assert [a != b for a, b in zip(first, second, strict=True)] == [True] * len(event_ids)
    assert query(url, "SELECT count(*) FROM deliveries") == [(len(event_ids),)]


def test_a_rate_bucket_is_shared_by_workers_claiming_at_once(url: str) -> None:
    providers = [f"desk{n}" for n in range(20)]

    async def seed() -> None:
        async with opened(url) as store:
            event = make_event()
            await store.ingest([event], dedupe_window=WINDOW, now=T0)
            deliveries = [make_delivery(event.id, provider=p) for p in providers for _ in range(5)]
            routing = Routing(event_id=event.id, matched_rules=(), trace=(), deliveries=deliveries)
            await store.save_routing(routing, now=T0)

    asyncio.run(seed())
    rate = RateLimit(per_second=1, burst=2)
    for provider in providers:  # buckets that exist already: only the row lock keeps them
        query(url, "INSERT INTO rate_buckets VALUES (%s, 2, %s)", provider, T0)
    start = threading.Barrier(3)

    async def worker() -> int:
        async with opened(url) as store:
            await asyncio.to_thread(start.wait, 10)
            got = 0
            rates = dict.fromkeys(providers, rate)
            for provider in providers:  # each provider's bucket raced for by every worker
                room = {p: 5 if p == provider else 0 for p in providers}
                claims = await store.claim_due(
                    now=T0, limit=10, lease=60, per_provider=room, rates=rates
                )
                got += len(claims)
            return got

    # the burst of each provider, and not a token more
    assert sum(in_threads(worker, worker, worker)) == 2 * len(providers)


def test_stores_opening_at_once_apply_each_migration_once(url: str) -> None:
    async def open_many() -> None:
        stores = [PostgresStore(url, max_connections=1) for _ in range(6)]
        await asyncio.gather(*(store.open() for store in stores))
        await asyncio.gather(*(store.close() for store in stores))

    in_threads(open_many, open_many)

    versions = [m.version for m in load_migrations("postgres")]
    assert query(url, "SELECT version FROM schema_migrations ORDER BY version") == [
        (v,) for v in versions
    ]
    assert versions[:3] == [1, 2, 3]


def test_a_statement_given_a_list_is_never_prepared_and_the_others_are(url: str) -> None:
    """psycopg prepares a statement from its fifth run, and PostgreSQL keeps a generic plan;
    one given a list is planned for its list every time instead (the generic plan of
    tickets_of_keys read every ticket of a provider)."""

    async def prepared_after_runs() -> list[str]:
        store = PostgresStore(url, max_connections=1)
        await store.open()
        await store.close()
        connection = await psycopg.AsyncConnection.connect(url, autocommit=True)
        try:
            listed = Query("tickets_of_keys", {"providers": ["desk"], "correlates": ["k"]})
            plain = Query("first_with_key", {"source": "shop", "key": "k"})
            for _ in range(8):
                await postgres._execute(connection, listed)
                await postgres._execute(connection, plain)
            cursor = await connection.execute("SELECT statement FROM pg_prepared_statements")
            return [row[0] for row in await cursor.fetchall()]
        finally:
            await connection.close()

    statements = asyncio.run(prepared_after_runs())
    assert any("FROM dedupe" in sql for sql in statements)
    assert not any("FROM tickets" in sql for sql in statements)


def test_where_autovacuum_is_off_the_store_does_what_it_would_by_its_rule(
    run: Run[Any], url: str
) -> None:
    """With autovacuum off (here for the tables, whatever the server's setting), a table is
    analyzed once more rows changed than autovacuum's threshold allows (50 on a table never
    analyzed) and vacuumed once more rows died than its threshold allows (50 + a fifth),
    and not again until as many change again."""

    async def tend() -> tuple[Tended, Tended, Tended]:
        async with opened(url) as store:
            for table in autovacuum.TABLES:
                query(url, f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
            untouched = await store.tend_tables()
            events = [make_event(dedupe_key=f"k-{n}") for n in range(80)]
            await store.ingest(events, dedupe_window=WINDOW, now=T0)
            routings = [
                Routing(event_id=event.id, matched_rules=(), trace=[], deliveries=[])
                for event in events
            ]
            await store.save_routings(routings, now=T0)  # each event rewritten: 80 dead rows
            tended = await _tended_when_reported(store)
            return untouched, tended, await store.tend_tables()

    untouched, tended, again = run(tend())

    assert not untouched
    assert tended == Tended(vacuumed=("events",), analyzed=("dedupe",))
    assert not again
    stamps = query(
        url,
        "SELECT relname, last_vacuum IS NOT NULL, last_analyze IS NOT NULL"
        " FROM pg_stat_user_tables WHERE schemaname = current_schema()"
        " AND relname IN ('events', 'dedupe') ORDER BY relname",
    )
    assert stamps == [("dedupe", False, True), ("events", True, True)]


async def _tended_when_reported(store: PostgresStore) -> Tended:
    """A server reports a connection's changes within seconds (PGSTAT_IDLE_INTERVAL): tend
    until it has (bounded)."""
    deadline = asyncio.get_running_loop().time() + 20
    tended = Tended()
    while not tended and asyncio.get_running_loop().time() < deadline:
        tended = await store.tend_tables()
        if not tended:
            await asyncio.sleep(0.2)
    return tended


def test_migration_7_makes_a_waiting_delivery_with_nothing_before_it_pending(
    run: Run[Any], url: str
) -> None:
    async def at_0006() -> None:
        connection = await connect(Credentials.of(url), timeout=5)
        try:
            await drive(connection, apply_migrations(load_migrations("postgres")[:6], now=T0))
        finally:
            await connection.close()

    async def opened_at_0007() -> tuple[dict[str, DeliveryStatus], set[str]]:
        async with opened(url) as store:
            found = {}
            for name in BEFORE_0007_AFTER:
                delivery = await store.get_delivery(name)
                assert delivery is not None
                found[name] = delivery.status
            claimed = await store.claim_due(now=T0 + 10, limit=10, lease=30)
            return found, {c.delivery.id for c in claimed}

    run(at_0006())
    for statement in BEFORE_0007:
        query(url, statement)
    found, claimed = run(opened_at_0007())
    assert found == BEFORE_0007_AFTER
    assert claimed == {"dlv_left", "dlv_unkeyed"}


def test_a_database_newer_than_the_code_is_refused(run: Run[Any], url: str) -> None:
    run(_open_close(url))
    query(url, "INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)")

    store = PostgresStore(url)
    with pytest.raises(StoreError, match="schema version 9999"):
        run(store.open())


async def _open_close(url: str) -> None:
    async with opened(url):
        pass


# -- group commit ----------------------------------------------------------------------------


def test_concurrent_ingests_share_one_transaction(run: Run[Any], url: str) -> None:
    async def many() -> list[list[IngestResult]]:
        async with opened(url) as store:
            return await asyncio.gather(
                *(store.ingest([make_event()], dedupe_window=WINDOW, now=T0) for _ in range(20))
            )

    results = run(many())

    assert all(not result.duplicate for [result] in results)
    # rows written by one transaction share its id (xmin)
    [(transactions,)] = query(url, "SELECT count(DISTINCT xmin::text) FROM events")
    assert transactions <= 2
    assert query(url, "SELECT count(*) FROM events") == [(20,)]


def test_an_ingest_that_fails_fails_alone_and_the_others_commit(run: Run[Any], url: str) -> None:
    taken = make_event()
    bad = make_event(id=taken.id)  # the same primary key: this insert fails

    async def together() -> list[Any]:
        async with opened(url) as store:
            await store.ingest([taken], dedupe_window=WINDOW, now=T0)
            calls = [store.ingest([make_event()], dedupe_window=WINDOW, now=T0) for _ in range(3)]
            calls.insert(1, store.ingest([bad], dedupe_window=WINDOW, now=T0))
            return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = run(together())

    assert isinstance(outcomes[1], StoreError) and not isinstance(outcomes[1], StoreUnavailable)
    assert not isinstance(outcomes[1], psycopg.Error)
    assert [type(o) for i, o in enumerate(outcomes) if i != 1] == [list] * 3
    assert query(url, "SELECT count(*) FROM events") == [(4,)]


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("password", [PASSWORD, "p@ss:w/rd%&x"])
def test_a_server_that_refuses_is_unavailable_and_the_password_never_shows(
    run: Run[Any], password: str
) -> None:
    store = PostgresStore(f"postgresql://bridge:{quote(password, safe='')}@127.0.0.1:1/test")

    with pytest.raises(StoreUnavailable) as raised:
        run(store.open())

    said = everything_said(raised.value)
    assert password not in said and quote(password, safe="") not in said
    assert "postgresql://bridge@127.0.0.1:1/test" in str(raised.value)
    assert password not in repr(store.__dict__)


@pytest.mark.parametrize(
    "template",
    [
        "postgresql://postgres:{pw}@{host}:{port}/no_such_database_{tag}",
        "postgresql://postgres@{host}:{port}/no_such_database_{tag}?password={pw}",
        "host={host} port={port} dbname=no_such_database_{tag} password={pw}",
    ],
)
def test_an_error_from_the_server_never_shows_the_password(run: Run[Any], template: str) -> None:
    server = psycopg.conninfo.conninfo_to_dict(postgres_server())
    url = template.format(
        pw=PASSWORD,
        host=server.get("host", "127.0.0.1"),
        port=server.get("port", 5432),
        tag=secrets.token_hex(3),
    )
    store = PostgresStore(url, timeout=2)

    with pytest.raises(StoreError) as raised:
        run(store.open())

    assert "does not exist" in str(raised.value)  # failing to connect: unavailable, say why
    assert PASSWORD not in everything_said(raised.value)


def test_a_malformed_url_is_refused_at_construction_without_its_password() -> None:
    with pytest.raises(StoreError) as raised:
        PostgresStore(f"host=127.0.0.1 password={PASSWORD} nonsense")

    assert PASSWORD not in everything_said(raised.value)


def test_a_dropped_connection_is_unavailable_once_and_the_pool_recovers(
    run: Run[Any], url: str
) -> None:
    name = f"tb_{secrets.token_hex(4)}"
    store = PostgresStore(f"{url}&application_name={name}", min_connections=1, max_connections=1)
    run(store.open())
    try:
        run(store.ping())
        query(
            url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            name,
        )

        with pytest.raises(StoreUnavailable):
            run(store.ping())
        run(store.ping())
        [result] = run(store.ingest([make_event()], dedupe_window=WINDOW, now=T0))
        assert not result.duplicate
    finally:
        run(store.close())


def test_a_closed_store_is_unavailable(run: Run[Any], url: str) -> None:
    store = PostgresStore(url)
    run(store.open())
    run(store.close())
    run(store.close())  # twice is harmless

    with pytest.raises(StoreUnavailable):
        run(store.ping())
    with pytest.raises(StoreUnavailable):
        run(store.ingest([make_event()], dedupe_window=WINDOW, now=T0))


def test_bad_options_are_refused_at_construction() -> None:
    with pytest.raises(StoreError, match="connections"):
        PostgresStore("postgresql://x@127.0.0.1/db", min_connections=3, max_connections=2)
    with pytest.raises(StoreError, match="timeout"):
        PostgresStore("postgresql://x@127.0.0.1/db", timeout=0)


# -- open_store ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bridge:pw@db.internal:5432/bridge",
        "postgres://bridge@db.internal/bridge?sslmode=require",
    ],
)
def test_open_store_reads_postgres_urls(url: str) -> None:
    store = open_store(url)

    assert isinstance(store, PostgresStore)
    assert "pw" not in store.url and store.url.startswith("postgresql://bridge@db.internal")


def test_an_opened_store_from_a_url_works(run: Run[Any], url: str) -> None:
    store = open_store(url)
    run(store.open())
    try:
        event_id = ingest_one(run, store)
        route(run, store, event_id, [make_delivery(event_id)])
        [claim] = run(store.claim_due(now=T0, limit=10, lease=30))
        assert isinstance(claim, Claim)
    finally:
        run(store.close())


def test_a_listener_wakes_when_another_process_commits_work(run: Run[Any], url: str) -> None:
    async def main() -> None:
        async with opened(url) as receiver, opened(url) as worker:
            woken = asyncio.Event()
            worker.listen(woken.set)
            await asyncio.wait_for(woken.wait(), BOUND)  # once when it starts listening
            woken.clear()
            await receiver.ingest([make_event()], dedupe_window=WINDOW, now=T0)
            await asyncio.wait_for(woken.wait(), BOUND)  # the event
            woken.clear()
            await receiver.hold_provider(
                ProviderHold(
                    provider="desk", state=HoldState.PAUSED, since=T0, until=T0 + 60, reason="x"
                )
            )
            assert await receiver.release_provider("desk")
            await asyncio.wait_for(woken.wait(), BOUND)  # the provider resumed

    run(main())


def test_while_the_database_is_down_a_request_waits_a_moment_not_the_whole_timeout() -> None:
    """Measured in bench/ (pgdown): receivers answered 503 after up to 10 s while PostgreSQL
    was stopped, each queued batch waiting the pool's 5 s for a connection."""
    waits: list[float] = []

    class Down:
        reachable = False
        errors = 0  # failed connection attempts, counted by the pool

        def get_stats(self) -> dict[str, int]:
            if not self.reachable:
                self.errors += 1  # the pool's own reconnecting fails too
            return {"connections_errors": self.errors}

        @asynccontextmanager
        async def connection(self, timeout: float) -> AsyncIterator[object]:
            waits.append(timeout)
            if not self.reachable:
                raise psycopg_pool.PoolTimeout(f"couldn't get a connection after {timeout} sec")
            yield object()

    store = PostgresStore("postgresql://postgres@127.0.0.1:1/test", timeout=5.0)
    pool = Down()
    store._pool = pool  # type: ignore[assignment]

    async def use() -> None:
        async with store._connection():
            pass

    async def main() -> None:
        for _ in range(2):
            with pytest.raises(psycopg.OperationalError):
                await use()
        pool.reachable = True
        await use()
        await use()
        # all its connections busy, not the database gone (no failed connection attempt): the
        # next waits the whole timeout
        pool.reachable = False
        pool.get_stats = lambda: {"connections_errors": pool.errors}  # type: ignore[method-assign]
        for _ in range(2):
            with pytest.raises(psycopg.OperationalError):
                await use()

    asyncio.run(main())
    short = postgres.UNREACHABLE_WAIT
    assert waits == [5.0, short, short, 5.0, 5.0, 5.0]
