"""Counts for /metrics and the admin overview, from SQLite: the queue by provider and status,
and activity over time. Plain functions of a connection, like sqlite_admin; the bucketing
helpers are shared with postgres_stats (they hold no SQLite in them).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable
from typing import Any

from bridge.exceptions import StoreError
from bridge.store.base import Activity, DeliveryStatus, QueueStats
from bridge.store.sqlite_rows import UNFINISHED

MAX_BUCKETS = 100_000  # an activity query longer than this is a mistake, not a chart
SUCCESS = "success"  # attempts.outcome of an attempt that did what it was sent to do
RECEIVED, DELIVERED = "received", "delivered"

# One statement: a row per (provider, status), then one row (provider NULL) with the events
# not routed yet and the received_at of the oldest event with work left.
_QUEUE_STATS = f"""
SELECT provider, status, count(*) AS n, NULL AS oldest
FROM deliveries GROUP BY provider, status
UNION ALL
SELECT NULL, NULL,
    (SELECT count(*) FROM events WHERE routed_at IS NULL),
    (SELECT min(t) FROM (
        SELECT min(received_at) AS t FROM events WHERE routed_at IS NULL
        UNION ALL
        SELECT min(e.received_at) FROM deliveries AS d JOIN events AS e ON e.id = d.event_id
        WHERE d.status IN {UNFINISHED}))
"""

# Bucket numbers floor((t - since) / bucket); t >= since, so CAST's truncation is floor
# (and needs no math functions, which SQLite may be built without). A delivery counts once,
# at the end of its last successful attempt: a retry after a failure counts at the success.
_ACTIVITY = f"""
SELECT '{RECEIVED}' AS kind, CAST((received_at - :since) / :bucket AS INTEGER) AS slot,
       count(*) AS n
FROM events WHERE received_at >= :since AND received_at < :until
GROUP BY slot
UNION ALL
SELECT '{DELIVERED}', CAST((a.started_at + a.duration - :since) / :bucket AS INTEGER) AS slot,
       count(*)
FROM attempts AS a JOIN deliveries AS d ON d.id = a.delivery_id
WHERE a.outcome = '{SUCCESS}' AND d.status = '{DeliveryStatus.DONE.value}'
  AND a.started_at + a.duration >= :since AND a.started_at + a.duration < :until
  AND NOT EXISTS (SELECT 1 FROM attempts AS later
                  WHERE later.delivery_id = a.delivery_id AND later.outcome = '{SUCCESS}'
                    AND (later.number > a.number
                         OR (later.number = a.number AND later.id > a.id)))
GROUP BY slot
"""


def queue_stats(connection: sqlite3.Connection) -> QueueStats:
    return stats_from_rows(connection.execute(_QUEUE_STATS))


def activity(
    connection: sqlite3.Connection, *, since: float, until: float, bucket: float
) -> list[Activity]:
    starts = bucket_starts(since, until, bucket)
    if not starts:
        return []
    rows = connection.execute(_ACTIVITY, {"since": since, "until": until, "bucket": bucket})
    return activity_from_rows(starts, rows)


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
