-- 0008: the body stored once. When the raw body is the payload's own text (a JSON body, as
-- nearly every sender sends), `raw` stays NULL and `raw_is_payload` says the payload is it:
-- the 2 KB a webhook carries went into the row twice, and the commit wrote them twice.
ALTER TABLE events ADD COLUMN raw_is_payload BOOLEAN NOT NULL DEFAULT false;
