"""Three hours of believable past traffic, written straight into a store before the server
starts: events received minute by minute, routed to the `audit` provider and delivered a
moment later, a few of them dead. The overview's chart then has something to draw."""

from __future__ import annotations

import asyncio
import json
import math
from concurrent.futures import ThreadPoolExecutor

from bridge.ids import new_id
from bridge.records import Attempt, AttemptResult, DeliveryStatus, NewDelivery, NewEvent, Routing
from bridge.store import open_store
from bridge.tickets import ActionKind, TicketAction

WINDOW = 7 * 86_400.0


def per_minute(minute: int) -> int:
    """A smooth, busy-then-quiet shape with a little texture (no randomness: the same
    screenshot every time)."""
    wave = 6 + 5 * math.sin(minute / 23) + 2 * math.sin(minute / 5.3)
    return max(0, round(wave))


async def _seed(url: str, *, now: float, minutes: int, provider: str, rule: str) -> int:
    store = open_store(url)
    await store.open()
    made = 0
    try:
        for minute in range(minutes, 0, -1):
            start = (now // 60 - minute) * 60
            count = per_minute(minutes - minute)
            for n in range(count):
                at = start + (n + 0.5) * 60 / max(count, 1)
                event_id = new_id("evt", now=at)
                body = {"kind": "note", "order": f"H-{minute}-{n}"}
                await store.ingest(
                    [
                        NewEvent(
                            id=event_id,
                            source="shop",
                            received_at=at,
                            headers={"content-type": "application/json"},
                            query={},
                            payload=json.dumps(body),
                            raw=None,
                            content_type="application/json",
                            dedupe_key=None,
                        )
                    ],
                    dedupe_window=WINDOW,
                    now=at,
                )
                delivery = NewDelivery(
                    id=new_id("dlv", now=at),
                    event_id=event_id,
                    rule=rule,
                    provider=provider,
                    action=TicketAction(
                        action=ActionKind.CREATE_TICKET, provider=provider, subject="seeded"
                    ),
                    correlate=None,
                )
                routing = Routing(
                    event_id=event_id,
                    matched_rules=(rule,),
                    trace=[{"rule": rule, "matched": True}],
                    deliveries=[delivery],
                )
                await store.save_routing(routing, now=at + 0.05)
                (claim,) = await store.claim_due(now=at + 0.1, limit=1, lease=60)
                dead = (minutes - minute) % 47 == 3 and n == 0
                status = DeliveryStatus.DEAD if dead else DeliveryStatus.DONE
                error = "HTTP 400: seeded failure" if dead else None
                result = AttemptResult(
                    attempt=Attempt(
                        delivery_id=delivery.id,
                        number=1,
                        started_at=at + 0.1,
                        duration=0.2,
                        outcome="permanent" if dead else "success",
                        status_code=400 if dead else 200,
                        error=error,
                    ),
                    status=status,
                    last_error=error,
                )
                await store.finish_attempt(claim, result, now=at + 0.3)
                made += 1
    finally:
        await store.close()
    return made


def seed_history(
    url: str, *, now: float, minutes: int = 180, provider: str = "audit", rule: str = "audit-note"
) -> int:
    """Write the traffic of the `minutes` before `now` into the store at `url`; how many events.
    (On a thread of its own: Playwright's sync API keeps an event loop running on this one.)"""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(
            asyncio.run, _seed(url, now=now, minutes=minutes, provider=provider, rule=rule)
        ).result()
