-- The orders a claim may take (pending, not parked), by due time. "Next due" is one probe of
-- this index and "due by T" one range scan, whatever the size of the future book; the older
-- (status, hour_start_utc) index also holds parked rows, so counting through it needed a heap
-- lookup per row. Moderated rows leave it (their new version does not match the predicate).
CREATE INDEX orders_claimable_due ON orders (hour_start_utc)
    WHERE status = 'PENDING' AND parked_reason IS NULL;
-- The old index is dropped: planners preferred it to the partial one (it matches the status
-- equality as a key column), and every write paid for maintaining both.
DROP INDEX orders_status_due;
-- Parked orders, for the operator's listing and the status's count.
CREATE INDEX orders_parked ON orders (id) WHERE status = 'PENDING' AND parked_reason IS NOT NULL;

-- Every instance's scheduler listens on this channel, so an order inserted by any process
-- (another instance, the CLI, a script) re-arms their timers. One notification per statement,
-- carrying the earliest due time it inserted as Unix milliseconds: a bulk insert of a million
-- rows sends one message, not a million.
CREATE FUNCTION order_scheduler_notify_due() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    earliest TIMESTAMP;
BEGIN
    SELECT MIN(hour_start_utc) INTO earliest FROM inserted
        WHERE status = 'PENDING' AND parked_reason IS NULL;
    IF earliest IS NOT NULL THEN
        PERFORM pg_notify('order_scheduler_due',
            (EXTRACT(EPOCH FROM earliest) * 1000)::BIGINT::TEXT);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER orders_notify_due
    AFTER INSERT ON orders
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION order_scheduler_notify_due();
