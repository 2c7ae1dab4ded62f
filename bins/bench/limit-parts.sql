-- Issue 14 item 5: the parts of a Postgres drain measured one at a time (see docs/BENCHMARKS.md,
-- "Catch-up at 1M on Postgres"). Run on a freshly migrated, empty database:
--   order-scheduler migrate --database-url postgres://.../lim && psql -d lim -f bins/bench/limit-parts.sql
-- Every step runs in a transaction that is rolled back, so the database is left as loaded.
\timing on
\echo load
INSERT INTO orders (id, created_at, location_type, location, hour_start_utc, side, qty_milli_mwh, limit_price_cents, status)
SELECT gen_random_uuid()::text, LOCALTIMESTAMP, 'HUB', 'PJM-W', LOCALTIMESTAMP - interval '1 hour' * random(), 'BUY', 1000, 4000, 'PENDING' FROM generate_series(1, 1000000);
VACUUM ANALYZE orders;
CHECKPOINT;
\echo A1 row lock alone (FOR UPDATE SKIP LOCKED over the claimable index, all 1M)
BEGIN;
SELECT count(*) FROM (SELECT id FROM orders WHERE status = 'PENDING' AND parked_reason IS NULL ORDER BY hour_start_utc FOR UPDATE SKIP LOCKED) s;
ROLLBACK;
VACUUM orders; CHECKPOINT;
\echo A2 UPDATE alone
BEGIN;
UPDATE orders SET status = 'REJECTED', approved_at = LOCALTIMESTAMP, reject_reason = 'Price outside acceptable range' WHERE status = 'PENDING' AND parked_reason IS NULL;
ROLLBACK;
VACUUM orders; CHECKPOINT;
\echo A3 row lock then UPDATE, one transaction
BEGIN;
SELECT count(*) FROM (SELECT id FROM orders WHERE status = 'PENDING' AND parked_reason IS NULL ORDER BY hour_start_utc FOR UPDATE SKIP LOCKED) s;
UPDATE orders SET status = 'REJECTED', approved_at = LOCALTIMESTAMP, reject_reason = 'Price outside acceptable range' WHERE status = 'PENDING' AND parked_reason IS NULL;
ROLLBACK;
VACUUM orders; CHECKPOINT;
\echo B1 history INSERT, FK and index
BEGIN;
INSERT INTO order_events (order_id, from_status, to_status, at, actor, details) SELECT id, 'PENDING', 'REJECTED', LOCALTIMESTAMP, 'scheduler:x', '{"policy":"random(approval_probability=0.7)","price_source":"SIMULATED_RT","seed":null,"lateness_ms":12,"reason":"Price outside acceptable range"}' FROM orders;
ROLLBACK;
VACUUM order_events; CHECKPOINT;
\echo B2 history INSERT, index, no FK
BEGIN;
ALTER TABLE order_events DROP CONSTRAINT order_events_order_id_fkey;
INSERT INTO order_events (order_id, from_status, to_status, at, actor, details) SELECT id, 'PENDING', 'REJECTED', LOCALTIMESTAMP, 'scheduler:x', '{"policy":"random(approval_probability=0.7)","price_source":"SIMULATED_RT","seed":null,"lateness_ms":12,"reason":"Price outside acceptable range"}' FROM orders;
ROLLBACK;
VACUUM order_events; CHECKPOINT;
\echo B3 history INSERT, FK, no index
BEGIN;
DROP INDEX order_events_order;
INSERT INTO order_events (order_id, from_status, to_status, at, actor, details) SELECT id, 'PENDING', 'REJECTED', LOCALTIMESTAMP, 'scheduler:x', '{"policy":"random(approval_probability=0.7)","price_source":"SIMULATED_RT","seed":null,"lateness_ms":12,"reason":"Price outside acceptable range"}' FROM orders;
ROLLBACK;
VACUUM order_events; CHECKPOINT;
\echo B4 history INSERT, neither
BEGIN;
ALTER TABLE order_events DROP CONSTRAINT order_events_order_id_fkey;
DROP INDEX order_events_order;
INSERT INTO order_events (order_id, from_status, to_status, at, actor, details) SELECT id, 'PENDING', 'REJECTED', LOCALTIMESTAMP, 'scheduler:x', '{"policy":"random(approval_probability=0.7)","price_source":"SIMULATED_RT","seed":null,"lateness_ms":12,"reason":"Price outside acceptable range"}' FROM orders;
ROLLBACK;
