"""The columns the SQLite store reads; records and rows convert in bridge.store.records
(re-exported here for the SQLite modules)."""

from __future__ import annotations

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

EVENT_COLUMNS = (
    "id, source, received_at, headers, query, payload, content_type, dedupe_key, status, "
    "routed_at, matched_rules, trace, raw IS NOT NULL AS has_raw"
)


# Read from `deliveries AS d`. A waiting delivery's blocked_by is the one just before it on
# its key, looked up when read (it changes as the key's deliveries finish).
DELIVERY_COLUMNS = f"""
d.seq, d.id, d.event_id, d.rule, d.provider, d.action, d.correlate, d.status, d.attempts,
d.tries, d.created_at, d.queued_at, d.next_attempt_at, d.last_error, d.ticket_ref,
CASE WHEN d.status = '{DeliveryStatus.WAITING.value}' THEN (
    SELECT e.id FROM deliveries AS e
    WHERE e.provider = d.provider AND e.correlate = d.correlate AND e.seq < d.seq
      AND e.status IN {UNFINISHED}
    ORDER BY e.seq DESC LIMIT 1)
ELSE d.blocked_by END AS blocked_by
"""
