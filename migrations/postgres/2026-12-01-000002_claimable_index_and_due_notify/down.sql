DROP TRIGGER orders_notify_due ON orders;
DROP FUNCTION order_scheduler_notify_due();
DROP INDEX orders_claimable_due;
