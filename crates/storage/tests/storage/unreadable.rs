//! Issue 16: a stored row that does not decode (`side = 'HOLD'`, written by another tool) is
//! set aside by every listing, named with its reason, instead of failing the listing; reading
//! it by id still fails with the reason.

use crate::{approve_all, order_due};
use chrono::{Duration, Utc};
use diesel::connection::SimpleConnection;
use orders::OrderStatus;
use storage::testing::TestDb;
use storage::{ClaimScope, OpenClosed, OrderFilter, StorageError, Store, Unreadable};

/// Writes `side = 'HOLD'` into a stored order, as another tool might.
fn write_hold(store: &Store, id: &str) {
    store
        .conn()
        .expect("conn")
        .batch_execute(&format!(
            "UPDATE orders SET side = 'HOLD' WHERE id = '{id}'"
        ))
        .expect("corrupt a row");
}

fn insert(store: &Store, due: chrono::DateTime<Utc>) -> String {
    store
        .insert_order(&order_due(due, "BUY", "L"), None, "api")
        .expect("insert")
        .order
        .id
}

/// A book with two unreadable rows: a pending one another tool wrote `HOLD` into, and one the
/// scheduler parked for it and an operator then discarded (REJECTED, still `HOLD`). Returns
/// (readable pending ids, readable closed ids, the pending bad id, the discarded bad id).
fn book_with_unreadable_rows(store: &Store) -> (Vec<String>, Vec<String>, String, String) {
    let past = Utc::now() - Duration::seconds(1);
    let later = Utc::now() + Duration::hours(1);
    let discarded = insert(store, past);
    write_hold(store, &discarded);
    let closed = vec![insert(store, past), insert(store, past)];
    let claim = store
        .claim_and_apply(ClaimScope::Due, 10, "t", approve_all(4000))
        .expect("claim");
    assert_eq!((claim.moderated.len(), claim.parked.len()), (2, 1));
    store
        .discard_parked(&discarded, "written by another tool", "t")
        .expect("discard");
    let mut open = vec![insert(store, later)];
    let held = insert(store, later);
    write_hold(store, &held);
    open.push(insert(store, later));
    (open, closed, held, discarded)
}

fn ids(orders: &[orders::Order]) -> Vec<String> {
    orders.iter().map(|o| o.id.clone()).collect()
}

fn newest_first(mut ids: Vec<String>) -> Vec<String> {
    ids.sort_by(|a, b| b.cmp(a));
    ids
}

fn assert_unreadable(got: &Unreadable, id: &str) {
    assert_eq!(got.id, id);
    assert!(
        got.reason.contains("'HOLD'") && got.reason.contains("side"),
        "the reason names the column and the value: {}",
        got.reason
    );
}

fn listings_set_aside_rows_that_do_not_decode(db: &TestDb) {
    let store = db.store();
    let (open, closed, held, discarded) = book_with_unreadable_rows(&store);

    let OpenClosed {
        open: listed_open,
        closed: listed_closed,
        unreadable,
    } = store.fetch_orders(100, 100, None).expect("fetch_orders");
    assert_eq!(ids(&listed_open), newest_first(open.clone()));
    assert_eq!(ids(&listed_closed), newest_first(closed.clone()));
    assert_eq!(unreadable.len(), 2, "{unreadable:?}");
    assert_unreadable(&unreadable[0], &held);
    assert_unreadable(&unreadable[1], &discarded);

    // The filtered JSON listing: the REJECTED filter matches the discarded row.
    let rejected = store
        .list_orders(
            &OrderFilter {
                status: Some(OrderStatus::Rejected),
                ..Default::default()
            },
            None,
            100,
        )
        .expect("list rejected");
    assert!(rejected.orders.is_empty());
    assert_eq!(rejected.unreadable.len(), 1);
    assert_unreadable(&rejected.unreadable[0], &discarded);

    // Positions: the readable rows, the unreadable ones named, totals from SQL over all rows.
    let (listed, totals) = store.positions(100, None).expect("positions");
    assert_eq!((listed.open.len(), listed.closed.len()), (2, 2));
    assert_eq!(listed.unreadable, unreadable);
    assert_eq!(
        (
            totals.open_count,
            totals.closed_count,
            totals.rejected_count
        ),
        (3, 3, 1),
        "totals count the unreadable rows too"
    );

    // One order by id has nothing else to show: it fails, naming the row and the reason.
    match store.get_order(&held) {
        Err(StorageError::Corrupt { id, reason }) => {
            assert_eq!(id, held);
            assert!(reason.contains("'HOLD'"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Paging walks past an unreadable row: every row appears on exactly one page, readable or
/// not, and an unreadable row takes a place of the page's limit.
fn pages_move_past_unreadable_rows(db: &TestDb) {
    let store = db.store();
    let (open, closed, held, discarded) = book_with_unreadable_rows(&store);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_orders(&OrderFilter::default(), cursor.as_deref(), 2)
            .expect("page");
        assert!(page.orders.len() + page.unreadable.len() <= 2);
        seen.extend(ids(&page.orders));
        seen.extend(page.unreadable.iter().map(|u| u.id.clone()));
        pages += 1;
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3, "6 rows, 2 a page");
    let all: Vec<String> = open
        .into_iter()
        .chain(closed)
        .chain([held, discarded])
        .collect();
    assert_eq!(
        newest_first(seen),
        newest_first(all),
        "each row exactly once"
    );
}

storage::backend_tests!(
    listings_set_aside_rows_that_do_not_decode,
    pages_move_past_unreadable_rows
);
