-- Closed orders by id: the closed half of every listing (newest first) and the totals over
-- closed orders read this index instead of walking past every pending order of the book,
-- which at a million future orders took seconds per call. Queries spell the predicate with
-- literals (`status <> 'PENDING'`) so that the planner matches it.
CREATE INDEX orders_closed ON orders (id) WHERE status <> 'PENDING';
