"""What is particular to the SQLite store: group commit, durability across restarts,
migrations, pragmas, error mapping, and open_store's URLs."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.exceptions import StoreError, StoreUnavailable
from bridge.records import DeliveryStatus, IngestResult, Routing
from bridge.store import open_store
from bridge.store.schema import apply_migrations, load_migrations
from bridge.store.sqlite import SQLiteStore, drive

from .conftest import (
    BEFORE_0007,
    BEFORE_0007_AFTER,
    T0,
    Run,
    make_delivery,
    make_event,
    result_for,
)

WINDOW = 3600.0
BOUND = 10.0  # seconds any wait in these tests may take before it counts as a failure


class CommitGate:
    """Holds the writer inside commit() while closed, counts commits, fails one on demand."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()
        self.blocked = threading.Event()  # a commit is waiting at the closed gate
        self.commits = 0
        self.fail_next: sqlite3.Error | None = None
        self.statements: list[str] = []
        self.threads: list[str] = []  # the thread each statement ran on
        self._lock = threading.Lock()

    def close(self) -> None:
        self.blocked.clear()
        self.open.clear()

    def connection_factory(self) -> type[sqlite3.Connection]:
        gate = self

        class GatedConnection(sqlite3.Connection):
            def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
                gate.statements.append(sql)
                gate.threads.append(threading.current_thread().name)
                return super().execute(sql, *args)

            def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
                gate.statements.append(sql)
                gate.threads.append(threading.current_thread().name)
                return super().executemany(sql, *args)

            def commit(self) -> None:
                with gate._lock:
                    failure, gate.fail_next = gate.fail_next, None
                if not gate.open.is_set():
                    gate.blocked.set()
                    assert gate.open.wait(BOUND), "the gate was never opened"
                if failure is not None:
                    raise failure
                super().commit()
                with gate._lock:
                    gate.commits += 1

        return GatedConnection


@pytest.fixture
def gate() -> CommitGate:
    return CommitGate()


@pytest.fixture
def gated_store(run: Run[Any], tmp_path: Path, gate: CommitGate) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "gated.db", connection_factory=gate.connection_factory())
    run(store.open())
    try:
        yield store
    finally:
        gate.open.set()
        run(store.close())


@pytest.fixture
def sqlite_store(run: Run[Any], tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "plain.db")
    run(store.open())
    try:
        yield store
    finally:
        run(store.close())


async def wait_until_blocked(gate: CommitGate) -> None:
    assert await asyncio.to_thread(gate.blocked.wait, BOUND), "the writer never reached commit"
    for _ in range(10):  # let any callback the writer posted before committing run
        await asyncio.sleep(0)


@contextlib.contextmanager
def raw_connection(path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(path)
    try:
        yield connection
    finally:
        connection.close()


# -- group commit ------------------------------------------------------------------------------


def test_concurrent_ingests_share_commits_and_return_only_after_the_commit(
    run: Run[Any], gated_store: SQLiteStore, gate: CommitGate
) -> None:
    calls = 20

    async def main() -> None:
        gate.close()
        before = gate.commits
        events = [make_event(dedupe_key=f"k{i}") for i in range(calls)]
        tasks = [
            asyncio.create_task(gated_store.ingest([e], dedupe_window=WINDOW, now=T0))
            for e in events
        ]
        await wait_until_blocked(gate)

        assert not any(task.done() for task in tasks)

        gate.open.set()
        results = await asyncio.wait_for(asyncio.gather(*tasks), BOUND)
        assert [r for [r] in results] == [
            IngestResult(event_id=e.id, duplicate=False) for e in events
        ]
        assert 1 <= gate.commits - before <= 2  # one commit held, the rest queued behind it
        assert len(await gated_store.list_events(limit=100)) == calls

    run(main())


def test_reads_do_not_wait_behind_a_commit(
    run: Run[Any], gated_store: SQLiteStore, gate: CommitGate
) -> None:
    async def main() -> None:
        stored = make_event()
        await gated_store.ingest([stored], dedupe_window=WINDOW, now=T0)
        gate.close()
        pending = asyncio.create_task(
            gated_store.ingest([make_event()], dedupe_window=WINDOW, now=T0)
        )
        await wait_until_blocked(gate)

        detail = await asyncio.wait_for(gated_store.get_event(stored.id), BOUND)
        assert detail is not None
        await asyncio.wait_for(gated_store.ping(), BOUND)
        assert not pending.done()

        gate.open.set()
        await asyncio.wait_for(pending, BOUND)

    run(main())


def test_a_failing_operation_is_rolled_back_alone_and_the_batch_commits(
    run: Run[Any], gated_store: SQLiteStore, gate: CommitGate
) -> None:
    async def main() -> None:
        existing = make_event()
        await gated_store.ingest([existing], dedupe_window=WINDOW, now=T0)
        gate.close()
        blocker = asyncio.create_task(
            gated_store.ingest([make_event()], dedupe_window=WINDOW, now=T0)
        )
        await wait_until_blocked(gate)
        # queued behind the held commit, so they run in one batch
        good1, good2 = make_event(), make_event()
        written_then_undone = make_event(dedupe_key="undone")
        clash = make_event(id=existing.id)  # the same id again: the insert fails
        tasks = [
            asyncio.create_task(gated_store.ingest(batch, dedupe_window=WINDOW, now=T0))
            for batch in ([good1], [written_then_undone, clash], [good2])
        ]
        for _ in range(10):
            await asyncio.sleep(0)
        before = gate.commits
        gate.open.set()
        results = await asyncio.wait_for(
            asyncio.gather(*tasks, blocker, return_exceptions=True), BOUND
        )

        # the blocker's; the batch's, where the three ingests share one step that fails; then
        # the three again, each alone, in one more transaction
        assert gate.commits - before == 3
        assert results[0] == [IngestResult(event_id=good1.id, duplicate=False)]
        assert isinstance(results[1], StoreError)
        assert not isinstance(results[1], sqlite3.Error)
        assert results[2] == [IngestResult(event_id=good2.id, duplicate=False)]
        assert await gated_store.get_event(good1.id) is not None
        assert await gated_store.get_event(good2.id) is not None
        assert await gated_store.get_event(written_then_undone.id) is None
        [again] = await gated_store.ingest(
            [make_event(dedupe_key="undone")], dedupe_window=WINDOW, now=T0
        )
        assert not again.duplicate  # its dedupe row was rolled back too

    run(main())


def test_ingests_queued_together_share_one_step_and_see_each_others_keys(
    run: Run[Any], gated_store: SQLiteStore, gate: CommitGate
) -> None:
    async def main() -> None:
        gate.close()
        blocker = asyncio.create_task(
            gated_store.ingest([make_event()], dedupe_window=WINDOW, now=T0)
        )
        await wait_until_blocked(gate)
        first, again, other = (
            make_event(dedupe_key="k"),
            make_event(dedupe_key="k"),
            make_event(),
        )
        tasks = [
            asyncio.create_task(gated_store.ingest([e], dedupe_window=WINDOW, now=T0))
            for e in (first, again, other)
        ]
        for _ in range(10):
            await asyncio.sleep(0)
        before, mark = gate.commits, len(gate.statements)
        gate.open.set()
        results = await asyncio.wait_for(asyncio.gather(*tasks, blocker), BOUND)

        assert gate.commits - before == 2  # the blocker's, then one for the three
        ran = list(zip(gate.statements[mark:], gate.threads[mark:], strict=True))
        assert [sql for sql, _ in ran if sql.startswith("SAVEPOINT")] == ["SAVEPOINT op_0"]
        # with no other process holding the write lock, it is taken on the loop, where the
        # ingest's statements run; the commit (the fsync) is on the writer thread
        assert [thread for sql, thread in ran if sql == "BEGIN IMMEDIATE"] == ["MainThread"]
        assert {thread for sql, thread in ran if "dedupe" in sql} == {"MainThread"}
        assert results[:3] == [
            [IngestResult(event_id=first.id, duplicate=False)],
            [IngestResult(event_id=first.id, duplicate=True)],  # the first one's key
            [IngestResult(event_id=other.id, duplicate=False)],
        ]
        assert await gated_store.get_event(again.id) is None

    run(main())


def test_finishes_queued_together_share_one_step_on_the_writer_thread(
    run: Run[Any], gated_store: SQLiteStore, gate: CommitGate
) -> None:
    async def main() -> None:
        events = [make_event(received_at=T0 + i) for i in range(4)]
        await gated_store.ingest(events, dedupe_window=WINDOW, now=T0)
        for event in events:
            routing = Routing(
                event_id=event.id,
                matched_rules=("r",),
                trace=[],
                deliveries=[make_delivery(event.id, correlate=f"k-{event.id}")],
            )
            await gated_store.save_routing(routing, now=T0)
        blocking, *claims = await gated_store.claim_due(now=T0, limit=10, lease=30)
        gate.close()
        done = DeliveryStatus.DONE
        blocker = asyncio.create_task(
            gated_store.finish_attempt(blocking, result_for(blocking, done), now=T0 + 1)
        )
        await wait_until_blocked(gate)
        tasks = [
            asyncio.create_task(gated_store.finish_attempt(c, result_for(c, done), now=T0 + 1))
            for c in claims
        ]
        for _ in range(10):
            await asyncio.sleep(0)
        before, mark = gate.commits, len(gate.statements)
        gate.open.set()
        assert await asyncio.wait_for(asyncio.gather(*tasks, blocker), BOUND) == [True] * 4

        assert gate.commits - before == 2  # the blocker's, then one for the three
        ran = list(zip(gate.statements[mark:], gate.threads[mark:], strict=True))
        assert [sql for sql, _ in ran if sql.startswith("SAVEPOINT")] == ["SAVEPOINT op_0"]
        # one statement of each kind for the three
        assert len([sql for sql, _ in ran if sql.startswith("INSERT INTO attempts")]) == 1
        assert "MainThread" not in {thread for _, thread in ran}  # off the loop

    run(main())


def test_an_ingest_waits_off_the_loop_for_a_write_lock_another_process_holds(
    run: Run[Any], tmp_path: Path, gated_store: SQLiteStore, gate: CommitGate
) -> None:
    other = sqlite3.connect(tmp_path / "gated.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # as a worker process's transaction would

    async def main() -> None:
        event = make_event()
        ingest = asyncio.create_task(gated_store.ingest([event], dedupe_window=WINDOW, now=T0))
        # the loop is free while the ingest waits: this coroutine runs, and sees it waiting
        waited = time.monotonic() + BOUND
        while gate.threads[-1:] != ["sqlite-writer_0"]:
            assert time.monotonic() < waited, "the ingest never went to wait on the writer thread"
            await asyncio.sleep(0.01)
        assert not ingest.done()
        other.execute("COMMIT")
        assert await asyncio.wait_for(ingest, BOUND) == [
            IngestResult(event_id=event.id, duplicate=False)
        ]
        ran = zip(gate.statements, gate.threads, strict=True)
        begins = [thread for sql, thread in ran if sql == "BEGIN IMMEDIATE"]
        assert begins[-2:] == ["MainThread", "sqlite-writer_0"]  # tried at once, then waited

    try:
        run(main())
    finally:
        other.close()


def test_a_failed_commit_fails_every_operation_of_the_batch(
    run: Run[Any], gated_store: SQLiteStore, gate: CommitGate
) -> None:
    async def main() -> None:
        gate.close()
        blocker = asyncio.create_task(
            gated_store.ingest([make_event()], dedupe_window=WINDOW, now=T0)
        )
        await wait_until_blocked(gate)
        lost = [make_event(), make_event(dedupe_key="lost")]
        tasks = [
            asyncio.create_task(gated_store.ingest([e], dedupe_window=WINDOW, now=T0)) for e in lost
        ]
        for _ in range(10):
            await asyncio.sleep(0)
        gate.fail_next = sqlite3.OperationalError("disk I/O error")  # the batch's commit
        gate.open.set()

        await asyncio.wait_for(blocker, BOUND)
        for task in tasks:
            with pytest.raises(StoreUnavailable):
                await asyncio.wait_for(task, BOUND)
        for event in lost:
            assert await gated_store.get_event(event.id) is None
        # the store goes on working, and nothing of the failed batch was kept
        [retried] = await gated_store.ingest(
            [make_event(dedupe_key="lost")], dedupe_window=WINDOW, now=T0
        )
        assert not retried.duplicate

    run(main())


def test_close_commits_what_is_queued(run: Run[Any], tmp_path: Path) -> None:
    path = tmp_path / "x.db"

    async def main() -> list[str]:
        store = SQLiteStore(path)
        await store.open()
        events = [make_event() for _ in range(5)]
        tasks = [
            asyncio.create_task(store.ingest([e], dedupe_window=WINDOW, now=T0)) for e in events
        ]
        await asyncio.sleep(0)  # the tasks queue their operations
        await store.close()
        results = await asyncio.wait_for(asyncio.gather(*tasks), BOUND)
        assert [r.event_id for [r] in results] == [e.id for e in events]
        with pytest.raises(StoreUnavailable):
            await store.ingest([make_event()], dedupe_window=WINDOW, now=T0)
        with pytest.raises(StoreUnavailable):
            await store.ping()
        return [e.id for e in events]

    ids = run(main())
    with raw_connection(path) as connection:
        assert {row[0] for row in connection.execute("SELECT id FROM events")} == set(ids)


# -- durability and migrations ---------------------------------------------------------------


def test_everything_is_still_there_after_a_restart(run: Run[Any], tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "bridge.db"

    async def first_life() -> tuple[str, str]:
        store = SQLiteStore(path)
        await store.open()
        try:
            event = make_event(dedupe_key="k", raw=b"body")
            await store.ingest([event], dedupe_window=WINDOW, now=T0)
            create = make_delivery(event.id, correlate="chat")
            update = make_delivery(event.id, correlate="chat")
            routing = Routing(
                event_id=event.id, matched_rules=("r",), trace=(), deliveries=[create, update]
            )
            await store.save_routing(routing, now=T0)
            [claim] = await store.claim_due(now=T0, limit=10, lease=30)
            result = result_for(claim, DeliveryStatus.DONE, ticket_ref={"id": "T-1"})
            assert await store.finish_attempt(claim, result, now=T0 + 1)
            return event.id, update.id
        finally:
            await store.close()

    async def second_life(event_id: str, update_id: str) -> None:
        store = SQLiteStore(path)
        await store.open()
        try:
            detail = await store.get_event(event_id)
            assert detail is not None
            assert detail.event.matched_rules == ("r",)
            assert [d.status for d in detail.deliveries] == [
                DeliveryStatus.DONE,
                DeliveryStatus.PENDING,
            ]
            assert len(detail.deliveries[0].attempt_log) == 1
            assert await store.get_raw(event_id) == b"body"
            [dup] = await store.ingest([make_event(dedupe_key="k")], dedupe_window=WINDOW, now=T0)
            assert dup == IngestResult(event_id=event_id, duplicate=True)
            [claim] = await store.claim_due(now=T0 + 2, limit=10, lease=30)
            assert claim.delivery.id == update_id
            assert dict(claim.ticket_ref or {}) == {"id": "T-1"}
        finally:
            await store.close()

    run(second_life(*run(first_life())))


def test_a_json_body_is_written_once(run: Run[Any], sqlite_store: SQLiteStore) -> None:
    body = '{"n": "é"}'
    json_body = make_event(payload=body, raw=body.encode())
    form_body = make_event(payload='{"n": "1"}', raw=b"n=1")
    run(sqlite_store.ingest([json_body, form_body], dedupe_window=WINDOW, now=T0))

    with raw_connection(sqlite_store.path) as connection:
        stored = dict(connection.execute("SELECT id, raw FROM events").fetchall())
    assert stored == {json_body.id: None, form_body.id: b"n=1"}
    assert run(sqlite_store.get_raw(json_body.id)) == body.encode()
    assert run(sqlite_store.get_raw(form_body.id)) == b"n=1"


def test_an_events_status_is_written_only_when_it_changes(
    run: Run[Any], sqlite_store: SQLiteStore
) -> None:
    """The events row holds the body: routing an event whose status stays `accepted` does
    not write it again; the delivery's end, which makes it `done`, does."""
    [event_id] = [
        r.event_id for r in run(sqlite_store.ingest([make_event()], dedupe_window=WINDOW, now=T0))
    ]
    with raw_connection(sqlite_store.path) as connection:
        connection.executescript(
            "CREATE TABLE status_writes (n INTEGER);"
            "CREATE TRIGGER count_status AFTER UPDATE OF status ON events"
            " BEGIN INSERT INTO status_writes VALUES (1); END;"
        )

    def writes() -> int:
        with raw_connection(sqlite_store.path) as connection:
            return int(connection.execute("SELECT count(*) FROM status_writes").fetchone()[0])

    routing = Routing(
        event_id=event_id,
        matched_rules=("r",),
        trace=[],
        deliveries=[make_delivery(event_id, correlate="k")],
    )
    run(sqlite_store.save_routing(routing, now=T0))
    assert writes() == 0
    [claim] = run(sqlite_store.claim_due(now=T0, limit=10, lease=30))
    assert run(sqlite_store.finish_attempt(claim, result_for(claim, DeliveryStatus.DONE), now=T0))
    assert writes() == 1


def test_migrations_run_once_and_are_recorded(run: Run[Any], tmp_path: Path) -> None:
    path = tmp_path / "m.db"

    def open_and_read_migrations() -> list[tuple[int, float]]:
        store = SQLiteStore(path)
        run(store.open())
        run(store.close())
        with raw_connection(path) as connection:
            return connection.execute(
                "SELECT version, applied_at FROM schema_migrations"
            ).fetchall()

    first_rows = open_and_read_migrations()
    rows = open_and_read_migrations()

    assert rows == first_rows
    assert [version for version, _ in rows] == [m.version for m in load_migrations("sqlite")]
    assert rows[0][0] == 1
    with raw_connection(path) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {"events", "deliveries", "attempts", "tickets", "dedupe"} <= tables


def test_migration_7_makes_a_waiting_delivery_with_nothing_before_it_pending(
    run: Run[Any], tmp_path: Path
) -> None:
    path = tmp_path / "0006.db"
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.row_factory = sqlite3.Row
        drive(connection, apply_migrations(load_migrations("sqlite")[:6], now=T0))
        for statement in BEFORE_0007:
            connection.execute(statement)
    finally:
        connection.close()

    store = SQLiteStore(path)
    run(store.open())
    try:
        found = {name: run(store.get_delivery(name)).status for name in BEFORE_0007_AFTER}
        claimed = run(store.claim_due(now=T0 + 10, limit=10, lease=30))
    finally:
        run(store.close())
    assert found == BEFORE_0007_AFTER
    assert {c.delivery.id for c in claimed} == {"dlv_left", "dlv_unkeyed"}


def test_a_database_newer_than_the_code_is_refused(run: Run[Any], tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    store = SQLiteStore(path)
    run(store.open())
    run(store.close())
    with raw_connection(path) as connection:
        connection.execute("INSERT INTO schema_migrations VALUES (9999, 0)")
        connection.commit()

    again = SQLiteStore(path)
    with pytest.raises(StoreError, match="schema version 9999.*newer"):
        run(again.open())
    with pytest.raises(StoreUnavailable):
        run(again.ping())


def test_the_database_is_in_wal_mode_with_the_chosen_synchronous(
    run: Run[Any], tmp_path: Path, gate: CommitGate
) -> None:
    path = tmp_path / "wal.db"
    store = SQLiteStore(path, synchronous="normal", connection_factory=gate.connection_factory())
    run(store.open())
    run(store.close())

    with raw_connection(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    pragmas = [s.replace(" ", "").lower() for s in gate.statements if "pragma" in s.lower()]
    assert "pragmasynchronous=normal" in pragmas
    assert "pragmaforeign_keys=on" in pragmas
    assert "pragmasynchronous=full" not in pragmas


def test_the_default_synchronous_is_full(run: Run[Any], tmp_path: Path, gate: CommitGate) -> None:
    store = SQLiteStore(tmp_path / "f.db", connection_factory=gate.connection_factory())
    run(store.open())
    run(store.close())
    pragmas = [s.replace(" ", "").lower() for s in gate.statements]
    assert pragmas.count("pragmasynchronous=full") == 2  # writer and reader


# -- errors ----------------------------------------------------------------------------------


def test_a_path_that_cannot_be_opened_is_unavailable(run: Run[Any], tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")

    with pytest.raises(StoreUnavailable):
        run(SQLiteStore(tmp_path / "a-file" / "x.db").open())
    with pytest.raises(StoreUnavailable, match="unable to open"):
        run(SQLiteStore(tmp_path).open())  # a directory


def test_sqlite_errors_are_mapped_to_store_errors(run: Run[Any], sqlite_store: SQLiteStore) -> None:
    store = sqlite_store
    event = make_event()
    run(store.ingest([event], dedupe_window=WINDOW, now=T0))

    with pytest.raises(StoreError) as raised:
        run(store.ingest([make_event(id=event.id)], dedupe_window=WINDOW, now=T0))
    assert not isinstance(raised.value, sqlite3.Error)
    assert isinstance(raised.value.__cause__, sqlite3.IntegrityError)
    assert run(store.get_event(event.id)) is not None


def test_a_not_a_database_file_is_an_error(run: Run[Any], tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not an SQLite database" * 100)

    with pytest.raises(StoreError) as raised:
        run(SQLiteStore(path).open())
    assert not isinstance(raised.value, sqlite3.Error)


def test_bad_options_are_refused_at_construction(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="synchronous"):
        SQLiteStore(tmp_path / "x.db", synchronous="OFF")
    with pytest.raises(StoreError, match="file path"):
        SQLiteStore(":memory:")


# -- open_store ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected", "synchronous"),
    [
        ("sqlite:///data/bridge.db", Path("data/bridge.db"), "FULL"),
        ("sqlite:////var/lib/bridge.db", Path("/var/lib/bridge.db"), "FULL"),
        ("sqlite:///bridge.db?synchronous=normal", Path("bridge.db"), "NORMAL"),
        ("data/bridge.db", Path("data/bridge.db"), "FULL"),
        ("/abs/bridge.db", Path("/abs/bridge.db"), "FULL"),
    ],
)
def test_open_store_reads_sqlite_urls(url: str, expected: Path, synchronous: str) -> None:
    store = open_store(url)

    assert isinstance(store, SQLiteStore)
    assert store.path == expected
    assert store.synchronous == synchronous


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://host/db", "unknown store URL scheme"),
        ("sqlite://host/x.db", "has a host"),
        ("sqlite:///x.db?fast=yes", "unknown SQLite store option"),
        ("sqlite:///x.db?synchronous=off", "synchronous"),
        ("sqlite:///", "no path"),
    ],
)
def test_open_store_refuses_what_it_cannot_open(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        open_store(url)


def test_an_opened_store_from_a_url_works(run: Run[Any], tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/u.db?synchronous=normal")
    run(store.open())
    try:
        [result] = run(store.ingest([make_event()], dedupe_window=WINDOW, now=T0))
        assert not result.duplicate
    finally:
        run(store.close())
    assert (tmp_path / "u.db").exists()
