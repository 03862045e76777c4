"""N receivers and M workers on one PostgreSQL (DESIGN §6), with a worker crash (§3.2, §8).

Two `ticketbridge serve --no-worker` receivers and three `ticketbridge worker` processes share a
fresh PostgreSQL database. 1500 webhooks (300 orders, each a create and four updates,
every order's events sent one after another, alternating the receivers) go in; one worker is
SIGKILLed halfway, with deliveries in flight. Every event must reach the helpdesk exactly once
(the helpdesk honours Idempotency-Key, so a call the crash cut off may be repeated, at most once
per delivery the dead worker held), and each order's tickets in the order its events were sent.
Each worker's calls carry its name in an X-Worker header (from its environment, through `${...}`
in the rules), so the test knows the victim had calls in flight and who repeated them.

Needs BRIDGE_TEST_DATABASE_URL (e.g. postgresql://postgres@127.0.0.1:5432/test): a role that may
create databases. Each run creates `t_<random>` beside it and drops it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import yaml

from bridge.records import EventStatus
from bridge.store import open_store
from tests.fakes.provider import FakeProvider, Received
from tests.helpers import (
    ServerProcess,
    WorkerProcess,
    poll,
    server_process,
    worker_process,
    write_tree,
)

# 2000 events: about 30 s on a 2-core machine.
ORDERS = 400
UPDATES = 4  # per order, after its create: seq 1..4
EVENTS = ORDERS * (1 + UPDATES)
CONCURRENCY = 8  # per worker process: the most deliveries the killed one can hold
SENDERS = 32  # concurrent senders (and HTTP connections), one order at a time each
DEADLINE = 120.0  # bound on every wait for work; the test itself takes far less
WORKERS = ("w1", "w2", "w3")  # each worker's calls carry its name in X-Worker
VICTIM = "w1"

TEMPLATE = """
    {"action": {{ ticket.action | tojson }},
     "id": {{ body.id | tojson }},
     "order": {{ body.order | tojson }},
     "seq": {{ body.seq | tojson }},
     "kind": {{ body.kind | tojson }}}
"""


# -- a fresh database ------------------------------------------------------------------------


@pytest.fixture
def database() -> Iterator[str]:
    """The URL of a new, empty database beside BRIDGE_TEST_DATABASE_URL's, dropped afterwards."""
    base = os.environ.get("BRIDGE_TEST_DATABASE_URL")
    if not base:
        pytest.skip("BRIDGE_TEST_DATABASE_URL is not set: no PostgreSQL server to test against")
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(base, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL at BRIDGE_TEST_DATABASE_URL is unreachable: {exc}")
    name = f"t_{secrets.token_hex(6)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(base)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(base, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the deployment --------------------------------------------------------------------------


@dataclass
class Deployment:
    root: Path
    db: str

    @property
    def rules(self) -> Path:
        return self.root / "rules"

    @property
    def templates(self) -> Path:
        return self.root / "templates"

    def receiver(self, number: int) -> contextlib.AbstractContextManager[ServerProcess]:
        return server_process(
            rules=self.rules,
            templates=self.templates,
            db=self.db,
            log=self.root / f"receiver-{number}.log",
            extra=["--no-worker"],
        )

    def worker(self, name: str) -> contextlib.AbstractContextManager[WorkerProcess]:
        return worker_process(
            rules=self.rules,
            templates=self.templates,
            db=self.db,
            env={"BRIDGE_TEST_WORKER": name},
            log=self.root / f"worker-{name}.log",
        )


def deployment(tmp_path: Path, helpdesk: FakeProvider, db: str) -> Deployment:
    correlate = "order-{{ body.order }}"
    document = {
        "defaults": {"lease": "2s"},  # the killed worker's deliveries are taken over quickly
        "providers": {
            "helpdesk": {
                "type": "http",
                "url": f"{helpdesk.url}/tickets",
                "body": {"template": "ticket.json.j2"},
                # ${...} is filled in from each process's environment when it loads the rules
                "headers": {"X-Worker": "${BRIDGE_TEST_WORKER:-none}"},
                "concurrency": CONCURRENCY,
                "retry": {"base": "50ms", "cap": "200ms", "max_attempts": 10},
            }
        },
        "sources": {"shop": {"verify": {"type": "none"}, "dedupe_key": "{{ body.id }}"}},
        "rules": [
            {
                "name": "create",
                "source": "shop",
                "when": {"body.kind": "create"},
                "action": "create_ticket",
                "provider": "helpdesk",
                "ticket": {"subject": "Order {{ body.order }}", "correlate": correlate},
            },
            {
                "name": "update",
                "source": "shop",
                "when": {"body.kind": "update"},
                "action": "update_ticket",
                "provider": "helpdesk",
                "ticket": {"subject": "Order {{ body.order }} changed", "correlate": correlate},
            },
        ],
    }
    root = write_tree(
        tmp_path,
        {
            "rules/main.yaml": yaml.safe_dump(document, sort_keys=False),
            "templates/ticket.json.j2": TEMPLATE,
        },
    )
    return Deployment(root=root, db=db)


def webhooks(order: int) -> list[dict[str, Any]]:
    """One order's events, in the order its sender sends them."""
    return [
        {
            "id": f"o{order:04d}-s{seq}",
            "order": f"O-{order:04d}",
            "seq": seq,
            "kind": "create" if seq == 0 else "update",
        }
        for seq in range(1 + UPDATES)
    ]


# -- load and crash --------------------------------------------------------------------------


async def send_all(receivers: list[str]) -> Counter[int]:
    """Every order's webhooks, each order's one after another, SENDERS orders at a time,
    alternating the receivers; the count of each status code answered."""
    statuses: Counter[int] = Counter()
    orders = iter(range(ORDERS))
    limits = httpx.Limits(max_connections=SENDERS, max_keepalive_connections=SENDERS)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def sender() -> None:
            for order in orders:  # one shared iterator: each order goes to one sender
                for body in webhooks(order):
                    url = receivers[(order + body["seq"]) % len(receivers)]
                    response = await client.post(f"{url}/hooks/shop", json=body)
                    statuses[response.status_code] += 1

        await asyncio.gather(*(sender() for _ in range(SENDERS)))
    return statuses


def sent_by(request: Received) -> str:
    return request.headers.get("x-worker", "?")


async def crash_halfway(helpdesk: FakeProvider, victim: WorkerProcess) -> None:
    """SIGKILL `victim` once half the tickets reached the helpdesk and a call of the victim's
    is there unanswered (so it surely dies with work in flight)."""
    deadline = time.monotonic() + DEADLINE

    def victim_is_waiting() -> bool:
        # copies: the fake appends from its own thread
        recent = list(helpdesk.requests)[-4 * CONCURRENCY :]
        answered = {r.headers["idempotency-key"] for r in list(helpdesk.tickets)}
        return any(
            sent_by(r) == VICTIM and r.headers["idempotency-key"] not in answered for r in recent
        )

    while not (len(helpdesk.tickets) >= EVENTS // 2 and victim_is_waiting()):
        assert time.monotonic() < deadline, "no call of the victim's was ever seen in flight"
        assert victim.process.poll() is None, victim.log.read_text()[-3000:]
        await asyncio.sleep(0.002)
    victim.kill()


async def load_and_crash(
    receivers: list[str], helpdesk: FakeProvider, victim: WorkerProcess
) -> Counter[int]:
    statuses, _ = await asyncio.gather(send_all(receivers), crash_halfway(helpdesk, victim))
    return statuses


async def event_statuses(db: str) -> Counter[str]:
    store = open_store(db)
    await store.open()
    try:
        events = await store.list_events(source="shop", limit=EVENTS + 100)
        return Counter(str(e.status) for e in events)
    finally:
        await store.close()


# -- the test --------------------------------------------------------------------------------


def test_two_receivers_three_workers_one_killed_deliver_each_event_once_in_order(
    tmp_path, database
):
    started = time.monotonic()
    with FakeProvider(idempotent=True, delay=0.005).running() as helpdesk:
        setup = deployment(tmp_path, helpdesk, database)
        with contextlib.ExitStack() as stack:
            # the first receiver applies the migrations; the rest start on a ready schema
            receivers = [stack.enter_context(setup.receiver(1))]
            receivers.append(stack.enter_context(setup.receiver(2)))
            workers = {name: stack.enter_context(setup.worker(name)) for name in WORKERS}
            victim = workers[VICTIM]
            survivors = [w for name, w in workers.items() if name != VICTIM]

            statuses = asyncio.run(load_and_crash([r.url for r in receivers], helpdesk, victim))
            assert statuses == {202: EVENTS}
            assert all(w.process.poll() is None for w in survivors)

            def all_delivered() -> bool:
                return len({r.json["id"] for r in list(helpdesk.tickets)}) >= EVENTS

            poll(all_delivered, timeout=DEADLINE, interval=0.1, what="a ticket for every event")
            poll(
                lambda: asyncio.run(event_statuses(database)) == {EventStatus.DONE.value: EVENTS},
                timeout=DEADLINE,
                interval=0.2,
                what="every event to be done in the store",
            )
            assert all(w.process.poll() is None for w in survivors)
            assert all(r.process.poll() is None for r in receivers)
        elapsed = time.monotonic() - started

        # every worker took part, and none but them called
        assert {sent_by(r) for r in helpdesk.requests} == set(WORKERS)

        # exactly once per event
        per_event = Counter(r.json["id"] for r in helpdesk.tickets)
        expected = {body["id"] for order in range(ORDERS) for body in webhooks(order)}
        assert set(per_event) == expected
        assert max(per_event.values()) == 1, [k for k, n in per_event.items() if n > 1][:10]
        assert len(helpdesk.created) == EVENTS  # one Idempotency-Key (delivery) per event

        # The victim died with calls in flight; the survivors took those deliveries over once
        # their lease lapsed and called again with the same key: the helpdesk's repeats. Only
        # those, and at most one per delivery the victim could hold.
        victim_keys = {
            r.headers["idempotency-key"] for r in helpdesk.requests if sent_by(r) == VICTIM
        }
        assert helpdesk.repeats, "no call of the killed worker's was taken over"
        assert len(helpdesk.repeats) <= CONCURRENCY
        for repeat in helpdesk.repeats:
            assert sent_by(repeat) != VICTIM
            assert repeat.headers["idempotency-key"] in victim_keys

        print(f"{EVENTS} events, {len(helpdesk.repeats)} repeats, {elapsed:.1f}s")

        # per order, in the order sent: the create first, then the updates by seq
        arrivals: dict[str, list[tuple[float, int]]] = defaultdict(list)
        for request in helpdesk.tickets:
            arrivals[request.json["order"]].append((request.received_at, request.json["seq"]))
        out_of_order = {
            order: [seq for _, seq in sorted(seen)]
            for order, seen in sorted(arrivals.items())
            if [seq for _, seq in sorted(seen)] != list(range(1 + UPDATES))
        }
        assert not out_of_order, (
            f"{len(out_of_order)} of {ORDERS} orders reached the helpdesk out of order "
            f"(seq in arrival order), e.g. {dict(itertools.islice(out_of_order.items(), 8))}"
        )
        first = Counter(r.json["action"] for r in helpdesk.tickets if r.json["seq"] == 0)
        assert first == {"create_ticket": ORDERS}
