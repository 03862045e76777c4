-- 0004: the "is anything ahead of me on my key" lookups of every claim read this index.
-- Partial (unfinished deliveries only) and led by the whole key, so the planner takes it even
-- before statistics exist: without it, a fresh database under a burst chose the provider
-- index and scanned the provider's whole queue per candidate (quadratic in the backlog).
CREATE INDEX deliveries_key_queue
    ON deliveries (provider, correlate, event_received_at, event_id, seq)
    WHERE status IN ('pending', 'waiting', 'in_flight');
