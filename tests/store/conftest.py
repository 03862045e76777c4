"""Fixtures for the store tests: a Store per backend, an event loop, record builders.

The contract tests (test_contract.py) take `store` and use only the Store interface, so a
backend joins them by adding one entry to BACKENDS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bridge.store.base import (
    Attempt,
    AttemptResult,
    Claim,
    DeliveryStatus,
    NewDelivery,
    NewEvent,
    Store,
)
from bridge.store.sqlite import SQLiteStore

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]

T0 = 1_700_000_000.0  # the clock of every test starts here
DAY = 86_400.0


def _sqlite(tmp_path: Path) -> Store:
    return SQLiteStore(tmp_path / "db" / "bridge.db")


# name -> how to make an unopened store in a fresh temporary directory
BACKENDS: dict[str, Callable[[Path], Store]] = {"sqlite": _sqlite}


@pytest.fixture
def run() -> Iterator[Run[Any]]:
    """Run a coroutine to completion on this test's event loop (one loop per test)."""
    with asyncio.Runner() as runner:
        yield runner.run


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, run: Run[Any], tmp_path: Path) -> Iterator[Store]:
    store = BACKENDS[request.param](tmp_path)
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
        action={"action": "create_ticket", "provider": provider, "tags": ["a"]},
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
