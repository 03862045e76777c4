-- 0001: events, deliveries, their attempts, the correlate map (tickets) and dedupe keys.
-- The same tables as migrations/sqlite/0001_init.sql, in PostgreSQL's types, and one column
-- more (deliveries.event_received_at: per-key order when several processes route at once). Times are epoch
-- seconds (double precision). JSON columns hold compact JSON text, not jsonb: text keeps the
-- payload and the trace exactly as written (jsonb reorders keys and refuses "\u0000", which a
-- sender may well put in a body), and costs no parsing on the ingest path.

CREATE TABLE events (
    id                text PRIMARY KEY,  -- time-ordered (bridge.ids), so ORDER BY id is by age
    source            text NOT NULL,
    received_at       double precision NOT NULL,
    headers           text NOT NULL,     -- JSON object
    query             text NOT NULL,     -- JSON object
    payload           text NOT NULL,     -- JSON text
    raw               bytea,             -- NULL when the raw body is not kept
    content_type      text,
    dedupe_key        text,
    status            text NOT NULL
                      CHECK (status IN ('accepted', 'done', 'unmatched', 'failed')),
    routed_at         double precision,  -- NULL until the routing step has stored its result
    route_lease_until double precision,  -- a router holds the event until then
    matched_rules     text NOT NULL DEFAULT '[]',
    trace             text NOT NULL DEFAULT '[]'
);

CREATE INDEX events_by_source ON events (source, id);
CREATE INDEX events_by_status ON events (status, id);
CREATE INDEX events_by_received_at ON events (received_at);
CREATE INDEX events_unrouted ON events (received_at, id) WHERE routed_at IS NULL;

CREATE TABLE deliveries (
    seq             bigserial PRIMARY KEY,  -- creation order: per-key order follows it
    id              text NOT NULL UNIQUE,
    event_id        text NOT NULL REFERENCES events (id),
    -- its event's received_at: a key's deliveries go in the order their events arrived
    -- (then by seq), since routers in several processes may create them in another order
    event_received_at double precision NOT NULL,
    rule            text NOT NULL,
    provider        text NOT NULL,
    action          text,                   -- JSON; NULL when rendering failed
    correlate       text,
    status          text NOT NULL
                    CHECK (status IN ('pending', 'waiting', 'in_flight', 'done', 'skipped',
                                      'dead', 'cancelled')),
    attempts        integer NOT NULL DEFAULT 0,
    tries           integer NOT NULL DEFAULT 0,
    created_at      double precision NOT NULL,
    queued_at       double precision NOT NULL,
    next_attempt_at double precision,
    lease_until     double precision,
    lease_token     text,
    last_error      text,
    ticket_ref      text                    -- JSON object
);

CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_by_key
    ON deliveries (provider, correlate, event_received_at, event_id, seq);
CREATE INDEX deliveries_by_event ON deliveries (event_id, seq);
CREATE INDEX deliveries_by_provider ON deliveries (provider, seq);

CREATE TABLE attempts (
    id               bigserial PRIMARY KEY,
    delivery_id      text NOT NULL REFERENCES deliveries (id),
    number           integer NOT NULL,
    started_at       double precision NOT NULL,
    duration         double precision NOT NULL,
    outcome          text NOT NULL,
    status_code      integer,
    error            text,
    response_excerpt text
);

CREATE INDEX attempts_by_delivery ON attempts (delivery_id, number);

-- The correlate map: which ticket a (provider, correlate) key leads to, and whether it is open.
CREATE TABLE tickets (
    provider   text NOT NULL,
    correlate  text NOT NULL,
    ticket_ref text,                  -- JSON object
    open       boolean,               -- NULL when unknown
    updated_at double precision NOT NULL,
    PRIMARY KEY (provider, correlate)
);

CREATE TABLE dedupe (
    source     text NOT NULL,
    key        text NOT NULL,
    event_id   text NOT NULL,         -- the first event seen with this key (no FK: purged apart)
    created_at double precision NOT NULL,
    PRIMARY KEY (source, key)
);

CREATE INDEX dedupe_by_created_at ON dedupe (created_at);
