"""What the due-ordered partial index costs a realistic SQLite drain (docs/BENCHMARKS.md, round nine).

Not a benchmark of the product (that is `order-scheduler-bench`): a probe of the schema alone.
It loads 1,000,000 pending orders whose ids run in creation order and whose due times are
independent of it (a day-ahead book), then moderates all of them in 1,000-order transactions,
batches taken in id order (as the backlog sweep does) or in due order, and prints rows/s, for
three variants of the index the scheduler claims from:

- partial: `orders_claimable_due ON orders (hour_start_utc) WHERE status = 'PENDING' AND
  parked_reason IS NULL`, as migrated today; moderating an order deletes its entry;
- none: no due index at all;
- plain: `orders_due ON orders (hour_start_utc)`, not partial; moderating an order leaves it.

Run: `python3 docs/experiments/claimable_index.py [partial|none|plain ...]` from the
repository's root (it reads the SQLite migrations; about 90 s per variant and order; it writes
/tmp/claimable_index.db).
"""

import os
import random
import sqlite3
import sys
import time

N = 1_000_000
BATCH = 1000
DB = "/tmp/claimable_index.db"
INDEXES = {
    "partial": "CREATE INDEX orders_claimable_due ON orders (hour_start_utc) "
    "WHERE status = 'PENDING' AND parked_reason IS NULL",
    "none": None,
    "plain": "CREATE INDEX orders_due ON orders (hour_start_utc)",
}


def build(variant):
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(DB + suffix)
        except FileNotFoundError:
            pass
    c = sqlite3.connect(DB, isolation_level=None)
    c.execute("PRAGMA journal_mode = WAL")
    c.execute("PRAGMA synchronous = NORMAL")
    # The first migration, then the other indexes of the later ones except the claimable one.
    with open("migrations/sqlite/2026-11-30-000001_create_orders/up.sql") as f:
        c.executescript(f.read())
    c.executescript(
        "DROP INDEX orders_status_due;"
        "CREATE INDEX orders_parked ON orders (id) "
        "WHERE status = 'PENDING' AND parked_reason IS NOT NULL;"
        "CREATE INDEX orders_closed ON orders (id) WHERE status <> 'PENDING';"
    )
    if INDEXES[variant]:
        c.execute(INDEXES[variant])
    rnd = random.Random(7)
    rows = (
        (
            f"0190{i:028x}",  # ids in creation order, as UUIDv7 are
            "2026-12-01 00:00:00",
            "HUB",
            "HB_NORTH",
            f"2026-12-02 {rnd.randrange(24):02d}:{rnd.randrange(60):02d}:00."
            f"{rnd.randrange(1_000_000):06d}",  # due time independent of the id
            "BUY",
            2500,
            4000,
            "PENDING",
        )
        for i in range(N)
    )
    c.execute("BEGIN")
    c.executemany(
        "INSERT INTO orders (id, created_at, location_type, location, hour_start_utc, side, "
        "qty_milli_mwh, limit_price_cents, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    c.execute("COMMIT")
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return c


def drain(c, order):
    ids = [r[0] for r in c.execute(f"SELECT id FROM orders ORDER BY {order}")]
    start = time.perf_counter()
    for k in range(0, N, BATCH):
        batch = ids[k : k + BATCH]
        c.execute("BEGIN IMMEDIATE")
        c.execute(
            "UPDATE orders SET status = 'APPROVED', approved_at = '2026-12-02 12:00:00' "
            f"WHERE id IN ({','.join('?' * len(batch))}) AND status = 'PENDING'",
            batch,
        )
        c.execute("COMMIT")
    return N / (time.perf_counter() - start)


if __name__ == "__main__":
    print(f"sqlite {sqlite3.sqlite_version}")
    for variant in sys.argv[1:] or ["partial", "none", "plain"]:
        for order in ("id", "hour_start_utc, id"):
            c = build(variant)
            print(f"{variant:8} batches by {order:18}: {drain(c, order):>9,.0f} rows/s", flush=True)
            c.close()
