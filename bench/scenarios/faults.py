"""Faults, counted (DESIGN §8): what the delivery guarantees are worth under real failures.

kill9     `serve` (receiver and worker) under steady load, SIGKILLed at 20 random moments and
          started again each time; senders retry what was not acknowledged. Every
          acknowledged event must be delivered; calls repeated (a delivery in flight when the
          process died is sent again) are counted, and tickets made twice at a helpdesk that
          honours Idempotency-Key (which every attempt of a delivery carries).
outage    a helpdesk that answers 500 (with Retry-After) for two minutes while orders and
          their updates arrive, then recovers: everything delivered, each order's calls in
          order, no delivery retried sooner than Retry-After said, the retries spaced by the
          backoff.
diskfull  the SQLite volume full under load (the server's RLIMIT_FSIZE lowered from outside,
          so that its writes fail with EFBIG as they would with ENOSPC; a small tmpfs needs
          mount rights a container seldom has): 503s, nothing acknowledged lost, ingest back
          without a restart once the limit is lifted.
pgdown    PostgreSQL (a throwaway cluster of the bench's own) stopped for 30 s under load with
          2 receivers and 2 workers: 503s while it is down, nothing acknowledged lost, all of
          them serving again once it is back, without a restart.

The fake helpdesk is the suite's (tests/fakes/provider.py), on a thread of this process.
"""

from __future__ import annotations

import contextlib
import random
import resource
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.report import Row
from bench.scenarios.common import Bench, Skipped
from tests.fakes.provider import FakeProvider
from tests.helpers import poll, server_process, worker_process, write_tree

KILLS = 20
SENDERS = 8
CONCURRENCY = 8


def _config(root: Path, helpdesk: FakeProvider) -> tuple[Path, Path]:
    document = {
        "defaults": {"lease": "2s"},
        "providers": {
            "desk": {
                "type": "http",
                "url": f"{helpdesk.url}/tickets",
                "concurrency": CONCURRENCY,
                "retry": {"base": "1s", "cap": "20s", "max_attempts": 1000, "max_age": "1h"},
                "circuit_breaker": {"failures": 1000, "cooldown": "1s"},
            }
        },
        "sources": {"shop": {"verify": {"type": "none"}, "dedupe_key": "body.id"}},
        "rules": [
            {
                "name": name,
                "source": "shop",
                "action": action,
                "provider": "desk",
                "when": {"body.kind": kind},
                "ticket": {"subject": "{{ body.id }}", "correlate": "{{ body.order }}"},
            }
            for name, kind, action in (
                ("order", "create", "create_ticket"),
                ("change", "update", "update_ticket"),
            )
        ],
    }
    write_tree(root, {"rules/main.yaml": yaml.safe_dump(document), "templates/.keep": ""})
    return root / "rules", root / "templates"


@dataclass
class Senders:
    """Threads POSTing orders to whichever URL `url` holds; what got a 2xx is `acknowledged`,
    what did not stays pending and is sent again, as a real sender retries."""

    url: str = ""
    pending: list[dict[str, str]] = field(default_factory=list)
    acknowledged: dict[str, dict[str, str]] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    refused: int = 0  # connections refused or reset: the server was down
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def add(self, bodies: list[dict[str, str]]) -> None:
        with self._lock:
            self.pending.extend(bodies)

    def start(self) -> None:
        self._stop.clear()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(SENDERS)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    @property
    def done(self) -> bool:
        with self._lock:
            return not self.pending

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                with self._lock:
                    body = self.pending.pop(0) if self.pending else None
                if body is None:
                    self._stop.wait(0.01)
                    continue
                try:
                    status = client.post(f"{self.url}/hooks/shop", json=body).status_code
                except httpx.HTTPError:
                    status = 0
                with self._lock:
                    if status in (200, 202):
                        self.acknowledged[body["id"]] = body
                    else:
                        self.pending.append(body)  # sent again later
                    if status:
                        self.statuses[status] += 1
                    else:
                        self.refused += 1


def _orders(count: int, *, updates: int = 0, prefix: str = "o") -> list[dict[str, str]]:
    """`count` orders, each a create and then `updates` updates (in that order per order)."""
    bodies = []
    for step in range(updates + 1):
        for number in range(count):
            kind = "create" if step == 0 else "update"
            order = f"{prefix}{number}"
            bodies.append({"id": f"{order}-{step}", "order": order, "kind": kind})
    return bodies


def _delivered(helpdesk: FakeProvider, acknowledged: dict[str, Any]) -> bool:
    made = {r.json.get("subject") for r in helpdesk.tickets if isinstance(r.json, dict)}
    return all(event_id in made for event_id in acknowledged)


# -- kill -9 ----------------------------------------------------------------------------------


def run_kill9(bench: Bench) -> list[Row]:
    kills = 5 if bench.options.quick else KILLS
    where = bench.fresh("kill9")
    with FakeProvider(idempotent=True, delay=0.02).running() as helpdesk:
        rules, templates = _config(where, helpdesk)
        db = f"sqlite:///{where / 'bridge.db'}"
        senders = Senders()
        senders.add(_orders(400 * kills))
        rng = random.Random(7)
        for _ in range(kills):
            with server_process(
                rules=rules, templates=templates, db=db, log=where / "serve.log"
            ) as s:
                senders.url = s.url
                senders.start()
                time.sleep(rng.uniform(0.3, 2.0))  # a random moment under load
                s.kill()
                senders.stop()
        with server_process(rules=rules, templates=templates, db=db, log=where / "serve.log") as s:
            senders.url = s.url
            senders.start()
            poll(lambda: senders.done, timeout=300, interval=0.1, what="every order acknowledged")
            senders.stop()
            poll(
                lambda: _delivered(helpdesk, senders.acknowledged),
                timeout=300,
                interval=0.2,
                what="every acknowledged order delivered",
            )
        acknowledged = senders.acknowledged
        made = Counter(r.json["subject"] for r in helpdesk.tickets)
        lost = [event_id for event_id in acknowledged if event_id not in made]
        twice = sum(1 for count in made.values() if count > 1)
        repeated = len(helpdesk.repeats)
    return [
        Row(
            scenario="kill9",
            what=(
                f"kill -9 of serve ×{kills} under load, restarted each time: {len(acknowledged):,}"
                f" events acknowledged, {len(lost)} lost; {repeated} calls sent again (deliveries"
                f" in flight at a kill, ≤ concurrency {CONCURRENCY} each), {twice} tickets made"
                " twice at a helpdesk that honours Idempotency-Key"
            ),
            ratio=f"{len(lost)} lost, {repeated / kills:.1f} repeats per kill",
            target=f"0 lost; repeats ≤ {CONCURRENCY} per kill",
            met=not lost and twice == 0 and repeated <= CONCURRENCY * kills,
        )
    ]


# -- a helpdesk down for two minutes -------------------------------------------------------


def run_outage(bench: Bench) -> list[Row]:
    seconds = 20.0 if bench.options.quick else 120.0
    retry_after = 5.0
    where = bench.fresh("outage")
    helpdesk = FakeProvider()
    helpdesk.outage_answer = (500, {"Retry-After": f"{retry_after:g}"}, {"message": "down"})
    with helpdesk.running():
        rules, templates = _config(where, helpdesk)
        db = f"sqlite:///{where / 'bridge.db'}"
        with server_process(rules=rules, templates=templates, db=db, log=where / "serve.log") as s:
            helpdesk.outage_until = time.monotonic() + seconds
            senders = Senders(url=s.url)
            senders.add(_orders(100, updates=2))  # 100 orders, each a create then 2 updates
            senders.start()
            poll(lambda: senders.done, timeout=120, interval=0.1, what="every order acknowledged")
            senders.stop()
            poll(
                lambda: _delivered(helpdesk, senders.acknowledged),
                timeout=seconds + 300,
                interval=0.5,
                what="every order delivered after the outage",
            )
        recovered = helpdesk.outage_until
        calls: dict[str, list[tuple[float, str]]] = defaultdict(list)
        for request in helpdesk.requests:
            key = request.headers.get("idempotency-key", "")
            calls[key].append((request.received_at, str(request.json.get("subject"))))
        gaps = [
            later[0] - earlier[0]
            for attempts in calls.values()
            for earlier, later in zip(attempts, attempts[1:], strict=False)
            if earlier[0] < recovered
        ]
        per_order: dict[str, list[str]] = defaultdict(list)
        for ticket in helpdesk.tickets:
            per_order[ticket.json["subject"].rsplit("-", 1)[0]].append(ticket.json["subject"])
        in_order = all(subjects == sorted(subjects) for subjects in per_order.values())
        during = sum(1 for r in helpdesk.requests if r.received_at < recovered)
    shortest = min(gaps) if gaps else 0.0
    return [
        Row(
            scenario="outage",
            what=(
                f"helpdesk answering 500 (Retry-After: {retry_after:g}) for {seconds:g} s:"
                f" {len(senders.acknowledged)} events, all delivered, each order's calls in"
                f" order: {in_order}; {during} calls during the outage, shortest gap between"
                f" two tries of one delivery {shortest:.1f} s"
            ),
            ratio=f"in order: {in_order}; min retry gap {shortest:.1f} s",
            target=f"all delivered, in order, no retry sooner than {retry_after:g} s",
            met=in_order and shortest >= retry_after - 0.1,
        )
    ]


# -- the SQLite volume full -------------------------------------------------------------------


def _file_size_limit(pid: int, limit: int) -> None:
    """Set `pid`'s soft limit on the size of files it writes (RLIM_INFINITY lifts it)."""
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, hard))


def run_diskfull(bench: Bench) -> list[Row]:
    where = bench.fresh("diskfull")
    with FakeProvider().running() as helpdesk:
        rules, templates = _config(where, helpdesk)
        path = where / "bridge.db"
        # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG, as one to a full
        # disk fails with ENOSPC, and SQLite answers an I/O error
        serving = server_process(
            rules=rules, templates=templates, db=f"sqlite:///{path}", log=where / "serve.log"
        )
        with serving as s:
            senders = Senders(url=s.url)
            senders.add(_orders(300))
            senders.start()
            poll(lambda: len(senders.acknowledged) >= 100, timeout=60, what="100 acknowledged")
            largest = max(p.stat().st_size for p in where.glob("bridge.db*"))
            _file_size_limit(s.process.pid, largest + 4096)  # the volume is full now
            senders.add(_orders(300, prefix="full"))
            poll(lambda: senders.statuses[503] >= 20, timeout=60, what="503s while full")
            full_503 = senders.statuses[503]
            _file_size_limit(s.process.pid, resource.RLIM_INFINITY)  # space again
            poll(lambda: senders.done, timeout=120, interval=0.1, what="ingest to resume")
            senders.stop()
            poll(
                lambda: _delivered(helpdesk, senders.acknowledged),
                timeout=120,
                what="every acknowledged order delivered",
            )
            made = {r.json["subject"] for r in helpdesk.tickets}
            lost = [event_id for event_id in senders.acknowledged if event_id not in made]
            other = sum(
                n for status, n in senders.statuses.items() if status >= 500 and status != 503
            )
    return [
        Row(
            scenario="diskfull",
            what=(
                f"SQLite volume full under load (RLIMIT_FSIZE): {full_503} answers of 503,"
                f" {other} other 5xx; {len(senders.acknowledged)} acknowledged, {len(lost)} lost;"
                " ingest resumed without a restart"
            ),
            ratio=f"{len(lost)} lost",
            target="503 while full, 0 lost, resumes",
            met=not lost and other == 0,
        )
    ]


# -- PostgreSQL down for 30 s ------------------------------------------------------------------


def run_pgdown(bench: Bench) -> list[Row]:
    from tests import postgres_cluster

    seconds = 10.0 if bench.options.quick else 30.0
    try:
        cluster = postgres_cluster.start()
    except postgres_cluster.Unavailable as exc:
        raise Skipped(f"no PostgreSQL to stop and start: {exc}") from None
    where = bench.fresh("pgdown")
    try:
        with FakeProvider().running() as helpdesk, contextlib.ExitStack() as stack:
            rules, templates = _config(where, helpdesk)
            db = cluster.url
            receivers = [
                stack.enter_context(
                    server_process(
                        rules=rules,
                        templates=templates,
                        db=db,
                        log=where / f"serve-{n}.log",
                        extra=["--no-worker"],
                    )
                )
                for n in range(2)
            ]
            for n in range(2):
                stack.enter_context(
                    worker_process(rules=rules, templates=templates, db=db, log=where / f"w{n}.log")
                )
            senders = [Senders(url=r.url) for r in receivers]
            for number, sender in enumerate(senders):
                sender.add(_orders(1500, prefix=f"r{number}-"))
                sender.start()
            poll(lambda: all(len(s.acknowledged) >= 100 for s in senders), timeout=60, what="load")
            postgres_cluster.pause(cluster)
            time.sleep(seconds)  # the outage itself
            down_503 = sum(s.statuses[503] for s in senders)
            postgres_cluster.resume(cluster)
            poll(
                lambda: all(s.done for s in senders), timeout=300, interval=0.2, what="ingest back"
            )
            for sender in senders:
                sender.stop()
            acknowledged = {k: v for s in senders for k, v in s.acknowledged.items()}
            poll(
                lambda: _delivered(helpdesk, acknowledged),
                timeout=300,
                interval=0.5,
                what="every acknowledged order delivered",
            )
            made = {r.json["subject"] for r in helpdesk.tickets}
            lost = [event_id for event_id in acknowledged if event_id not in made]
            other = sum(
                n for s in senders for st, n in s.statuses.items() if st >= 500 and st != 503
            )
    finally:
        postgres_cluster.stop(cluster)
    return [
        Row(
            scenario="pgdown",
            what=(
                f"PostgreSQL stopped {seconds:g} s under load, 2 receivers + 2 workers:"
                f" {down_503} answers of 503, {other} other 5xx; {len(acknowledged):,}"
                f" acknowledged, {len(lost)} lost; all serving again without a restart"
            ),
            ratio=f"{len(lost)} lost",
            target="503 while down, 0 lost, recovers by itself",
            met=not lost and other == 0 and down_503 > 0,
        )
    ]
