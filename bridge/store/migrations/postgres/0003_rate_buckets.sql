-- 0003: one token bucket per rate-limited provider, shared by every worker process.
-- Tokens are taken in the transaction that claims the deliveries they pay for, with the
-- bucket's row locked (SELECT ... FOR UPDATE), so that two processes never spend one token.
CREATE TABLE rate_buckets (
    provider text PRIMARY KEY,
    tokens   double precision NOT NULL,    -- as of `at`
    at       double precision NOT NULL
);
