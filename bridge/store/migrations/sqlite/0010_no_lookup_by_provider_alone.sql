-- 0010: no index a lookup by provider alone could take to read a provider's whole queue or
-- history. PostgreSQL plans by statistics, and on statistics taken before a burst (or none)
-- it read such indexes by provider alone: a claim intersected deliveries_key_queue by
-- provider with deliveries_claim_all (101,091 entries, then a sort: 12.7 ms a claim of 32),
-- a settle walked the provider's whole queue (tests/store/test_plans.py explains the
-- statements on such statistics: "analyzed at a burst").

-- A key's queue, led by the correlate: every lookup names the whole key, and one by
-- provider alone cannot use it.
DROP INDEX deliveries_key_queue;
CREATE INDEX deliveries_key_queue
    ON deliveries (correlate, provider, event_received_at, event_id, seq)
    WHERE status IN ('pending', 'waiting', 'in_flight');

-- A held provider's queue in its keys' order, for its fallback (movable_of_provider), which
-- read it through deliveries_key_queue by provider; no other statement's terms imply this
-- WHERE, so none can take it.
CREATE INDEX deliveries_movable
    ON deliveries (provider, event_received_at, event_id, seq)
    WHERE status IN ('pending', 'waiting') AND moved_from IS NULL AND action IS NOT NULL;
