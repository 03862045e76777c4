"""What an operator can do to stored work, the same from the CLI and the admin surface:
route an event again, queue a dead delivery again, pause and resume a provider."""

from __future__ import annotations

import dataclasses
from functools import partial

from bridge.delivery.dispatch import route_event
from bridge.ids import new_id
from bridge.records import (
    UNTIL_RESUMED,
    Delivery,
    DeliveryStatus,
    HoldState,
    ProviderHold,
    Routing,
)
from bridge.service import Service
from bridge.store.base import Store


async def replay_event(
    service: Service, store: Store, event_id: str, *, now: float
) -> Routing | None:
    """Route a stored event again with the rules loaded now; its dead deliveries are
    cancelled, superseded by the new ones. None when there is no such event."""
    detail = await store.get_event(event_id)
    if detail is None:
        return None
    routing = dataclasses.replace(
        route_event(service, detail.event, now=now, new_id=partial(new_id, "dlv")),
        supersede_dead=True,
    )
    await store.save_routing(routing, now=now)
    return routing


async def retry_dead(
    store: Store, *, provider: str | None, now: float
) -> tuple[int, list[Delivery]]:
    """Queue every dead delivery (of `provider`) again, oldest first, so that each key keeps
    its order (a retried one takes the ones its death killed along). Returns how many were
    queued again and, oldest first, those that were not and are still dead: the ones that
    never rendered (there is no action to send: replay their event), and any the store would
    not queue again."""
    dead = await store.list_deliveries(status=DeliveryStatus.DEAD, provider=provider, limit=100_000)
    refused: set[str] = set()
    for delivery in reversed(dead):
        if delivery.action is None:
            refused.add(delivery.id)
        elif not await store.retry_delivery(delivery.id, now=now):
            refused.add(delivery.id)  # or queued already, along with the one that killed it
    if refused:
        left = await store.list_deliveries(
            status=DeliveryStatus.DEAD, provider=provider, limit=100_000
        )
        refused &= {delivery.id for delivery in left}
    not_queued = [delivery for delivery in reversed(dead) if delivery.id in refused]
    return len(dead) - len(not_queued), not_queued


async def pause_provider(
    store: Store, provider: str, *, now: float, reason: str, seconds: float | None = None
) -> ProviderHold:
    hold = ProviderHold(
        provider=provider,
        state=HoldState.PAUSED,
        since=now,
        until=now + (UNTIL_RESUMED if seconds is None else seconds),
        reason=reason,
    )
    await store.hold_provider(hold)
    return hold
