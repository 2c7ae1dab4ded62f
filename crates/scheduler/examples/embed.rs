//! Embedding the scheduler in another program, without any web framework.
//!
//! ```text
//! cargo run --example embed -p scheduler                       # SQLite file in a temp dir
//! cargo run --example embed -p scheduler -- postgres://postgres@127.0.0.1/postgres
//! ```
//! Inserts five orders due within the next three seconds, starts a scheduler, prints each
//! outcome as it happens, then stops cleanly.

use chrono::{Duration as ChronoDuration, Utc};
use orders::{format_ms, NewOrder, NewOrderFields};
use scheduler::{Scheduler, SchedulerEvent};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let default_url = std::env::temp_dir().join("order-scheduler-embed.db");
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| default_url.to_string_lossy().into_owned());
    let store = storage::Store::open(&url, &storage::PoolConfig::default())?;
    println!("store: {} ({url})", store.backend_name());

    let mut ids = Vec::new();
    for (i, side) in ["BUY", "SELL", "BUY", "SELL", "BUY"].iter().enumerate() {
        let due = Utc::now() + ChronoDuration::milliseconds(600 * (i as i64 + 1));
        let order = NewOrder::from_fields(&NewOrderFields {
            side: Some(side),
            qty_mwh: Some("2.5"),
            limit_price: Some("40.00"),
            hour_start_utc: Some(&format_ms(&due)),
            ..Default::default()
        })?;
        let stored = store.insert_order(&order, None, "embed-example")?;
        println!(
            "inserted {} {side} due {}",
            stored.order.id,
            format_ms(&due)
        );
        ids.push(stored.order.id);
    }

    // Outcomes arrive on the scheduler thread; forward them to this one.
    let (tx, rx) = mpsc::channel::<String>();
    let scheduler = Scheduler::builder(store.clone())
        .instance_id("embed-example")
        .observer(Arc::new(move |event: &SchedulerEvent<'_>| {
            if let SchedulerEvent::Moderated { orders, at } = event {
                for o in orders.iter() {
                    let late = (*at - o.hour_start_utc).num_milliseconds();
                    let outcome = match (&o.approval_rt_lmp, &o.reject_reason) {
                        (Some(lmp), _) => format!("APPROVED at {lmp} $/MWh, P&L {}", o.pnl()),
                        (_, Some(reason)) => format!("REJECTED: {reason}"),
                        _ => o.status.to_string(),
                    };
                    let _ = tx.send(format!("{} {outcome} ({late} ms after due)", o.id));
                }
            }
        }))
        .spawn()?;

    let mut seen = 0;
    while seen < ids.len() {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => {
                println!("moderated {line}");
                seen += 1;
            }
            Err(_) => break,
        }
    }
    let status = scheduler.status();
    println!(
        "processed {} ({} approved, {} rejected); lateness p99 {:?} ms",
        status.processed, status.approved, status.rejected, status.lateness_ms.p99
    );
    drop(scheduler); // sends Shutdown and joins the thread
    println!("stopped cleanly");
    Ok(())
}
