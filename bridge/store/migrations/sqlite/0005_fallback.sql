-- 0005: a provider's fallback. A delivery sent to another provider instead names the one it
-- replaces (moved_from, which is cancelled); the correlate map remembers where the key's
-- ticket went (moved_to), so that later actions for it follow.
ALTER TABLE deliveries ADD COLUMN moved_from TEXT;
ALTER TABLE tickets ADD COLUMN moved_to TEXT;
