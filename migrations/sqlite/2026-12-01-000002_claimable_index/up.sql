-- The orders a claim may take (pending, not parked), by due time. "Next due" is one probe of
-- this index and "due by T" one range scan, whatever the size of the future book; the older
-- (status, hour_start_utc) index also holds parked rows, so counting through it needed a table
-- lookup per row. Queries must spell the predicate with literals to match it.
CREATE INDEX orders_claimable_due ON orders (hour_start_utc)
    WHERE status = 'PENDING' AND parked_reason IS NULL;
