DROP INDEX orders_closed;
