"""lifecycle: tickets with a lifecycle, as users' rules make them. 1,000 orders (200 with
--quick), each opened, given 3 notes and closed (create_ticket, add_note x3, close_ticket,
one key per order), sent step by step (every order's open, then every first note, ...), so
each key's queue holds a create and what waits behind it. Stored by `serve --no-worker`,
drained by `worker` with the `log` provider; against as many events of the same rules and
size that each open an order of their own (nothing waits).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx

from bench import payload
from bench.processes import Running
from bench.report import Row
from bench.scenarios.common import HOOK_PATH, Bench, MeasurementFailed
from bench.scenarios.drain import Drained, drain_stored, drained_rows

NOTES = 3
SENDERS = 32
TARGET = 1.3  # cost per event of a lifecycle against independent events


STEPS = ["ticket.opened", *["ticket.note"] * NOTES, "ticket.closed"]


def _body(kind: str, order: int, step: int) -> bytes:
    """The load's 2 KB event as one step of an order's lifecycle."""
    event = json.loads(payload.body())
    event.update(type=kind, order=f"ORD-{order:06d}", text=f"step {step} of order {order}")
    return json.dumps(event, separators=(",", ":")).encode()


def _lifecycles(orders: int) -> list[list[bytes]]:
    """Every order's open, then each note, then every close: each step all stored before
    the next is sent, so each key's events arrive in order."""
    return [[_body(kind, n, step) for n in range(orders)] for step, kind in enumerate(STEPS)]


def _independent(orders: int) -> list[list[bytes]]:
    """As many events, each opening an order of its own: the same rule, body and size, with
    nothing to wait behind."""
    return [[_body("ticket.opened", n, 0) for n in range(orders * len(STEPS))]]


def _sender(steps: list[list[bytes]]) -> Callable[[Running, Path, Path], None]:
    def store(server: Running, rules: Path, templates: Path) -> None:
        sign = payload.signer(rules, templates)
        asyncio.run(_send(server.url + HOOK_PATH, steps, sign))

    return store


async def _send(
    url: str, steps: list[list[bytes]], sign: Callable[[bytes], dict[str, str]]
) -> None:
    limits = httpx.Limits(max_connections=SENDERS, max_keepalive_connections=SENDERS)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        gate = asyncio.Semaphore(SENDERS)
        number = 0

        async def one(body: bytes, delivery: str) -> None:
            async with gate:
                headers = {**sign(body), "X-GitHub-Delivery": delivery}
                answer = await client.post(url, content=body, headers=headers)
            if answer.status_code != 202:
                raise MeasurementFailed(f"{answer.status_code} {answer.text[:200]}")

        for step in steps:  # a step is all stored before the next is sent: order per key
            tasks = []
            for body in step:
                number += 1
                tasks.append(one(body, f"lifecycle-{number}"))
            await asyncio.gather(*tasks)


def run(bench: Bench) -> list[Row]:
    bench.need_load()
    orders = 200 if bench.options.quick else 1_000
    events = orders * len(STEPS)
    keyed: list[Drained] = []
    unique: list[Drained] = []
    for _ in range(bench.options.rounds):
        for name, steps, into in (
            ("lifecycle", _lifecycles(orders), keyed),
            ("lifecycle-independent", _independent(orders), unique),
        ):
            store = _sender(steps)
            into.append(drain_stored(bench, name, rules=1, events=events, lifecycle=store))
    return drained_rows(
        "lifecycle",
        {
            f"{events:,} events each opening an order of its own": unique,
            f"{orders:,} orders: open, {NOTES} notes, close ({events:,} events)": keyed,
        },
        compared="lifecycle against independent events",
        target=TARGET,
    )
