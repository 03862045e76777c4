"""Counts for /metrics and the admin overview, from PostgreSQL: the queue by provider and
status, and activity over time. Coroutine functions of a connection, like postgres_admin;
each is one statement, so it reads one snapshot. Rows become records as for SQLite (the same
helpers, from sqlite_stats).
"""

from __future__ import annotations

from bridge.store.base import Activity, DeliveryStatus, QueueStats
from bridge.store.postgres_connection import Connection
from bridge.store.postgres_rows import UNFINISHED
from bridge.store.sqlite_stats import (
    DELIVERED,
    RECEIVED,
    SUCCESS,
    activity_from_rows,
    bucket_starts,
    stats_from_rows,
)

# A row per (provider, status), then one row (provider NULL) with the events not routed yet
# and the received_at of the oldest event with work left. Unfinished deliveries carry their
# event's received_at (event_received_at) and have a partial index of their own.
_QUEUE_STATS = f"""
SELECT provider, status, count(*) AS n, NULL::double precision AS oldest
FROM deliveries GROUP BY provider, status
UNION ALL
SELECT NULL, NULL,
    (SELECT count(*) FROM events WHERE routed_at IS NULL),
    LEAST((SELECT min(received_at) FROM events WHERE routed_at IS NULL),
          (SELECT min(event_received_at) FROM deliveries WHERE status IN {UNFINISHED}))
"""

# Bucket numbers floor((t - since) / bucket). A delivery counts once, at the end of its last
# successful attempt: a retry after a failure counts at the success.
_ACTIVITY = f"""
SELECT '{RECEIVED}' AS kind, floor((received_at - %(since)s) / %(bucket)s)::bigint AS slot,
       count(*) AS n
FROM events WHERE received_at >= %(since)s AND received_at < %(until)s
GROUP BY slot
UNION ALL
SELECT '{DELIVERED}', floor((a.started_at + a.duration - %(since)s) / %(bucket)s)::bigint AS slot,
       count(*)
FROM attempts AS a JOIN deliveries AS d ON d.id = a.delivery_id
WHERE a.outcome = '{SUCCESS}' AND d.status = '{DeliveryStatus.DONE.value}'
  AND a.started_at + a.duration >= %(since)s AND a.started_at + a.duration < %(until)s
  AND NOT EXISTS (SELECT 1 FROM attempts AS later
                  WHERE later.delivery_id = a.delivery_id AND later.outcome = '{SUCCESS}'
                    AND (later.number, later.id) > (a.number, a.id))
GROUP BY slot
"""


async def queue_stats(connection: Connection) -> QueueStats:
    cursor = await connection.execute(_QUEUE_STATS)
    return stats_from_rows(await cursor.fetchall())


async def activity(
    connection: Connection, *, since: float, until: float, bucket: float
) -> list[Activity]:
    starts = bucket_starts(since, until, bucket)
    if not starts:
        return []
    params = {"since": float(since), "until": float(until), "bucket": float(bucket)}
    cursor = await connection.execute(_ACTIVITY, params)
    return activity_from_rows(starts, await cursor.fetchall())
