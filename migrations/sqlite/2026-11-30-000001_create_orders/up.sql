-- Orders and their append-only history. Times are TIMESTAMP holding UTC (diesel writes them as
-- one fixed text format, so they order correctly); money and quantities are scaled integers
-- (cents, thousandths of a MWh) so that nothing drifts. Foreign keys are enforced by the pool's
-- `PRAGMA foreign_keys = ON`.
CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    created_at TIMESTAMP NOT NULL,
    market TEXT NOT NULL DEFAULT 'DA',
    location_type TEXT NOT NULL,
    location TEXT NOT NULL,
    hour_start_utc TIMESTAMP NOT NULL,
    side TEXT NOT NULL,
    qty_milli_mwh BIGINT NOT NULL,
    limit_price_cents BIGINT NOT NULL,
    status TEXT NOT NULL,
    approved_at TIMESTAMP,
    approval_rt_interval_start_utc TIMESTAMP,
    approval_rt_lmp_cents BIGINT,
    approval_rt_source TEXT,
    reject_reason TEXT,
    -- Set when the scheduler could not decode or decide the row: it is skipped from then on.
    parked_reason TEXT,
    idempotency_key TEXT,
    request_hash TEXT
);

-- "What is due by T" and "what is next" walk this index in due order.
CREATE INDEX orders_status_due ON orders (status, hour_start_utc);
-- Listings are newest first by id (UUIDv7, so ids sort by creation) through the primary key;
-- no index on created_at, which every update would have to maintain on Postgres.
-- Only keyed requests are indexed for idempotency, for the same reason.
CREATE UNIQUE INDEX orders_idempotency_key ON orders (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE order_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    from_status TEXT,
    to_status TEXT NOT NULL,
    at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    details TEXT NOT NULL
);

CREATE INDEX order_events_order ON order_events (order_id, id);
