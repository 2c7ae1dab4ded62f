DROP INDEX orders_parked;
CREATE INDEX orders_status_due ON orders (status, hour_start_utc);
DROP INDEX orders_claimable_due;
