-- 0011: events_by_received_at holds the routed events only. Whole, it served the routing
-- claim's "oldest unrouted events first" as well as events_unrouted does, and on statistics
-- taken at a burst (most events unrouted) PostgreSQL walked it from the oldest event past
-- every routed one to find 64 unrouted (bench backlog: O(events routed so far) per routing
-- batch). What reads it by time (purge, dropping bodies, the admin's chart) reads routed
-- events, or the unrouted ones through events_unrouted; and an ingest no longer writes it.
DROP INDEX events_by_received_at;
CREATE INDEX events_by_received_at ON events (received_at) WHERE routed_at IS NOT NULL;

-- deliveries_claim_all (every provider's claimable deliveries, by seq) read only for a claim
-- of every provider at once, which the worker never makes; PostgreSQL on statistics from
-- before a burst took it for the claims of one provider and for the working providers' loose
-- scan (a walk of every claimable delivery per claim). deliveries_claim serves them all.
DROP INDEX deliveries_claim_all;
