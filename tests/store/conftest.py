"""Fixtures for the store tests: a Store per backend, an event loop, record builders.

The contract tests (test_contract.py) take `store` and use only the Store interface, so a
backend joins them by adding one entry to BACKENDS.

The PostgreSQL backend runs on the server named by BRIDGE_TEST_DATABASE_URL (for example
`postgresql://postgres@127.0.0.1:5432/test`), each test in a schema of its own, created for
it and dropped after it. Without the variable, or when the server does not answer, its tests
are skipped, and the summary says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import psycopg
import pytest

from bridge.records import Attempt, AttemptResult, Claim, DeliveryStatus, NewDelivery, NewEvent
from bridge.store.base import Store
from bridge.store.memory import MemoryStore
from bridge.store.postgres import PostgresStore
from bridge.store.sqlite import SQLiteStore
from bridge.tickets import ActionKind, TicketAction

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]

T0 = 1_700_000_000.0  # the clock of every test starts here
DAY = 86_400.0


DATABASE_URL_VARIABLE = "BRIDGE_TEST_DATABASE_URL"


@contextlib.contextmanager
def _sqlite(tmp_path: Path) -> Iterator[Store]:
    yield SQLiteStore(tmp_path / "db" / "bridge.db")


@contextlib.contextmanager
def _memory(tmp_path: Path) -> Iterator[Store]:
    yield MemoryStore()


@contextlib.contextmanager
def _postgresql(tmp_path: Path) -> Iterator[Store]:
    with scratch_schema() as url:
        yield PostgresStore(url, max_connections=4)


# name -> an unopened store on fresh, empty storage (in a fresh temporary directory), which
# is thrown away when the context ends
BACKENDS: dict[str, Callable[[Path], AbstractContextManager[Store]]] = {
    "memory": _memory,
    "postgresql": _postgresql,
    "sqlite": _sqlite,
}


def postgres_server() -> str:
    """The test server's URL; skips the test when there is none or it does not answer."""
    url = os.environ.get(DATABASE_URL_VARIABLE)
    if not url:
        pytest.skip(f"PostgreSQL backend: {DATABASE_URL_VARIABLE} is not set")
    problem = _unreachable(url)
    if problem is not None:
        pytest.skip(f"PostgreSQL backend: {DATABASE_URL_VARIABLE} does not answer: {problem}")
    return url


@functools.cache
def _unreachable(url: str) -> str | None:
    """Why the server cannot be used (asked once per run), or None."""
    try:
        with psycopg.connect(url, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


@contextlib.contextmanager
def scratch_schema() -> Iterator[str]:
    """A URL whose connections work in a new, empty schema; the schema is dropped after."""
    server = postgres_server()
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}".encode())
    try:
        option = quote(f"-csearch_path={schema}", safe="")
        yield f"{server}{'&' if '?' in server else '?'}options={option}"
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE".encode())


@pytest.fixture
def run() -> Iterator[Run[Any]]:
    """Run a coroutine to completion on this test's event loop (one loop per test)."""
    with asyncio.Runner() as runner:
        yield runner.run


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, run: Run[Any], tmp_path: Path) -> Iterator[Store]:
    with BACKENDS[request.param](tmp_path) as store:
        run(store.open())
        try:
            yield store
        finally:
            run(store.close())


_counter = iter(range(1, 1_000_000))


def make_event(
    *,
    id: str | None = None,
    source: str = "shop",
    received_at: float = T0,
    dedupe_key: str | None = None,
    payload: str = '{"n": 1}',
    raw: bytes | None = b'{"n": 1}',
    headers: Mapping[str, str] | None = None,
) -> NewEvent:
    """An event; ids sort like received_at (then by creation), as bridge.ids makes them."""
    number = next(_counter)
    return NewEvent(
        id=id or f"evt_{int(received_at * 1000):015d}{number:08d}",
        source=source,
        received_at=received_at,
        headers=headers if headers is not None else {"content-type": "application/json"},
        query={"q": "1"},
        payload=payload,
        raw=raw,
        content_type="application/json",
        dedupe_key=dedupe_key,
    )


def make_delivery(
    event_id: str,
    *,
    provider: str = "vambe",
    correlate: str | None = None,
    status: DeliveryStatus = DeliveryStatus.PENDING,
    rule: str = "rule-1",
    last_error: str | None = None,
) -> NewDelivery:
    return NewDelivery(
        id=f"dlv_{next(_counter):08d}",
        event_id=event_id,
        rule=rule,
        provider=provider,
        action=TicketAction(action=ActionKind.CREATE_TICKET, provider=provider, tags=("a",)),
        correlate=correlate,
        status=status,
        last_error=last_error,
    )


def result_for(
    claim: Claim,
    status: DeliveryStatus,
    *,
    started_at: float = T0,
    next_attempt_at: float | None = None,
    last_error: str | None = None,
    ticket_ref: Mapping[str, str] | None = None,
    ticket_open: bool | None = None,
    status_code: int | None = 200,
) -> AttemptResult:
    """What the worker would store after one attempt of `claim`."""
    return AttemptResult(
        attempt=Attempt(
            delivery_id=claim.delivery.id,
            number=claim.delivery.attempts + 1,
            started_at=started_at,
            duration=0.25,
            outcome="success" if status is DeliveryStatus.DONE else "retryable",
            status_code=status_code,
            error=last_error,
            response_excerpt='{"ok": true}',
        ),
        status=status,
        next_attempt_at=next_attempt_at,
        last_error=last_error,
        ticket_ref=ticket_ref,
        ticket_open=ticket_open,
    )


# Deliveries as a fallback could leave them before migration 0007 (SQL both databases run, on
# the schema of 0006): what order-1's first delivery waited behind moved away, and it is still
# waiting; the next waits behind it; one without a key waits behind nothing. 0007 makes the
# ones behind nothing pending, and BEFORE_0007_AFTER says what each is then.
_ACTION = '{"action": "create_ticket", "provider": "vambe"}'  # as stored
BEFORE_0007 = [
    "INSERT INTO events (id, source, received_at, headers, query, payload, status, routed_at)"
    f" VALUES ('evt_1', 'shop', {T0 + 1}, '{{}}', '{{}}', '{{}}', 'accepted', {T0 + 1}),"
    f" ('evt_2', 'shop', {T0 + 2}, '{{}}', '{{}}', '{{}}', 'accepted', {T0 + 2}),"
    f" ('evt_3', 'shop', {T0 + 3}, '{{}}', '{{}}', '{{}}', 'accepted', {T0 + 3})",
    "INSERT INTO deliveries (id, event_id, event_received_at, rule, provider, action, correlate,"
    " status, created_at, queued_at, next_attempt_at)"
    f" VALUES ('dlv_moved', 'evt_1', {T0 + 1}, 'r', 'vambe', '{_ACTION}', 'order-1', 'cancelled',"
    f" {T0 + 1}, {T0 + 1}, NULL),"
    f" ('dlv_left', 'evt_2', {T0 + 2}, 'r', 'vambe', '{_ACTION}', 'order-1', 'waiting',"
    f" {T0 + 2}, {T0 + 2}, {T0 + 2}),"
    f" ('dlv_behind', 'evt_3', {T0 + 3}, 'r', 'vambe', '{_ACTION}', 'order-1', 'waiting',"
    f" {T0 + 3}, {T0 + 3}, {T0 + 3}),"
    f" ('dlv_unkeyed', 'evt_3', {T0 + 3}, 'r', 'vambe', '{_ACTION}', NULL, 'waiting',"
    f" {T0 + 3}, {T0 + 3}, {T0 + 3})",
]
BEFORE_0007_AFTER = {
    "dlv_moved": DeliveryStatus.CANCELLED,
    "dlv_left": DeliveryStatus.PENDING,
    "dlv_behind": DeliveryStatus.WAITING,
    "dlv_unkeyed": DeliveryStatus.PENDING,
}
