-- 0001: events, deliveries, their attempts, the correlate map (tickets) and dedupe keys.
-- Times are epoch seconds (REAL). JSON columns hold compact JSON text.

CREATE TABLE events (
    id                TEXT PRIMARY KEY,  -- time-ordered (bridge.ids), so ORDER BY id is by age
    source            TEXT NOT NULL,
    received_at       REAL NOT NULL,
    headers           TEXT NOT NULL,     -- JSON object
    query             TEXT NOT NULL,     -- JSON object
    payload           TEXT NOT NULL,     -- JSON text
    raw               BLOB,              -- NULL when the raw body is not kept
    content_type      TEXT,
    dedupe_key        TEXT,
    status            TEXT NOT NULL
                      CHECK (status IN ('accepted', 'done', 'unmatched', 'failed')),
    routed_at         REAL,              -- NULL until the routing step has stored its result
    route_lease_until REAL,              -- a router holds the event until then
    matched_rules     TEXT NOT NULL DEFAULT '[]',
    trace             TEXT NOT NULL DEFAULT '[]'
);

CREATE INDEX events_by_source ON events (source, id);
CREATE INDEX events_by_status ON events (status, id);
CREATE INDEX events_by_received_at ON events (received_at);
CREATE INDEX events_unrouted ON events (received_at, id) WHERE routed_at IS NULL;

CREATE TABLE deliveries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,  -- creation order: per-key order follows it
    id              TEXT NOT NULL UNIQUE,
    event_id        TEXT NOT NULL REFERENCES events (id),
    rule            TEXT NOT NULL,
    provider        TEXT NOT NULL,
    action          TEXT,                               -- JSON; NULL when rendering failed
    correlate       TEXT,
    status          TEXT NOT NULL
                    CHECK (status IN ('pending', 'waiting', 'in_flight', 'done', 'skipped',
                                      'dead', 'cancelled')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    tries           INTEGER NOT NULL DEFAULT 0,
    created_at      REAL NOT NULL,
    queued_at       REAL NOT NULL,
    next_attempt_at REAL,
    lease_until     REAL,
    lease_token     TEXT,
    last_error      TEXT,
    ticket_ref      TEXT                                -- JSON object
);

CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_by_key ON deliveries (provider, correlate, seq);
CREATE INDEX deliveries_by_event ON deliveries (event_id, seq);
CREATE INDEX deliveries_by_provider ON deliveries (provider, seq);

CREATE TABLE attempts (
    id               INTEGER PRIMARY KEY,
    delivery_id      TEXT NOT NULL REFERENCES deliveries (id),
    number           INTEGER NOT NULL,
    started_at       REAL NOT NULL,
    duration         REAL NOT NULL,
    outcome          TEXT NOT NULL,
    status_code      INTEGER,
    error            TEXT,
    response_excerpt TEXT
);

CREATE INDEX attempts_by_delivery ON attempts (delivery_id, number);

-- The correlate map: which ticket a (provider, correlate) key leads to, and whether it is open.
CREATE TABLE tickets (
    provider   TEXT NOT NULL,
    correlate  TEXT NOT NULL,
    ticket_ref TEXT,                  -- JSON object
    open       INTEGER,               -- 1, 0, or NULL when unknown
    updated_at REAL NOT NULL,
    PRIMARY KEY (provider, correlate)
) WITHOUT ROWID;

CREATE TABLE dedupe (
    source     TEXT NOT NULL,
    key        TEXT NOT NULL,
    event_id   TEXT NOT NULL,         -- the first event seen with this key (no FK: purged apart)
    created_at REAL NOT NULL,
    PRIMARY KEY (source, key)
);

CREATE INDEX dedupe_by_created_at ON dedupe (created_at);
