DROP INDEX orders_claimable_due;
