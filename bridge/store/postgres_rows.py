"""The columns the PostgreSQL store reads, and a key's queue order; records and rows convert in
bridge.store.records (re-exported here for the PostgreSQL modules), the same as for SQLite.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.store.base import DeliveryStatus
from bridge.store.records import (
    ATTEMPT_COLUMNS,
    FINAL,
    QUEUED,
    UNFINISHED,
    attempt_from_row,
    attempt_params,
    delivery_from_row,
    delivery_params,
    dumps,
    dumps_optional,
    event_from_row,
    event_params,
    hold_from_row,
    loads_optional,
    sql_list,
)

__all__ = [
    "ATTEMPT_COLUMNS",
    "DELIVERY_COLUMNS",
    "EVENT_COLUMNS",
    "FINAL",
    "QUEUED",
    "UNFINISHED",
    "Row",
    "attempt_from_row",
    "attempt_params",
    "delivery_from_row",
    "delivery_params",
    "dumps",
    "dumps_optional",
    "event_from_row",
    "event_params",
    "hold_from_row",
    "loads_optional",
    "sql_list",
]

Row = Mapping[str, Any]  # psycopg's dict_row


def key_order(alias: str) -> str:
    """The place of delivery `alias` in its (provider, correlate) key's queue: by its event's
    arrival, then by creation. Not by creation alone: workers in several processes route at
    once, and one may store a later webhook's deliveries before another stores an earlier's."""
    return f"({alias}.event_received_at, {alias}.event_id, {alias}.seq)"


# Read from `events AS ev`.
EVENT_COLUMNS = (
    "ev.id, ev.source, ev.received_at, ev.headers, ev.query, ev.payload, ev.content_type, "
    "ev.dedupe_key, ev.status, ev.routed_at, ev.matched_rules, ev.trace, "
    "ev.raw IS NOT NULL AS has_raw"
)

# Read from `deliveries AS d`. A waiting delivery's blocked_by is the one just before it in
# its key's queue, looked up when read (it changes as the key's deliveries finish).
DELIVERY_COLUMNS = f"""
d.seq, d.id, d.event_id, d.rule, d.provider, d.action, d.correlate, d.status, d.attempts,
d.tries, d.created_at, d.queued_at, d.next_attempt_at, d.last_error, d.ticket_ref,
CASE WHEN d.status = '{DeliveryStatus.WAITING.value}' THEN (
    SELECT e.id FROM deliveries AS e
    WHERE e.provider = d.provider AND e.correlate = d.correlate
      AND {key_order("e")} < {key_order("d")} AND e.status IN {UNFINISHED}
    ORDER BY e.event_received_at DESC, e.event_id DESC, e.seq DESC LIMIT 1)
ELSE d.blocked_by END AS blocked_by
"""
