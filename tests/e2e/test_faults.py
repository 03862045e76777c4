"""Delivery guarantees under faults (DESIGN §3.2, §8), through the real server and fake helpdesks.

Retries and Retry-After, per-correlate ordering while retrying and after a dead create, replay,
a SIGKILL in the middle of a burst, the rate limit, one provider down beside a healthy one, a
401 pausing its provider, and SIGTERM with a delivery in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bridge.cli import main
from tests.fakes.provider import FakeProvider
from tests.helpers import ServerProcess, poll, server_process, show_event, write_tree

TEMPLATE = """
    {"action": {{ ticket.action | tojson }},
     "order": {{ body.order | tojson }},
     "subject": {{ ticket.subject | tojson }}}
"""


def provider(fake: FakeProvider, **options: Any) -> dict[str, Any]:
    """An `http` provider posting to `fake`; fast retries unless `options` say otherwise."""
    return {
        "type": "http",
        "url": f"{fake.url}/tickets",
        "body": {"template": "ticket.json.j2"},
        "retry": {"base": "50ms", "cap": "100ms", "max_attempts": 5},
        **options,
    }


def rules_for(name: str) -> list[dict[str, Any]]:
    """A create and an update rule for provider `name`, on the correlate key of the order."""
    correlate = "order-{{ body.order }}"
    return [
        {
            "name": f"create-{name}",
            "source": "shop",
            "when": {"body.kind": "create", "body.to": name},
            "action": "create_ticket",
            "provider": name,
            "ticket": {"subject": "Order {{ body.order }}", "correlate": correlate},
        },
        {
            "name": f"update-{name}",
            "source": "shop",
            "when": {"body.kind": "update", "body.to": name},
            "action": "update_ticket",
            "provider": name,
            "ticket": {"subject": "Order {{ body.order }} changed", "correlate": correlate},
        },
    ]


@dataclass
class Bridge:
    """One configuration and one SQLite database; `serve()` starts (or restarts) the server."""

    root: Path
    db: str
    log: Path

    @property
    def config_args(self) -> list[str]:
        return ["--rules", str(self.root / "rules"), "--templates", str(self.root / "templates")]

    def serve(self) -> contextlib.AbstractContextManager[ServerProcess]:
        return server_process(
            rules=self.root / "rules", templates=self.root / "templates", db=self.db, log=self.log
        )


def bridge(
    tmp_path: Path, providers: dict[str, dict[str, Any]], *, defaults: dict[str, Any] | None = None
) -> Bridge:
    document: dict[str, Any] = {
        "providers": providers,
        "sources": {
            "shop": {"verify": {"type": "none"}, "dedupe_key": "{{ body.kind }}-{{ body.order }}"}
        },
        "rules": [rule for name in providers for rule in rules_for(name)],
    }
    if defaults:
        document["defaults"] = defaults
    root = write_tree(
        tmp_path,
        {
            "rules/main.yaml": yaml.safe_dump(document, sort_keys=False),
            "templates/ticket.json.j2": TEMPLATE,
        },
    )
    return Bridge(root=root, db=f"sqlite:///{tmp_path / 'bridge.db'}", log=tmp_path / "serve.log")


def order(kind: str, number: str, *, to: str = "helpdesk") -> dict[str, str]:
    return {"kind": kind, "order": number, "to": to}


def post(url: str, body: dict[str, str]) -> str:
    response = httpx.post(f"{url}/hooks/shop", json=body)
    assert response.status_code == 202, response.text
    event_id: str = response.json()["event_id"]
    return event_id


def delivery(capsys: Any, db: str, event_id: str) -> dict[str, Any]:
    """The one delivery of an event, as `ticketbridge show --json` gives it."""
    (only,) = show_event(capsys, db, event_id)["deliveries"]
    result: dict[str, Any] = only
    return result


def delivery_where(
    capsys: Any,
    db: str,
    event_id: str,
    holds: Callable[[dict[str, Any]], bool],
    *,
    what: str,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Poll `show` until the event is routed and its one delivery satisfies `holds`."""

    def check() -> dict[str, Any] | None:
        found = show_event(capsys, db, event_id)["deliveries"]
        return found[0] if found and holds(found[0]) else None

    return poll(check, timeout=timeout, what=f"the delivery of {event_id}: {what}")


def delivery_when(
    capsys: Any, db: str, event_id: str, status: str, *, timeout: float = 10.0
) -> dict[str, Any]:
    return delivery_where(
        capsys, db, event_id, lambda d: d["status"] == status, what=status, timeout=timeout
    )


def paused(found: dict[str, Any]) -> bool:
    return "paused" in (found["reason"] or "")


@pytest.fixture
def helpdesk() -> Iterator[FakeProvider]:
    with FakeProvider().running() as fake:
        yield fake


# 1. ------------------------------------------------------------------------------------------


def test_503s_are_retried_until_the_ticket_is_created_once(tmp_path, helpdesk, capsys):
    setup = bridge(tmp_path, {"helpdesk": provider(helpdesk)})
    for _ in range(3):
        helpdesk.answer_next(503, {"message": "maintenance"})
    with setup.serve() as server:
        event_id = post(server.url, order("create", "R-1"))
        done = delivery_when(capsys, setup.db, event_id, "done")
    assert [a["status_code"] for a in done["attempt_log"]] == [503, 503, 503, 201]
    assert done["attempts"] == 4
    assert len(helpdesk.tickets) == 1
    assert len({r.headers["idempotency-key"] for r in helpdesk.requests}) == 1


# 2. ------------------------------------------------------------------------------------------


def test_retry_after_in_seconds_is_waited_for(tmp_path, helpdesk, capsys):
    setup = bridge(tmp_path, {"helpdesk": provider(helpdesk)})
    helpdesk.answer_next(429, {"message": "slow down"}, {"Retry-After": "1"})
    with setup.serve() as server:
        event_id = post(server.url, order("create", "RA-1"))
        done = delivery_when(capsys, setup.db, event_id, "done")
    assert [a["status_code"] for a in done["attempt_log"]] == [429, 201]
    first, second = helpdesk.requests
    # the backoff alone (50 ms at most) would come much sooner
    assert second.received_at - first.received_at >= 0.95


def test_retry_after_as_an_http_date_is_waited_for(tmp_path, helpdesk, capsys):
    setup = bridge(tmp_path, {"helpdesk": provider(helpdesk)})
    with setup.serve() as server:
        # an HTTP date has whole seconds: "2 s from now" is at least 1 s from now
        scripted_at = time.monotonic()
        retry_at = email.utils.formatdate(time.time() + 2, usegmt=True)
        helpdesk.answer_next(503, {"message": "back soon"}, {"Retry-After": retry_at})
        event_id = post(server.url, order("create", "RA-2"))
        done = delivery_when(capsys, setup.db, event_id, "done")
    assert [a["status_code"] for a in done["attempt_log"]] == [503, 201]
    _, second = helpdesk.requests
    assert second.received_at - scripted_at >= 0.95


# 3. ------------------------------------------------------------------------------------------


def test_an_update_waits_while_its_create_is_being_retried(tmp_path, helpdesk, capsys):
    setup = bridge(tmp_path, {"helpdesk": provider(helpdesk)})
    # Retry-After keeps the create retrying for about 2 s, whatever the backoff's jitter draws
    helpdesk.answer_next(503, {"message": "maintenance"}, {"Retry-After": "1"})
    helpdesk.answer_next(503, {"message": "maintenance"}, {"Retry-After": "1"})
    with setup.serve() as server:
        create_event = post(server.url, order("create", "K-1"))
        poll(lambda: helpdesk.requests, what="the first try of the create")
        update_event = post(server.url, order("update", "K-1"))
        create_id = delivery(capsys, setup.db, create_event)["id"]

        waiting = delivery_when(capsys, setup.db, update_event, "waiting")
        assert waiting["waiting_for"] == create_id
        assert "waiting" in waiting["reason"]
        retrying = delivery_where(
            capsys,
            setup.db,
            create_event,
            lambda d: d["status"] == "pending" and d["attempts"] >= 1,
            what="pending after a failed try",
        )
        assert "retrying" in retrying["reason"]

        delivery_when(capsys, setup.db, update_event, "done", timeout=15)
    assert [a["status_code"] for a in delivery(capsys, setup.db, create_event)["attempt_log"]] == [
        503,
        503,
        201,
    ]
    # the update reached the helpdesk only after the create succeeded
    assert [r.json["action"] for r in helpdesk.requests] == [
        "create_ticket",
        "create_ticket",
        "create_ticket",
        "update_ticket",
    ]
    assert [r.json["action"] for r in helpdesk.tickets] == ["create_ticket", "update_ticket"]


# 4. ------------------------------------------------------------------------------------------


def test_a_dead_create_takes_its_updates_down_and_replay_brings_both_back_in_order(
    tmp_path, helpdesk, capsys
):
    setup = bridge(tmp_path, {"helpdesk": provider(helpdesk)})
    helpdesk.answer_next(422, {"message": "requester is invalid"})
    with setup.serve() as server:
        with helpdesk.holding():
            create_event = post(server.url, order("create", "C-1"))
            poll(lambda: helpdesk.held == 1, what="the create to reach the helpdesk")
            update_event = post(server.url, order("update", "C-1"))
            delivery_when(capsys, setup.db, update_event, "waiting")

        create = delivery_when(capsys, setup.db, create_event, "dead")
        assert create["last_error"] == "HTTP 422: requester is invalid"
        update = delivery_when(capsys, setup.db, update_event, "dead")
        assert create["id"] in update["last_error"]
        assert update["waiting_for"] == create["id"]
        assert update["attempts"] == 0
        assert len(helpdesk.requests) == 1

        # replayed, the create goes first again (a 503 makes it wait a while) and the
        # update follows once it succeeded
        helpdesk.answer_next(503, {"message": "maintenance"}, {"Retry-After": "1"})
        replay = ["replay", "--status", "dead", "--provider", "helpdesk", "--db", setup.db]
        assert main([*replay, *setup.config_args]) == 0
        capsys.readouterr()
        delivery_when(capsys, setup.db, update_event, "done", timeout=15)
        assert delivery(capsys, setup.db, create_event)["status"] == "done"
    assert [r.json["action"] for r in helpdesk.requests] == [
        "create_ticket",  # 422
        "create_ticket",  # 503 after the replay
        "create_ticket",  # 201
        "update_ticket",  # 201
    ]
    assert [r.json["action"] for r in helpdesk.tickets] == ["create_ticket", "update_ticket"]


# 5. ------------------------------------------------------------------------------------------

ORDERS = 300
KILL_AFTER = 100


async def send_orders(
    url: str, numbers: list[str], *, kill: Callable[[int], None] | None = None
) -> set[str]:
    """POST every order at once over 50 connections; the ones answered 2xx. `kill` is
    called after each 2xx with the count so far."""
    accepted: set[str] = set()
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def send(number: str) -> None:
            try:
                response = await client.post(f"{url}/hooks/shop", json=order("create", number))
            except httpx.HTTPError:
                return
            if response.is_success:
                accepted.add(number)
                if kill is not None:
                    kill(len(accepted))

        await asyncio.gather(*(send(number) for number in numbers))
    return accepted


def stored_events(capsys: Any, db: str) -> list[dict[str, Any]]:
    assert main(["events", "--db", db, "--json", "--limit", str(ORDERS * 2)]) == 0
    events: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return events


def test_sigkill_in_a_burst_loses_nothing_and_creates_each_ticket_once(tmp_path, capsys):
    # a helpdesk a little slow to answer, so calls are surely in flight when the server dies
    with FakeProvider(idempotent=True, delay=0.02).running() as helpdesk:
        concurrency = 4
        setup = bridge(
            tmp_path,
            {"helpdesk": provider(helpdesk, concurrency=concurrency)},
            defaults={"lease": "1s"},
        )
        numbers = [f"O-{i:03d}" for i in range(ORDERS)]
        with setup.serve() as server:

            def kill(acknowledged: int) -> None:
                # SIGKILL once ~100 were acknowledged and calls to the helpdesk are under way
                if (
                    acknowledged >= KILL_AFTER
                    and helpdesk.unanswered
                    and server.process.poll() is None
                ):
                    server.kill()

            accepted = asyncio.run(send_orders(server.url, numbers, kill=kill))
            assert server.process.poll() is not None, "never killed: no call was under way"
        assert KILL_AFTER <= len(accepted) < ORDERS
        with setup.serve() as server:
            # the senders retry whatever was not acknowledged
            missing = [n for n in numbers if n not in accepted]
            again = asyncio.run(send_orders(server.url, missing))
            assert again == set(missing)

            def all_done() -> bool:
                events = stored_events(capsys, setup.db)
                return len(events) >= ORDERS and all(e["status"] == "done" for e in events)

            poll(all_done, timeout=20, interval=0.2, what="every order to be delivered")
        assert len(stored_events(capsys, setup.db)) == ORDERS
        per_order = Counter(r.json["order"] for r in helpdesk.tickets)
        assert set(per_order) == set(numbers)  # none lost
        assert max(per_order.values()) == 1  # none created twice
        # a repeat is a call the crash cut off between the helpdesk's answer and the commit:
        # at most one per delivery that was in flight
        assert len(helpdesk.repeats) <= concurrency


# 6. ------------------------------------------------------------------------------------------


def test_the_rate_limit_holds_its_configured_rate(tmp_path, helpdesk):
    setup = bridge(
        tmp_path,
        {"helpdesk": provider(helpdesk, rate_limit={"per_second": 20, "burst": 1}, concurrency=8)},
    )
    count = 60
    with setup.serve() as server:
        numbers = [f"L-{i:02d}" for i in range(count)]
        accepted = asyncio.run(send_orders(server.url, numbers))
        assert accepted == set(numbers)
        poll(lambda: len(helpdesk.requests) >= count, timeout=15, what="every delivery")
    times = sorted(r.received_at for r in helpdesk.requests)
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert rate == pytest.approx(20, rel=0.10)


# 7. ------------------------------------------------------------------------------------------


def test_a_provider_that_is_down_does_not_hold_up_another(tmp_path):
    with (
        FakeProvider().running() as alpha,
        FakeProvider().running() as beta,
    ):
        setup = bridge(
            tmp_path,
            {
                "alpha": provider(alpha, timeout=30, concurrency=2),
                "beta": provider(beta),
            },
        )
        with setup.serve() as server:
            with alpha.holding():
                for i in range(20):
                    post(server.url, order("create", f"A-{i}", to="alpha"))
                    post(server.url, order("create", f"B-{i}", to="beta"))
                poll(lambda: len(beta.tickets) == 20, what="every beta ticket")
                # alpha is down all along: its calls wait, no more than its concurrency
                poll(lambda: alpha.held >= 1, what="a call to alpha to be waiting")
                assert len(alpha.requests) <= 2
                assert alpha.tickets == []
            poll(lambda: len(alpha.tickets) == 20, timeout=15, what="every alpha ticket")
        assert sorted(r.json["order"] for r in alpha.tickets) == sorted(f"A-{i}" for i in range(20))
        assert len(beta.tickets) == 20


# 8. ------------------------------------------------------------------------------------------


def test_a_401_pauses_the_provider_until_resume(tmp_path, helpdesk, capsys):
    # max_attempts 1: a 401 handled as an ordinary retryable failure would be dead at once
    retry = {"base": "50ms", "cap": "100ms", "max_attempts": 1, "auth_pause": "15m"}
    setup = bridge(tmp_path, {"helpdesk": provider(helpdesk, retry=retry)})
    helpdesk.answer_next(401, {"message": "invalid token"})
    with setup.serve() as server:
        event_id = post(server.url, order("create", "P-1"))
        waiting = delivery_where(capsys, setup.db, event_id, paused, what="its provider paused")
        assert waiting["status"] == "pending"
        assert [a["status_code"] for a in waiting["attempt_log"]] == [401]
        time.sleep(0.5)  # paused: nothing more is sent, however long we look
        assert len(helpdesk.requests) == 1
        assert delivery(capsys, setup.db, event_id)["status"] == "pending"

        assert main(["resume", "helpdesk", "--db", setup.db]) == 0
        capsys.readouterr()
        done = delivery_when(capsys, setup.db, event_id, "done")
    assert [a["status_code"] for a in done["attempt_log"]] == [401, 201]
    assert len(helpdesk.tickets) == 1


def test_a_401_spends_none_of_the_retry_budget(tmp_path, helpdesk, capsys):
    # two tries in all: the 503 after the pause is the first, so one more is allowed
    retry = {"base": "50ms", "cap": "100ms", "max_attempts": 2, "auth_pause": "15m"}
    setup = bridge(tmp_path, {"helpdesk": provider(helpdesk, retry=retry)})
    helpdesk.answer_next(401, {"message": "invalid token"})
    helpdesk.answer_next(503, {"message": "maintenance"})
    with setup.serve() as server:
        event_id = post(server.url, order("create", "P-2"))
        delivery_where(capsys, setup.db, event_id, paused, what="its provider paused")
        assert main(["resume", "helpdesk", "--db", setup.db]) == 0
        capsys.readouterr()
        done = delivery_when(capsys, setup.db, event_id, "done")
    assert [a["status_code"] for a in done["attempt_log"]] == [401, 503, 201]


# 9. ------------------------------------------------------------------------------------------

# a clean stop: uvicorn re-raises the SIGTERM it handled once it has shut down
STOPPED = (0, -signal.SIGTERM)


def test_sigterm_releases_a_delivery_that_outlives_the_grace(tmp_path, capsys):
    with FakeProvider(idempotent=True).running() as helpdesk:
        setup = bridge(
            tmp_path,
            {"helpdesk": provider(helpdesk, timeout=30)},
            defaults={"lease": "1s", "shutdown_grace": "1s"},
        )
        helpdesk.hold()
        with setup.serve() as server:
            event_id = post(server.url, order("create", "S-1"))
            poll(lambda: helpdesk.held == 1, what="the call to reach the helpdesk")
            stopping = time.monotonic()
            assert server.terminate(timeout=20) in STOPPED
            assert time.monotonic() - stopping >= 0.9  # the grace was given
        released = delivery(capsys, setup.db, event_id)
        assert released["status"] == "pending"
        assert [a["outcome"] for a in released["attempt_log"]] == ["interrupted"]

        with setup.serve():
            helpdesk.release()
            done = delivery_when(capsys, setup.db, event_id, "done")
        assert done["attempt_log"][-1]["status_code"] == 201
        # both calls carried the delivery's Idempotency-Key: one ticket
        assert len(helpdesk.tickets) == 1


def test_sigterm_lets_a_delivery_in_flight_finish(tmp_path, capsys):
    with FakeProvider(delay=0.3).running() as helpdesk:
        setup = bridge(
            tmp_path, {"helpdesk": provider(helpdesk)}, defaults={"shutdown_grace": "10s"}
        )
        with setup.serve() as server:
            event_id = post(server.url, order("create", "S-2"))
            poll(lambda: helpdesk.requests, what="the call to reach the helpdesk")
            assert server.terminate(timeout=20) in STOPPED
        done = delivery(capsys, setup.db, event_id)
    assert done["status"] == "done"
    assert [a["status_code"] for a in done["attempt_log"]] == [201]
    assert len(helpdesk.tickets) == 1
