//! Moderation against recorded prices, on real databases: each approval records the file
//! source and the hour it was priced at, a missing price rejects with its location and
//! interval, and the status names the policy and source.

use chrono::{DateTime, Duration, Utc};
use moderator::{ClearingPolicy, ColumnMap, FilePrices, Moderator, PriceSource};
use orders::{format_ms, NewOrder, NewOrderFields, OrderStatus, Price};
use scheduler::Scheduler;
use std::sync::Arc;
use storage::testing::TestDb;

/// 2024-03-10 07:00 UTC: 3 AM in PJM's local time, just after the spring change.
fn hour() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-03-10T07:00:00Z")
        .expect("valid time")
        .with_timezone(&Utc)
}

fn new_order(side: &str, limit: &str, location: &str, due: DateTime<Utc>) -> NewOrder {
    NewOrder::from_fields(&NewOrderFields {
        side: Some(side),
        qty_mwh: Some("2"),
        limit_price: Some(limit),
        hour_start_utc: Some(&format_ms(&due)),
        location: Some(location),
        location_type: Some("HUB"),
    })
    .expect("valid order")
}

/// Node `A` has 41.23 in the test hour (Data Miner's time format), -5.5 the hour after (ISO);
/// node `B` has nothing.
fn prices() -> Arc<dyn PriceSource> {
    let csv = "datetime_beginning_utc,pnode_name,total_lmp_rt\n\
               3/10/2024 7:00:00 AM,A,41.23\n\
               2024-03-10T08:00:00Z,A,-5.5\n";
    Arc::new(
        FilePrices::from_reader(csv.as_bytes(), &ColumnMap::default(), "FILE:lmps.csv")
            .expect("fixture loads"),
    )
}

fn clearing_over_file() -> Moderator {
    Moderator::from_shared(Arc::new(ClearingPolicy::default()), prices())
}

fn approvals_record_the_file_and_the_hour(db: &TestDb) {
    let store = db.store();
    let h = hour();
    // Due a quarter past: priced at the hour containing it.
    let due = h + Duration::minutes(15);
    let buy = store
        .insert_order(&new_order("BUY", "45", "A", due), None, "api")
        .expect("insert")
        .order;
    let sell = store
        .insert_order(&new_order("SELL", "45", "A", due), None, "api")
        .expect("insert")
        .order;
    let missing = store
        .insert_order(&new_order("BUY", "45", "B", due), None, "api")
        .expect("insert")
        .order;
    let report =
        scheduler::moderate_due_time_with(&store, &clearing_over_file(), Some(1), due, "test", 10)
            .expect("moderate");
    assert_eq!((report.approved, report.rejected), (1, 2), "{report:?}");

    let buy = store.get_order(&buy.id).expect("read");
    assert_eq!(buy.status, OrderStatus::Approved);
    assert_eq!(buy.approval_rt_lmp, Some(Price::from_scaled(4123)));
    assert_eq!(buy.approval_rt_source.as_deref(), Some("FILE:lmps.csv"));
    assert_eq!(buy.approval_rt_interval_start_utc, Some(h));
    // BUY 2 MWh at limit 45, settled at 41.23: (41.23 - 45) * 2 = -7.54 $ (10⁻⁵ $ units).
    assert_eq!(buy.pnl().scaled(), -754_000);

    let sell = store.get_order(&sell.id).expect("read");
    assert_eq!(sell.status, OrderStatus::Rejected);
    assert_eq!(
        sell.reject_reason.as_deref(),
        Some("Price outside acceptable range")
    );
    assert_eq!(sell.approval_rt_source, None);

    let missing = store.get_order(&missing.id).expect("read");
    assert_eq!(
        missing.reject_reason.as_deref(),
        Some("No real-time price for B at 2024-03-10T07:00:00.000Z")
    );
    assert_eq!(missing.approval_rt_interval_start_utc, None);

    // The history names policy and source.
    let events = store.order_events(&buy.id).expect("events");
    let details = &events.last().expect("moderation event").details;
    assert_eq!(details["policy"], "clearing(rejection_rate=0)");
    assert_eq!(details["price_source"], "FILE:lmps.csv");
    assert_eq!(
        details["quote"]["interval_start_utc"],
        "2024-03-10T07:00:00.000Z"
    );
}

fn the_original_policy_keeps_the_original_record(db: &TestDb) {
    let store = db.store();
    let due = hour();
    let order = store
        .insert_order(&new_order("BUY", "45", "A", due), None, "api")
        .expect("insert")
        .order;
    let always = moderator::Policy::new(1.0, 40.0, 0.0).expect("valid");
    let before = orders::rt_interval_start(Utc::now());
    scheduler::moderate_due_time(&store, &always, Some(1), due, "test", 10).expect("moderate");
    let after = orders::rt_interval_start(Utc::now());
    let order = store.get_order(&order.id).expect("read");
    assert_eq!(order.approval_rt_lmp, Some(Price::from_scaled(4000)));
    assert_eq!(order.approval_rt_source.as_deref(), Some(orders::RT_SOURCE));
    // The 5-minute interval of the moderation time, as the original recorded it.
    let interval = order.approval_rt_interval_start_utc.expect("interval");
    assert!(interval == before || interval == after, "{interval}");
}

fn status_names_policy_and_source(db: &TestDb) {
    let scheduler = Scheduler::builder(db.store())
        .moderator(clearing_over_file())
        .autostart(false)
        .watch_inserts(None)
        .spawn()
        .expect("spawn");
    let status = scheduler.status();
    assert_eq!(status.policy, "clearing(rejection_rate=0)");
    assert_eq!(status.price_source, "FILE:lmps.csv");
    assert_eq!(scheduler.moderator().prices().name(), "FILE:lmps.csv");
    drop(scheduler);

    let scheduler = Scheduler::builder(db.store())
        .moderator(clearing_over_file())
        .policy(moderator::Policy::default())
        .autostart(false)
        .watch_inserts(None)
        .spawn()
        .expect("spawn");
    let status = scheduler.status();
    assert_eq!(status.policy, "random(approval_probability=0.7)");
    assert_eq!(status.price_source, orders::RT_SOURCE);
}

fn manual_moderation_overrides_only_the_random_policy(db: &TestDb) {
    let scheduler = Scheduler::builder(db.store())
        .moderator(clearing_over_file())
        .autostart(false)
        .watch_inserts(None)
        .spawn()
        .expect("spawn");
    assert_eq!(
        scheduler.manual_moderator(None).describe(),
        "clearing(rejection_rate=0) over FILE:lmps.csv"
    );
    let always = moderator::Policy::new(1.0, 40.0, 0.0).expect("valid");
    let overridden = scheduler.manual_moderator(Some(&always));
    assert_eq!(
        overridden.describe(),
        "random(approval_probability=1) over FILE:lmps.csv",
        "the file still prices"
    );
    let store = db.store();
    let due = hour();
    let sell = store
        .insert_order(&new_order("SELL", "45", "A", due), None, "api")
        .expect("insert")
        .order;
    scheduler::moderate_due_time_with(&store, &overridden, Some(1), due, "test", 10)
        .expect("moderate");
    let sell = store.get_order(&sell.id).expect("read");
    assert_eq!(
        sell.status,
        OrderStatus::Approved,
        "random approves what clearing would not"
    );
    assert_eq!(sell.approval_rt_lmp, Some(Price::from_scaled(4123)));
    drop(scheduler);

    let simulated = Scheduler::builder(db.store())
        .autostart(false)
        .watch_inserts(None)
        .spawn()
        .expect("spawn");
    let cheap = moderator::Policy::new(0.5, 12.0, 0.0).expect("valid");
    let order = moderator::example_order();
    let outcome = simulated
        .manual_moderator(Some(&cheap))
        .decide(&order, &mut moderator::order_rng(3, &order.id));
    assert_eq!(
        outcome,
        moderator::decide_outcome(&cheap, &order, &mut moderator::order_rng(3, &order.id)),
        "over the simulated source, the parameters set the model too"
    );
}

storage::backend_tests!(
    manual_moderation_overrides_only_the_random_policy,
    approvals_record_the_file_and_the_hour,
    the_original_policy_keeps_the_original_record,
    status_names_policy_and_source,
);
