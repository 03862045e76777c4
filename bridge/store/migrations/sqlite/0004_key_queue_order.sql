-- 0004: a key's queue is in the order its webhooks arrived (the event's received_at and id,
-- then seq), as on PostgreSQL: deliveries carry their event's received_at.
ALTER TABLE deliveries ADD COLUMN event_received_at REAL NOT NULL DEFAULT 0;

UPDATE deliveries
SET event_received_at = (SELECT received_at FROM events WHERE events.id = deliveries.event_id);

DROP INDEX deliveries_by_key;

CREATE INDEX deliveries_by_key
    ON deliveries (provider, correlate, event_received_at, event_id, seq);
