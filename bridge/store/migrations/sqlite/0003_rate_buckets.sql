-- 0003: one token bucket per rate-limited provider, shared by every worker process.
-- Tokens are taken in the transaction that claims the deliveries they pay for.
CREATE TABLE rate_buckets (
    provider TEXT PRIMARY KEY,
    tokens   REAL NOT NULL,    -- as of `at`
    at       REAL NOT NULL
) WITHOUT ROWID;
