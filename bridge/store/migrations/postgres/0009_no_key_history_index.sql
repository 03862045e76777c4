-- 0009: deliveries_by_key held every delivery ever made, finished ones included, led by
-- provider; since 0007 no statement reads it (a key's unfinished deliveries are in
-- deliveries_key_queue), yet each delivery's every status change wrote an entry into it. On
-- PostgreSQL without fresh statistics it was also there to be misused: a lookup by provider
-- alone could take it and read a provider's whole history.
DROP INDEX deliveries_by_key;
