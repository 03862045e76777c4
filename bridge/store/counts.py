"""Counts for /metrics and the admin overview, from the rows of queries.sql's queue_stats and
activity: the queue by provider and status, and activity per time bucket. Pure functions."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from bridge.exceptions import StoreError
from bridge.records import Activity, DeliveryStatus, QueueStats

MAX_BUCKETS = 100_000  # an activity query longer than this is a mistake, not a chart
RECEIVED = "received"  # the kinds of activity rows (queries.sql)


def stats_from_rows(rows: Iterable[Any]) -> QueueStats:
    """QueueStats from the rows of a queue-stats statement (both backends' shape)."""
    deliveries: dict[tuple[str, DeliveryStatus], int] = {}
    unrouted, oldest = 0, None
    for row in rows:
        if row["provider"] is None:
            unrouted, oldest = int(row["n"]), row["oldest"]
        else:
            key = (str(row["provider"]), DeliveryStatus(row["status"]))
            deliveries[key] = int(row["n"])
    return QueueStats(
        deliveries=deliveries,
        unrouted=unrouted,
        oldest_unfinished=None if oldest is None else float(oldest),
    )


def bucket_starts(since: float, until: float, bucket: float) -> list[float]:
    """since, since + bucket, ... while < until."""
    if not (math.isfinite(since) and math.isfinite(until)):
        raise StoreError("activity needs finite since and until")
    if not (math.isfinite(bucket) and bucket > 0):
        raise StoreError(f"activity bucket must be a positive number of seconds, not {bucket}")
    if until <= since:
        return []
    count = math.ceil((until - since) / bucket)
    if count > MAX_BUCKETS:
        raise StoreError(f"activity over {count} buckets; at most {MAX_BUCKETS}")
    # rounding may put the last computed start on `until`, or one short of it
    while count > 0 and since + (count - 1) * bucket >= until:
        count -= 1
    while since + count * bucket < until:
        count += 1
    return [since + i * bucket for i in range(count)]


def activity_from_rows(starts: list[float], rows: Iterable[Any]) -> list[Activity]:
    """One Activity per start, from (kind, slot, n) rows; buckets without rows are zeros."""
    received = [0] * len(starts)
    delivered = [0] * len(starts)
    last = len(starts) - 1
    for row in rows:
        # rounding of (t - since) / bucket near an edge may land one off the end: clamp
        number = min(max(int(row["slot"]), 0), last)
        counts = received if row["kind"] == RECEIVED else delivered
        counts[number] += int(row["n"])
    return [
        Activity(start=start, received=r, delivered=d)
        for start, r, d in zip(starts, received, delivered, strict=True)
    ]
