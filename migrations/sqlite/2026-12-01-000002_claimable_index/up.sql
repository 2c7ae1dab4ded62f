-- The orders a claim may take (pending, not parked), by due time. "Next due" is one probe of
-- this index and "due by T" one range scan, whatever the size of the future book; the older
-- (status, hour_start_utc) index also holds parked rows, so counting through it needed a table
-- lookup per row. Queries must spell the predicate with literals to match it.
CREATE INDEX orders_claimable_due ON orders (hour_start_utc)
    WHERE status = 'PENDING' AND parked_reason IS NULL;
-- The old index is dropped: planners preferred it to the partial one (it matches the status
-- equality as a key column), and every write paid for maintaining both.
DROP INDEX orders_status_due;
-- Parked orders, for the operator's listing and the status's count.
CREATE INDEX orders_parked ON orders (id) WHERE status = 'PENDING' AND parked_reason IS NOT NULL;
