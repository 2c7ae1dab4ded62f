//! The clearing and random policies over controlled prices, without a database: crossing at
//! equality, negative prices, a missing price, seeded liquidity rejections.

use chrono::{DateTime, TimeZone, Utc};
use moderator::policy::{LIQUIDITY_REASONS, PRICE_OUTSIDE_RANGE};
use moderator::{
    example_order, order_rng, ClearingPolicy, ModerationPolicy, Moderator, NoPrice, Outcome,
    PriceSource, Quote, RandomPolicy, RtPrice, SimulatedPrices,
};
use orders::{Decision, Order, Price, Side};
use rand::Rng;
use std::{collections::HashMap, sync::Arc};

/// One price for `PJM-RTO`, whatever the time; nothing anywhere else.
#[derive(Debug)]
struct Fixed(i64);

fn hour(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp().div_euclid(3600) * 3600, 0).unwrap_or(at)
}

impl PriceSource for Fixed {
    fn name(&self) -> &str {
        "FIXED"
    }
    fn price(&self, location: &str, at: DateTime<Utc>, _: &mut dyn Rng) -> Result<Quote, NoPrice> {
        match self.latest_at_or_before(location, at) {
            Some(price) => Ok(Quote {
                source: Arc::from("FIXED"),
                price,
            }),
            None => Err(NoPrice {
                location: location.to_string(),
                interval_start_utc: hour(at),
            }),
        }
    }
    fn latest_at_or_before(&self, location: &str, at: DateTime<Utc>) -> Option<RtPrice> {
        (location == "PJM-RTO").then(|| RtPrice::new(hour(at), Price::from_scaled(self.0)))
    }
    fn range(&self, _: &str, _: DateTime<Utc>, _: DateTime<Utc>) -> Vec<RtPrice> {
        Vec::new()
    }
}

fn order(side: Side, limit_cents: i64) -> Order {
    let mut o = example_order();
    o.side = side;
    o.limit_price = Price::from_scaled(limit_cents);
    o.hour_start_utc = Utc
        .with_ymd_and_hms(2024, 11, 3, 5, 30, 0)
        .single()
        .unwrap_or_default();
    o
}

fn clear(price_cents: i64, side: Side, limit_cents: i64) -> Outcome {
    let o = order(side, limit_cents);
    ClearingPolicy::default().decide(&o, &Fixed(price_cents), &mut order_rng(1, &o.id))
}

fn approved_at(cents: i64) -> Decision {
    Decision::Approved {
        rt_lmp: Price::from_scaled(cents),
    }
}

fn outside() -> Decision {
    Decision::Rejected {
        reason: PRICE_OUTSIDE_RANGE.into(),
    }
}

#[test]
fn equality_clears_on_both_sides() {
    assert_eq!(clear(4000, Side::Buy, 4000).decision, approved_at(4000));
    assert_eq!(clear(4000, Side::Sell, 4000).decision, approved_at(4000));
}

#[test]
fn a_buy_clears_at_or_below_its_limit_and_a_sell_at_or_above() {
    assert_eq!(clear(3999, Side::Buy, 4000).decision, approved_at(3999));
    assert_eq!(clear(4001, Side::Buy, 4000).decision, outside());
    assert_eq!(clear(4001, Side::Sell, 4000).decision, approved_at(4001));
    assert_eq!(clear(3999, Side::Sell, 4000).decision, outside());
}

#[test]
fn negative_prices_cross_like_any_other() {
    // A SELL willing to pay up to 20 $/MWh to deliver clears at -12.35; a BUY that wants to
    // be paid at least 13 $/MWh does not.
    assert_eq!(clear(-1235, Side::Sell, -2000).decision, approved_at(-1235));
    assert_eq!(clear(-1235, Side::Buy, -1300).decision, outside());
    assert_eq!(clear(-1235, Side::Buy, -1235).decision, approved_at(-1235));
    assert_eq!(clear(-1235, Side::Buy, 0).decision, approved_at(-1235));
}

#[test]
fn a_rejection_that_looked_at_a_price_keeps_it_but_records_no_source() {
    let o = clear(4001, Side::Buy, 4000);
    assert_eq!(o.quote.as_ref().map(|q| q.price.lmp.scaled()), Some(4001));
    assert_eq!(o.rt_source(), None);
    assert_eq!(o.rt_interval_start_utc(), None);
    let a = clear(3000, Side::Buy, 4000);
    assert_eq!(a.rt_source(), Some("FIXED"));
    assert_eq!(
        a.rt_interval_start_utc(),
        Utc.with_ymd_and_hms(2024, 11, 3, 5, 0, 0).single()
    );
    assert_eq!(Decision::from(a), approved_at(3000));
}

#[test]
fn a_missing_price_rejects_naming_location_and_interval() {
    let mut o = order(Side::Buy, 4000);
    o.location = "NOWHERE".into();
    let want = Decision::Rejected {
        reason: "No real-time price for NOWHERE at 2024-11-03T05:00:00.000Z".into(),
    };
    let clearing = ClearingPolicy::default().decide(&o, &Fixed(10), &mut order_rng(1, &o.id));
    assert_eq!(clearing.decision, want);
    assert_eq!(clearing.quote, None);
    // The random policy asks for a price only for the orders it approves.
    let always = RandomPolicy::new(1.0).unwrap_or_default();
    assert_eq!(
        always
            .decide(&o, &Fixed(10), &mut order_rng(1, &o.id))
            .decision,
        want
    );
}

#[test]
fn seeded_liquidity_rejections_are_reproducible_and_near_their_rate() {
    let policy = Moderator::new(ClearingPolicy::new(0.3).unwrap_or_default(), Fixed(3500));
    let mut o = order(Side::Buy, 4000);
    let n = 10_000;
    let mut reasons: HashMap<String, usize> = HashMap::new();
    let mut approved = 0;
    for i in 0..n {
        o.id = format!("order-{i}");
        let first = policy.decide(&o, &mut order_rng(5, &o.id));
        assert_eq!(
            first,
            policy.decide(&o, &mut order_rng(5, &o.id)),
            "{}",
            o.id
        );
        match first.decision {
            Decision::Approved { rt_lmp } => {
                assert_eq!(rt_lmp.scaled(), 3500);
                approved += 1;
            }
            Decision::Rejected { reason } => {
                assert!(LIQUIDITY_REASONS.contains(&reason.as_str()), "{reason}");
                assert!(first.quote.is_some(), "the price was consulted first");
                *reasons.entry(reason).or_default() += 1;
            }
        }
    }
    let rate = 1.0 - approved as f64 / n as f64;
    assert!((rate - 0.3).abs() < 0.02, "rejection rate {rate}");
    assert_eq!(reasons.len(), 2, "both reasons occur: {reasons:?}");
    // Another seed gives other outcomes.
    let differs = (0..200)
        .filter(|i| {
            o.id = format!("order-{i}");
            policy.decide(&o, &mut order_rng(5, &o.id))
                != policy.decide(&o, &mut order_rng(6, &o.id))
        })
        .count();
    assert!(differs > 20, "{differs}");
}

#[test]
fn without_a_rejection_rate_clearing_is_decided_by_price_alone() {
    let mut o = order(Side::Sell, 4000);
    for i in 0..1000 {
        o.id = format!("order-{i}");
        let out = ClearingPolicy::default().decide(&o, &Fixed(4000), &mut order_rng(i, &o.id));
        assert_eq!(out.decision, approved_at(4000));
    }
}

#[test]
fn out_of_range_rates_are_refused() {
    for r in [-0.01, 1.01, f64::NAN, f64::INFINITY] {
        assert!(ClearingPolicy::new(r).is_err(), "{r}");
        assert!(RandomPolicy::new(r).is_err(), "{r}");
    }
    assert!(ClearingPolicy::new(1.0).is_ok());
}

#[test]
fn clearing_over_the_simulated_model_draws_the_price_from_the_order() {
    let m = Moderator::new(ClearingPolicy::default(), SimulatedPrices::default());
    let o = order(Side::Buy, 4000);
    let a = m.decide(&o, &mut order_rng(3, &o.id));
    assert_eq!(a, m.decide(&o, &mut order_rng(3, &o.id)));
    let q = a
        .quote
        .as_ref()
        .map(|q| (q.source.to_string(), q.price.interval_start_utc));
    // The simulated source prices the 5-minute interval containing the due time.
    assert_eq!(q, Some(("SIMULATED_RT".to_string(), o.hour_start_utc)));
    assert_eq!(m.describe(), "clearing(rejection_rate=0) over SIMULATED_RT");
}
