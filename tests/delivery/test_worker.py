"""The worker in-process against a real SQLite file and a respx-mocked helpdesk."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Literal

import httpx
import pytest
import respx

from bridge.delivery.worker import BUSY_SLICE, Worker
from bridge.exceptions import StoreError
from bridge.records import DeliveryStatus, EventStatus, HoldState
from bridge.service import load_service
from bridge.store import open_store
from bridge.store.autovacuum import Tended
from bridge.store.memory import MemoryStore
from tests.helpers import shop_event, write_tree

CONFIG = {
    "rules/main.yaml": """
        providers:
          desk:
            type: http
            url: "https://desk.example.com/tickets"
            headers: {Authorization: "Bearer ${DESK_TOKEN}"}
            retry: {max_attempts: 2, base: 10ms, cap: 10ms}
        sources:
          shop: {verify: {type: none}}
        rules:
          - name: order
            source: shop
            action: create_ticket
            provider: desk
            ticket:
              subject: "Order {{ body.id }}"
              correlate: "order-{{ body.id }}"
    """,
}


def deliver(tmp_path, monkeypatch, payloads, *, config=CONFIG, make_event=shop_event):
    monkeypatch.setenv("DESK_TOKEN", "desk-secret-987")
    root = write_tree(tmp_path, config)

    async def go():
        store = open_store(f"sqlite:///{tmp_path}/bridge.db")
        await store.open()
        try:
            events = [make_event(i, p) for i, p in enumerate(payloads)]
            await store.ingest(events, dedupe_window=60, now=1e9)
            async with httpx.AsyncClient() as client:
                service = load_service(root / "rules", root / "templates", os.environ, client)
                await Worker(service=service, store=store).run_until_idle()
            return [await store.get_event(e.id) for e in events]
        finally:
            await store.close()

    return asyncio.run(go())


@respx.mock
def test_a_provider_echoing_the_token_does_not_put_it_in_the_attempt_log(tmp_path, monkeypatch):
    respx.post("https://desk.example.com/tickets").mock(
        return_value=httpx.Response(
            400, json={"message": "Bearer desk-secret-987 is not allowed here"}
        )
    )
    (detail,) = deliver(tmp_path, monkeypatch, [{"id": 1}])
    (delivery,) = detail.deliveries
    assert delivery.status is DeliveryStatus.DEAD
    assert delivery.last_error == "HTTP 400: [redacted] is not allowed here"
    (attempt,) = delivery.attempt_log
    assert "desk-secret-987" not in (attempt.error or "") + (attempt.response_excerpt or "")


@respx.mock
def test_retries_until_the_budget_is_spent_then_dead(tmp_path, monkeypatch):
    route = respx.post("https://desk.example.com/tickets").mock(return_value=httpx.Response(502))
    (detail,) = deliver(tmp_path, monkeypatch, [{"id": 2}])
    (delivery,) = detail.deliveries
    assert route.call_count == 2
    assert delivery.status is DeliveryStatus.DEAD
    assert delivery.last_error.startswith("gave up after 2 tries: HTTP 502")
    assert [a.outcome for a in delivery.attempt_log] == ["retryable", "retryable"]
    assert detail.event.status is EventStatus.FAILED


@respx.mock
def test_success_records_the_ticket_and_a_second_create_becomes_an_update(tmp_path, monkeypatch):
    route = respx.post("https://desk.example.com/tickets").mock(
        side_effect=[httpx.Response(201, json={"id": "T-1"}), httpx.Response(200, json={})]
    )
    first, second = deliver(tmp_path, monkeypatch, [{"id": 3}, {"id": 3}])
    assert first.deliveries[0].ticket_ref == {"ticket_id": "T-1"}
    assert first.event.status is EventStatus.DONE and second.event.status is EventStatus.DONE
    # on_existing: update (the default): the second create for the same correlate key is sent
    # as an update_ticket carrying the ticket the first one made
    sent = json.loads(route.calls[1].request.content)
    assert sent["action"] == "update_ticket"
    assert second.deliveries[0].ticket_ref == {"ticket_id": "T-1"}


BREAKER = {
    "rules/main.yaml": CONFIG["rules/main.yaml"].replace(
        "retry: {max_attempts: 2, base: 10ms, cap: 10ms}",
        "retry: {max_attempts: 10, base: 1ms, cap: 1ms}\n"
        "            circuit_breaker: {failures: 3, cooldown: 1h}\n"
        "            concurrency: 1",
    )
}


@respx.mock
def test_the_circuit_opens_after_failures_in_a_row_and_nothing_more_is_sent(tmp_path, monkeypatch):
    route = respx.post("https://desk.example.com/tickets").mock(return_value=httpx.Response(503))
    details = deliver(tmp_path, monkeypatch, [{"id": n} for n in range(5)], config=BREAKER)

    assert route.call_count == 3  # then the circuit is open for an hour
    assert all(d.event.status is EventStatus.ACCEPTED for d in details)
    (hold,) = details[0].holds.values()
    assert hold.state is HoldState.CIRCUIT_OPEN
    assert hold.until - hold.since == 3600
    assert "3 retryable failures in a row, the last: HTTP 503" in hold.reason


def test_housekeeping_drops_raw_bodies_past_keep_bodies(tmp_path, monkeypatch):
    text = CONFIG["rules/main.yaml"].rstrip(" ") + "        defaults: {keep_bodies: 1d}\n"
    config = {"rules/main.yaml": text}
    # the event is from 2001 and from a source no rule listens to
    (detail,) = deliver(tmp_path, monkeypatch, [{"id": 1}], config=config, make_event=unmatched)
    assert detail.event.has_raw is False
    assert detail.event.payload == '{"id": 1}'  # the parsed body stays


def test_what_autovacuum_would_do_is_looked_at_once_a_minute_and_logged(tmp_path, caplog):
    root = write_tree(tmp_path, LOGGED)
    now = [1e9]
    looks: list[float] = []

    async def go() -> None:
        store = MemoryStore()
        await store.open()

        async def tend() -> Tended:
            looks.append(now[0])
            if len(looks) == 1:
                return Tended(vacuumed=("deliveries",), analyzed=("events",))
            return Tended()

        store.tend_tables = tend  # type: ignore[method-assign]
        async with httpx.AsyncClient() as client:
            service = load_service(root / "rules", root / "templates", {}, client)
            worker = Worker(service=service, store=store, clock=lambda: now[0])
            for at in (1e9, 1e9 + 59, 1e9 + 60, 1e9 + 90):
                now[0] = at
                await worker._step()
                if worker._tending is not None:  # beside the steps: let it finish
                    await worker._tending
        await store.close()

    caplog.set_level(logging.INFO, logger="bridge.worker")
    asyncio.run(go())
    assert looks == [1e9, 1e9 + 60]
    [logged] = [r for r in caplog.records if getattr(r, "action", None) == "autovacuum"]
    assert (logged.vacuumed, logged.analyzed) == (["deliveries"], ["events"])
    assert logged.getMessage().endswith(": vacuumed deliveries; analyzed events")


def test_tending_runs_beside_the_steps_and_stop_cancels_it(tmp_path, caplog):
    """A VACUUM of a big table may take minutes: the steps (and lease renewals) go on, a
    failure is a warning, and stopping the worker cancels it."""
    root = write_tree(tmp_path, LOGGED)

    async def go() -> tuple[bool, bool]:
        store = MemoryStore()
        await store.open()
        started = asyncio.Event()

        async def tend_forever() -> Tended:
            started.set()
            await asyncio.Event().wait()
            raise AssertionError("never")

        async def tend_failing() -> Tended:
            raise StoreError("permission denied for table deliveries")

        store.tend_tables = tend_failing  # type: ignore[method-assign]
        async with httpx.AsyncClient() as client:
            service = load_service(root / "rules", root / "templates", {}, client)
            failing = Worker(service=service, store=store)
            await failing._step()
            assert failing._tending is not None
            await failing._tending
            store.tend_tables = tend_forever  # type: ignore[method-assign]
            worker = Worker(service=service, store=store)
            await asyncio.wait_for(worker._step(), 5)  # not held by the tending
            await asyncio.wait_for(started.wait(), 5)
            tending = worker._tending
            assert tending is not None and not tending.done()
            await asyncio.wait_for(worker.stop(grace=0), 5)
        await store.close()
        return tending.cancelled(), started.is_set()

    caplog.set_level(logging.INFO, logger="bridge.worker")
    assert asyncio.run(go()) == (True, True)
    [warning] = [r for r in problems(caplog) if getattr(r, "action", None) == "autovacuum"]
    assert warning.error == "permission denied for table deliveries"


def unmatched(number, payload):
    return replace(shop_event(number, payload), source="elsewhere", raw=b'{"id": 1}')


# -- what goes wrong is logged where operators look (warning and above) ----------------------


def problems(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "bridge.worker" and r.levelno >= logging.WARNING]


def assert_names_the_delivery(record: logging.LogRecord, detail) -> None:
    (delivery,) = detail.deliveries
    assert record.event_id == detail.event.id and record.delivery_id == delivery.id
    assert record.rule == "order" and record.provider == "desk"


@respx.mock
def test_a_delivery_that_dies_is_logged_as_an_error_with_its_ids_and_reason(
    tmp_path, monkeypatch, caplog
):
    respx.post("https://desk.example.com/tickets").mock(
        side_effect=[httpx.Response(422, json={"message": "no such requester"})]
        + [httpx.Response(502)] * 2
    )
    caplog.set_level(logging.INFO)
    permanent, spent = deliver(tmp_path, monkeypatch, [{"id": 1}, {"id": 2}])
    dead = [r for r in problems(caplog) if r.levelno == logging.ERROR]
    assert len(dead) == 2, [r.getMessage() for r in problems(caplog)]
    assert_names_the_delivery(dead[0], permanent)
    assert dead[0].error == "HTTP 422: no such requester"
    assert dead[0].getMessage() == "delivery dead: HTTP 422: no such requester"
    assert_names_the_delivery(dead[1], spent)
    assert dead[1].status == "dead" and "gave up after 2 tries" in dead[1].getMessage()


def test_a_ticket_that_cannot_be_rendered_is_logged_as_an_error(tmp_path, monkeypatch, caplog):
    text = CONFIG["rules/main.yaml"].replace('{{ body.id }}"', '{{ body.nope }}"', 1)
    caplog.set_level(logging.INFO)
    (detail,) = deliver(tmp_path, monkeypatch, [{"id": 1}], config={"rules/main.yaml": text})
    (record,) = problems(caplog)
    assert record.levelno == logging.ERROR and record.action == "dead"
    assert_names_the_delivery(record, detail)
    assert "'dict object' has no attribute 'nope'" in record.error


@respx.mock
def test_a_pause_and_an_open_circuit_are_logged_with_the_delivery_that_caused_them(
    tmp_path, monkeypatch, caplog
):
    respx.post("https://desk.example.com/tickets").mock(return_value=httpx.Response(401))
    caplog.set_level(logging.INFO)
    (detail,) = deliver(tmp_path, monkeypatch, [{"id": 1}])
    (record,) = problems(caplog)
    assert record.levelno == logging.ERROR and record.action == "provider_hold"
    assert record.state == "paused" and "HTTP 401" in record.error
    assert_names_the_delivery(record, detail)

    caplog.clear()
    respx.post("https://desk.example.com/tickets").mock(return_value=httpx.Response(503))
    details = deliver(tmp_path / "b", monkeypatch, [{"id": n} for n in range(4)], config=BREAKER)
    (record,) = problems(caplog)
    assert record.state == "circuit_open" and record.provider == "desk"
    assert record.delivery_id in {d.deliveries[0].id for d in details}
    assert "3 retryable failures in a row" in record.getMessage()


@pytest.mark.parametrize(
    ("refused", "calls"),
    [
        (False, [5]),  # one transaction, a few statements
        (True, [5, 1, 1, 1, 1, 1]),  # one event the store refuses holds up no other
    ],
)
def test_a_rounds_routings_are_saved_in_one_call_or_else_one_by_one(
    tmp_path, monkeypatch, refused, calls
):
    monkeypatch.setenv("DESK_TOKEN", "desk-secret-987")
    root = write_tree(tmp_path, CONFIG)
    batches: list[int] = []

    async def go() -> list[EventStatus]:
        store = MemoryStore()
        save = store.save_routings

        async def counting(routings, *, now):
            batches.append(len(routings))
            if refused and len(routings) > 1:
                raise StoreError("one of them is refused")
            return await save(routings, now=now)

        store.save_routings = counting  # type: ignore[method-assign]
        return await _route_five(store, root)

    assert asyncio.run(go()) == [EventStatus.ACCEPTED] * 5  # routed, deliveries pending
    assert batches == calls


async def _route_five(store: MemoryStore, root: Path) -> list[EventStatus]:
    """Five events stored, one round of routing; their statuses after it."""
    await store.open()
    try:
        events = [shop_event(i, {"id": i}) for i in range(5)]
        await store.ingest(events, dedupe_window=60, now=1e9)
        async with httpx.AsyncClient() as client:
            service = load_service(root / "rules", root / "templates", os.environ, client)
            assert await Worker(service=service, store=store).route_pending()
        return [(await store.get_event(e.id)).event.status for e in events]
    finally:
        await store.close()


LOGGED = {
    "rules/main.yaml": """
        providers:
          audit: {type: log}
        sources:
          shop: {verify: {type: none}}
        rules:
          - name: order
            source: shop
            action: create_ticket
            provider: audit
            ticket: {subject: "Order {{ body.id }}", correlate: "order-{{ body.id }}"}
    """,
}


class WatchedQuiet(asyncio.Event):
    """The receiver's `quiet` event, counting the worker's waits for it."""

    waits = 0

    async def wait(self) -> Literal[True]:
        self.waits += 1
        return await super().wait()


async def routed_and_done(store, events) -> tuple[int, int]:
    """How many of `events` are routed, and how many done."""
    details = [await store.get_event(e.id) for e in events]
    routed = sum(d.event.routed_at is not None for d in details)
    return routed, sum(d.event.status is EventStatus.DONE for d in details)


@contextlib.asynccontextmanager
async def stored_worker(root, count, *, config_env=None, transport=None):
    """A worker on a memory store holding `count` shop events: (worker, store, events)."""
    store = MemoryStore()
    await store.open()
    events = [shop_event(i, {"id": i}) for i in range(count)]
    await store.ingest(events, dedupe_window=60, now=1e9)
    async with httpx.AsyncClient(transport=transport) as client:
        service = load_service(root / "rules", root / "templates", config_env or {}, client)
        yield Worker(service=service, store=store), store, events


async def until(check, *, what, timeout=10.0):
    """Await `check()` until truthy (polled, bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def test_the_receiver_comes_first_and_the_backlog_drains_right_after(tmp_path, monkeypatch):
    monkeypatch.setattr("bridge.delivery.worker.RECEIVER_FIRST_WAIT", 60.0)
    root = write_tree(tmp_path, LOGGED)

    async def go():
        async with stored_worker(root, 20) as (worker, store, events):
            quiet = WatchedQuiet()  # not set: the receiver is answering a burst
            worker.defer_to(quiet)
            running = asyncio.create_task(worker.run())

            async def waited():
                return quiet.waits > 0  # the worker reached its first step

            await until(waited, what="the worker to wait for the receiver")
            assert await routed_and_done(store, events) == (0, 0)
            quiet.set()  # the burst is over: all of it is routed and delivered

            async def drained():
                return await routed_and_done(store, events) == (20, 20)

            await until(drained, what="the backlog to drain")
            await worker.stop()
            await running

    asyncio.run(go())


def test_during_a_burst_a_step_routes_only_a_slice(tmp_path, monkeypatch):
    monkeypatch.setattr("bridge.delivery.worker.RECEIVER_FIRST_WAIT", 0.0)
    root = write_tree(tmp_path, LOGGED)

    async def go():
        async with stored_worker(root, 20) as (worker, store, events):
            quiet = asyncio.Event()
            worker.defer_to(quiet)
            assert await worker.route_pending()
            assert (await routed_and_done(store, events))[0] == BUSY_SLICE
            quiet.set()
            assert await worker.route_pending()
            assert (await routed_and_done(store, events))[0] == 20  # the rest, in one step

    asyncio.run(go())


def test_stop_waits_for_what_a_claim_under_way_starts(tmp_path):
    """SIGTERM while the worker is claiming: the attempts the claim starts are waited for
    (within the grace) before stop() returns, never left to fail on a store closed under
    them."""
    root = write_tree(tmp_path, CONFIG)
    asked, answer = [], asyncio.Event()

    async def helpdesk(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        await answer.wait()  # the helpdesk answers only when the test says so
        return httpx.Response(201, json={"id": len(asked)})

    async def go():
        transport = httpx.MockTransport(helpdesk)
        env = {"DESK_TOKEN": "t"}
        async with stored_worker(root, 3, config_env=env, transport=transport) as (
            worker,
            store,
            events,
        ):
            assert await worker.route_pending()
            claiming, release = asyncio.Event(), asyncio.Event()
            claim_due = store.claim_due

            async def slow_claim(**arguments):
                claiming.set()
                await release.wait()
                return await claim_due(**arguments)

            store.claim_due = slow_claim  # type: ignore[method-assign]
            running = asyncio.create_task(worker.run())
            await asyncio.wait_for(claiming.wait(), 10)
            stopping = asyncio.create_task(worker.stop(grace=30))
            release.set()

            async def sent():
                return len(asked) == 3  # the claim's attempts are under way

            await until(sent, what="the claimed deliveries to be sent")
            assert not stopping.done()  # stop() waits for them
            answer.set()
            await asyncio.wait_for(stopping, 10)
            await asyncio.wait_for(running, 10)
            assert await routed_and_done(store, events) == (3, 3)

    asyncio.run(go())
