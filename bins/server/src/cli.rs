//! The command-line tools that replace the original system's helper scripts: `seed`, `orders`,
//! `moderate`, `clean` and `status`. Each works on the database directly, except `status`,
//! which asks a running server.

use crate::config::{
    CleanArgs, ModerateArgs, OrdersArgs, SchedulerAction, SchedulerArgs, SeedArgs, StatusArgs,
};
use anyhow::{bail, Context};
use chrono::{Duration as ChronoDuration, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use orders::{
    format_ms, parse_due_time, Location, LocationType, NewOrder, Order, OrderStatus, Price,
    Quantity, Side,
};
use rand::RngExt;
use storage::{OrderFilter, PoolConfig, Store};

fn open(url: &str) -> anyhow::Result<Store> {
    Store::open(url, &PoolConfig::default())
        .with_context(|| format!("cannot open the database {}", crate::app::redact(url)))
}

/// Orders per transaction of `seed`, the most one `POST /api/v1/orders/batch` takes.
const SEED_CHUNK: usize = 1_000;

/// `seed`: creates orders with random sides, quantities and prices, due over a window.
pub fn seed(args: &SeedArgs) -> anyhow::Result<()> {
    let location = Location::parse(&args.location)?;
    let fixed = args.at.as_deref().map(parse_due_time).transpose()?;
    let start = offset_from_now(args.start_in_secs, "--start-in-secs")?;
    let window_ms = secs_to_ms(args.window_secs, "--window-secs")?;
    // Both ends of the window must be valid due times; every order between them then is too.
    if fixed.is_none() {
        let end = start
            .checked_add_signed(ChronoDuration::milliseconds(window_ms))
            .context("--window-secs: the window ends beyond any valid due time")?;
        checked_due(start, "--start-in-secs")?;
        checked_due(end, "--window-secs")?;
    }
    let count = args.count as usize;
    // Opened only once the flags are known good, so a refused seed leaves no database behind.
    let store = open(&args.db.database_url)?;
    let bar = ProgressBar::new(u64::from(args.count));
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} orders ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut rng = rand::rng();
    let mut created = 0;
    while created < count {
        // The batch route's path and size: one transaction per 1,000 orders, so a running
        // server's writers (the scheduler's claims included) wait behind a seed for
        // milliseconds at a time, not for the whole seed.
        let n = (count - created).min(SEED_CHUNK);
        let batch = (0..n)
            .map(|_| {
                let due = fixed.unwrap_or_else(|| {
                    start + ChronoDuration::milliseconds(rng.random_range(0..=window_ms))
                });
                NewOrder::new(
                    if rng.random_bool(0.5) {
                        Side::Buy
                    } else {
                        Side::Sell
                    },
                    Quantity::from_scaled(rng.random_range(1..=500) * 100),
                    Price::from_scaled(rng.random_range(3000..=5000)),
                    location.clone(),
                    LocationType::Zone,
                    due,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        store.insert_batch(&batch, None, "cli:seed")?;
        created += n;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    match fixed {
        Some(t) => println!("created {created} orders due at {}", format_ms(&t)),
        None => println!(
            "created {created} orders due between {} and {}",
            format_ms(&start),
            format_ms(&(start + ChronoDuration::milliseconds(window_ms)))
        ),
    }
    Ok(())
}

/// Seconds as whole milliseconds, refusing what does not fit (clap has already refused
/// non-finite values; this keeps the arithmetic below free of overflow whatever the caller).
fn secs_to_ms(secs: f64, flag: &str) -> anyhow::Result<i64> {
    let ms = (secs * 1000.0).round();
    if !ms.is_finite() || ms.abs() > 4.0e15 {
        bail!("{flag}: {secs} seconds is out of range");
    }
    Ok(ms as i64)
}

/// Now plus `secs`, or an error if that is no representable time.
fn offset_from_now(secs: f64, flag: &str) -> anyhow::Result<chrono::DateTime<Utc>> {
    let ms = secs_to_ms(secs, flag)?;
    ChronoDuration::try_milliseconds(ms)
        .and_then(|d| Utc::now().checked_add_signed(d))
        .with_context(|| format!("{flag}: {secs} seconds from now is out of range"))
}

/// A computed due time checked by the same rule as every typed one (the accepted years), by
/// going through the parser the API uses.
fn checked_due(t: chrono::DateTime<Utc>, flag: &str) -> anyhow::Result<chrono::DateTime<Utc>> {
    parse_due_time(&format_ms(&t)).with_context(|| format!("{flag}: not a valid due time"))
}

fn outcome(o: &Order) -> String {
    match (&o.approval_rt_lmp, &o.reject_reason) {
        (Some(lmp), _) => format!("LMP {lmp}"),
        (_, Some(r)) => r.clone(),
        _ => String::new(),
    }
}

fn print_table(orders: &[Order]) {
    println!(
        "{:<36}  {:<24}  {:<4}  {:>9}  {:>9}  {:<9}  {:>10}  OUTCOME",
        "ID", "DUE (UTC)", "SIDE", "MWH", "LIMIT", "STATUS", "P&L"
    );
    for o in orders {
        println!(
            "{:<36}  {:<24}  {:<4}  {:>9}  {:>9}  {:<9}  {:>10}  {}",
            o.id,
            format_ms(&o.hour_start_utc),
            o.side.as_str(),
            o.qty_mwh.to_string(),
            o.limit_price.to_string(),
            o.status.as_str(),
            o.pnl().round_to_cents().to_string(),
            outcome(o)
        );
    }
}

/// `orders`: a table (or JSON) of orders, or one order with its history.
pub fn orders(args: &OrdersArgs) -> anyhow::Result<()> {
    let store = open(&args.db.database_url)?;
    if args.parked {
        return parked(&store, args);
    }
    if let Some(id) = &args.id {
        let order = store.get_order(id)?;
        let history = store.order_events(id)?;
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"order": order, "pnl": order.pnl(), "history": history})
                )?
            );
        } else {
            print_table(std::slice::from_ref(&order));
            println!();
            for e in history {
                let from = e.from_status.map(|s| s.as_str()).unwrap_or("-");
                println!(
                    "{}  {from:>9} -> {:<9}  by {}  {}",
                    format_ms(&e.at),
                    e.to_status.as_str(),
                    e.actor,
                    e.details
                );
            }
        }
        return Ok(());
    }
    let filter = OrderFilter {
        status: args
            .status
            .as_deref()
            .map(str::parse::<OrderStatus>)
            .transpose()?,
        side: args.side.as_deref().map(str::parse::<Side>).transpose()?,
        location: args.location.clone(),
        ..OrderFilter::default()
    };
    let page = store.list_orders(&filter, None, args.limit.clamp(1, 10_000))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&page.orders)?);
    } else {
        print_table(&page.orders);
        println!("{} orders shown", page.orders.len());
    }
    // On stderr, so the table and the JSON array keep their shape for scripts.
    for u in &page.unreadable {
        eprintln!(
            "order {} is stored but cannot be read: {}; fix or delete the row",
            u.id, u.reason
        );
    }
    Ok(())
}

/// `orders --parked`: parked orders, with the total count and each one's reason.
fn parked(store: &Store, args: &OrdersArgs) -> anyhow::Result<()> {
    let count = store.parked_count()?;
    let list = store.parked_list(args.limit)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"count": count, "orders": list}))?
        );
        return Ok(());
    }
    println!(
        "{:<36}  {:<24}  {:<4}  {:<12}  REASON",
        "ID", "DUE (UTC)", "SIDE", "LOCATION"
    );
    for p in &list {
        println!(
            "{:<36}  {:<24}  {:<4}  {:<12}  {}",
            p.id,
            format_ms(&p.hour_start_utc),
            p.side,
            p.location,
            p.parked_reason
        );
    }
    println!("{count} parked orders ({} shown)", list.len());
    Ok(())
}

/// `moderate --hour`: moderates every pending order of that due time now.
pub fn moderate(args: &ModerateArgs) -> anyhow::Result<()> {
    let store = open(&args.db.database_url)?;
    let hour = parse_due_time(&args.hour)?;
    // The same policy and price source as a server started with these flags would use.
    let moderator = args.market.build(&args.policy)?;
    let report = scheduler::moderate_due_time_with(
        &store,
        &moderator,
        args.policy.moderation_seed,
        hour,
        "cli:moderate",
        1_000,
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "moderated {} orders for {}: {} approved, {} rejected",
            report.total_orders,
            format_ms(&hour),
            report.approved,
            report.rejected
        );
    }
    Ok(())
}

/// `clean`: deletes orders (all, or of one status) with their history; needs `--yes`.
pub fn clean(args: &CleanArgs) -> anyhow::Result<()> {
    let store = open(&args.db.database_url)?;
    let status = args
        .status
        .as_deref()
        .map(str::parse::<OrderStatus>)
        .transpose()?;
    if !args.yes {
        let (orders, events) = store.row_counts()?;
        println!(
            "would delete {} ({} orders and {} history rows in the database); add --yes to delete",
            status.map_or("every order".to_string(), |s| format!("every {s} order")),
            orders,
            events
        );
        return Ok(());
    }
    let n = store.delete_orders(status)?;
    println!("deleted {n} orders and their history");
    Ok(())
}

/// `status`: the scheduler status of a running server.
pub fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let url = format!(
        "{}/api/v1/scheduler/status",
        args.server_url.trim_end_matches('/')
    );
    let resp = reqwest::blocking::Client::new()
        .get(&url)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .with_context(|| format!("cannot reach {url}"))?;
    if !resp.status().is_success() {
        bail!("{url} answered {}", resp.status());
    }
    let body: serde_json::Value = resp.json().context("the server's answer is not JSON")?;
    print_status(&body["scheduler"], args.json)?;
    if !args.json {
        print_retention(args.server_url.trim_end_matches('/'));
    }
    Ok(())
}

/// The retention sweeper's totals, when the server has retention on; silent otherwise (an
/// older server without the route included).
fn print_retention(base: &str) {
    let r = reqwest::blocking::Client::new()
        .get(format!("{base}/api/v1/retention"))
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .ok()
        .filter(|r| r.status().is_success())
        .and_then(|r| r.json::<serde_json::Value>().ok());
    if let Some(r) = r.filter(|r| r["enabled"] == true) {
        println!(
            "{:<24} {} orders, {} history rows (closed > {} days; last sweep {})",
            "retention deleted",
            r["deleted_orders"],
            r["deleted_events"],
            r["retain_closed_days"],
            r["last_sweep_at"].as_str().unwrap_or("-")
        );
    }
}

/// Prints a scheduler status object as aligned lines (or JSON).
fn print_status(s: &serde_json::Value, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    let field = |k: &str| match &s[k] {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(v) => v.clone(),
        v => v.to_string(),
    };
    for key in [
        "running",
        "thread_alive",
        "pending_due_now",
        "upcoming_10_min",
        "next_due_order",
        "last_check",
        "check_interval_seconds",
        "processed",
        "approved",
        "rejected",
        "failed",
        "parked",
        "last_error",
        "instance_id",
        "policy",
        "price_source",
    ] {
        if matches!(key, "policy" | "price_source") && s.get(key).is_none() {
            continue;
        }
        println!("{key:<24} {}", field(key));
    }
    let late = &s["lateness_ms"];
    println!(
        "{:<24} {}/{}/{}",
        "lateness_ms p50/p99/max", late["p50"], late["p99"], late["max"]
    );
    Ok(())
}

/// `scheduler status|start|stop|force-run`: the scheduler routes of a running server, with
/// the admin token when given.
pub fn scheduler(args: &SchedulerArgs) -> anyhow::Result<()> {
    let base = args.server_url.trim_end_matches('/');
    let (method, path) = match args.action {
        SchedulerAction::Status => (reqwest::Method::GET, "status"),
        SchedulerAction::Start => (reqwest::Method::POST, "start"),
        SchedulerAction::Stop => (reqwest::Method::POST, "stop"),
        SchedulerAction::ForceRun => (reqwest::Method::POST, "force-run"),
    };
    let url = format!("{base}/api/v1/scheduler/{path}");
    // A forced pass lasts as long as the backlog it drains; the others answer at once.
    let timeout = if args.action == SchedulerAction::ForceRun {
        std::time::Duration::from_secs(3600)
    } else {
        std::time::Duration::from_secs(10)
    };
    let mut req = reqwest::blocking::Client::new()
        .request(method, &url)
        .timeout(timeout);
    if let Some(t) = &args.token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().with_context(|| format!("cannot reach {url}"))?;
    let code = resp.status();
    let body: serde_json::Value = resp.json().unwrap_or(serde_json::Value::Null);
    if !code.is_success() {
        let detail = body["detail"].as_str().unwrap_or("");
        if code == reqwest::StatusCode::UNAUTHORIZED {
            bail!(
                "{url} answered {code}: pass the server's admin token with --token or ADMIN_TOKEN"
            );
        }
        bail!("{url} answered {code} {detail}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    match args.action {
        SchedulerAction::ForceRun => {
            let r = &body["result"];
            println!(
                "{} ({} orders over {} due times)",
                body["message"].as_str().unwrap_or("forced pass done"),
                r["processed"],
                r["results"].as_array().map_or(0, Vec::len)
            );
            Ok(())
        }
        SchedulerAction::Start | SchedulerAction::Stop => {
            if let Some(m) = body["message"].as_str() {
                println!("{m}");
            }
            print_status(&body["scheduler"], false)
        }
        SchedulerAction::Status => print_status(&body["scheduler"], false),
    }
}

/// `migrate --status`: every embedded migration, applied or pending.
pub fn migration_status(db: &crate::config::DbArgs) -> anyhow::Result<()> {
    let store = Store::open_without_migrating(&db.database_url, &PoolConfig::default())
        .with_context(|| {
            format!(
                "cannot open the database {}",
                crate::app::redact(&db.database_url)
            )
        })?;
    let list = store.migration_status()?;
    for m in &list {
        println!(
            "{:<8} {}",
            if m.applied { "applied" } else { "pending" },
            m.name
        );
    }
    let pending = list.iter().filter(|m| !m.applied).count();
    println!(
        "{} applied, {pending} pending ({} database)",
        list.len() - pending,
        store.backend_name()
    );
    Ok(())
}
