"""What the operator's surfaces read from the store: events and deliveries, the counts of
/metrics and the admin overview. Steps, written once for both databases (retrying a delivery
changes a key's queue: bridge.store.queues; forgetting old events is bridge.store.retention).
"""

from __future__ import annotations

from collections import defaultdict

from bridge.records import (
    Activity,
    Attempt,
    Delivery,
    DeliveryStatus,
    EventDetail,
    EventStatus,
    QueueStats,
    StoredEvent,
)
from bridge.store.counts import activity_from_rows, bucket_starts, stats_from_rows
from bridge.store.pacing import provider_holds
from bridge.store.rows import attempt_from_row, delivery_from_row, event_from_row
from bridge.store.steps import Step, first, rows


def list_events(
    source: str | None,
    status: EventStatus | None,
    before: str | None,
    since: float | None,
    until: float | None,
    *,
    limit: int,
) -> Step[list[StoredEvent]]:
    found = yield from rows(
        "list_events",
        source=source,
        status=None if status is None else status.value,
        before=before,
        since=since,
        until=until,
        limit=limit,
    )
    return [event_from_row(row) for row in found]


def get_event(event_id: str) -> Step[EventDetail | None]:
    """Run on one snapshot."""
    row = yield from first("event", id=event_id)
    if row is None:
        return None
    log: defaultdict[str, list[Attempt]] = defaultdict(list)
    for attempt in (yield from rows("attempts_of_event", id=event_id)):
        log[attempt["delivery_id"]].append(attempt_from_row(attempt))
    found = tuple(
        delivery_from_row(d, log.get(d["id"], ()))
        for d in (yield from rows("deliveries_of_event", id=event_id))
    )
    holds = yield from provider_holds()
    return EventDetail(
        event=event_from_row(row),
        deliveries=found,
        holds={d.provider: holds[d.provider] for d in found if d.provider in holds},
    )


def get_raw(event_id: str) -> Step[bytes | None]:
    row = yield from first("raw", id=event_id)
    if row is None:
        return None
    if row["raw_is_payload"]:
        return str(row["payload"]).encode("utf-8")
    return None if row["raw"] is None else bytes(row["raw"])


def get_delivery(delivery_id: str) -> Step[Delivery | None]:
    """Run on one snapshot."""
    row = yield from first("delivery", id=delivery_id)
    if row is None:
        return None
    attempts = yield from rows("attempts_of_delivery", id=delivery_id)
    return delivery_from_row(row, [attempt_from_row(a) for a in attempts])


def list_deliveries(
    *, status: DeliveryStatus | None, provider: str | None, limit: int
) -> Step[list[Delivery]]:
    found = yield from rows(
        "list_deliveries",
        status=None if status is None else status.value,
        provider=provider,
        limit=limit,
    )
    return [delivery_from_row(row) for row in found]


def queue_stats() -> Step[QueueStats]:
    return stats_from_rows((yield from rows("queue_stats")))


def activity(*, since: float, until: float, bucket: float) -> Step[list[Activity]]:
    starts = bucket_starts(since, until, bucket)
    if not starts:
        return []
    params = {"since": float(since), "until": float(until), "bucket": float(bucket)}
    return activity_from_rows(starts, (yield from rows("activity", **params)))
