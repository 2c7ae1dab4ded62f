//! Moderation policies: given an order and a price source, approve at a price or reject with a
//! reason. Policies do no IO and read no clock; their only randomness is the generator they are
//! handed, so a seeded decision is reproducible.
//!
//! - [`RandomPolicy`]: the original's. Approve with a probability, at the source's price;
//!   otherwise reject with one of the four market reasons.
//! - [`ClearingPolicy`]: a limit order clears when the real-time price crosses its limit.
//! - Any other [`ModerationPolicy`] an embedding service implements.

use crate::price::{PriceSource, Quote};
use crate::PolicyError;
use chrono::{DateTime, Utc};
use orders::{Decision, Order, Side, REJECT_REASONS};
use rand::{Rng, RngExt};
use serde::Serialize;
use std::{fmt, sync::Arc};

/// The reason a clearing policy gives an order whose limit the price did not cross.
pub const PRICE_OUTSIDE_RANGE: &str = "Price outside acceptable range";

/// The reasons [`ClearingPolicy`]'s extra random rejections draw from.
pub const LIQUIDITY_REASONS: [&str; 2] = ["Insufficient market liquidity", "Grid constraints"];

/// A decision and the price behind it: what storage needs to record `approval_rt_source` and
/// `approval_rt_interval_start_utc`, beyond the [`Decision`] itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// Approved at an LMP, or rejected with a reason.
    pub decision: Decision,
    /// The price consulted: always set on an approval (its LMP is the decision's), set on a
    /// rejection when a price was looked up first (a clearing policy's "did not cross"), `None`
    /// when no price was asked for or none was found.
    pub quote: Option<Quote>,
}

impl Outcome {
    /// Approved at `quote`'s LMP.
    pub fn approved(quote: Quote) -> Self {
        Self {
            decision: Decision::Approved {
                rt_lmp: quote.price.lmp,
            },
            quote: Some(quote),
        }
    }

    /// Rejected for `reason`, after consulting `quote` if any.
    pub fn rejected(reason: impl Into<String>, quote: Option<Quote>) -> Self {
        Self {
            decision: Decision::Rejected {
                reason: reason.into(),
            },
            quote,
        }
    }

    /// The name of the source that priced an approval (`SIMULATED_RT`, `FILE:...`), for
    /// `approval_rt_source`.
    pub fn rt_source(&self) -> Option<&str> {
        self.approved_quote().map(|q| &*q.source)
    }

    /// The start of the interval whose price an approval used, for
    /// `approval_rt_interval_start_utc`.
    pub fn rt_interval_start_utc(&self) -> Option<DateTime<Utc>> {
        self.approved_quote().map(|q| q.price.interval_start_utc)
    }

    fn approved_quote(&self) -> Option<&Quote> {
        match self.decision {
            Decision::Approved { .. } => self.quote.as_ref(),
            Decision::Rejected { .. } => None,
        }
    }
}

impl From<Outcome> for Decision {
    fn from(outcome: Outcome) -> Self {
        outcome.decision
    }
}

/// How orders are moderated. Implement it to plug a policy of your own into a [`crate::Moderator`].
///
/// A policy must not do IO or read a clock, and must take all its randomness from `rng` (the
/// order's generator, seeded from the order id when the service has a seed): then a decision
/// cannot fail and is reproducible. Prices come from `prices`, which may draw from `rng` too.
///
/// ```
/// use moderator::{ModerationPolicy, Moderator, Outcome, PriceSource, SimulatedPrices};
/// use orders::Order;
/// use rand::Rng;
///
/// /// Approves everything under 100 MWh at the market price.
/// #[derive(Debug)]
/// struct SmallOrdersOnly;
///
/// impl ModerationPolicy for SmallOrdersOnly {
///     fn name(&self) -> &str {
///         "small-orders-only"
///     }
///     fn decide(&self, order: &Order, prices: &dyn PriceSource, rng: &mut dyn Rng) -> Outcome {
///         if order.qty_mwh.scaled() >= 100_000 {
///             return Outcome::rejected("Order too large", None);
///         }
///         match prices.price(&order.location, order.hour_start_utc, rng) {
///             Ok(quote) => Outcome::approved(quote),
///             Err(missing) => Outcome::rejected(missing.to_string(), None),
///         }
///     }
/// }
///
/// let moderator = Moderator::new(SmallOrdersOnly, SimulatedPrices::default());
/// let mut order = moderator::example_order(); // 1 MWh
/// let outcome = moderator.decide(&order, &mut moderator::order_rng(7, &order.id));
/// assert_eq!(outcome.rt_source(), Some("SIMULATED_RT"));
/// order.qty_mwh = orders::Quantity::from_scaled(250_000);
/// let outcome = moderator.decide(&order, &mut moderator::order_rng(7, &order.id));
/// assert_eq!(outcome.decision, orders::Decision::Rejected { reason: "Order too large".into() });
/// ```
pub trait ModerationPolicy: fmt::Debug + Send + Sync {
    /// A short name for status pages and event details: `random`, `clearing`, ...
    fn name(&self) -> &str;

    /// The name with its parameters, such as `random(approval_probability=0.7)`.
    fn describe(&self) -> String {
        self.name().to_string()
    }

    /// Decides one order.
    fn decide(&self, order: &Order, prices: &dyn PriceSource, rng: &mut dyn Rng) -> Outcome;
}

impl<P: ModerationPolicy + ?Sized> ModerationPolicy for Arc<P> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn decide(&self, order: &Order, prices: &dyn PriceSource, rng: &mut dyn Rng) -> Outcome {
        (**self).decide(order, prices, rng)
    }
}

/// Asks `prices` for the order's location and due time; a missing price becomes a rejection
/// whose reason names the location and interval.
fn quote_for(order: &Order, prices: &dyn PriceSource, rng: &mut dyn Rng) -> Result<Quote, Outcome> {
    prices
        .price(&order.location, order.hour_start_utc, rng)
        .map_err(|missing| Outcome::rejected(missing.to_string(), None))
}

/// The original's policy: approve with a probability at the source's price for the order's
/// location and due time, else reject with one of [`REJECT_REASONS`], uniformly.
///
/// The generator is used in the original's order (approval draw, then the price, or then the
/// reason), so with [`crate::SimulatedPrices`] a seeded order gets exactly the decision it got
/// before policies were pluggable.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RandomPolicy {
    approval_probability: f64,
}

impl Default for RandomPolicy {
    /// 70 % approval.
    fn default() -> Self {
        Self {
            approval_probability: 0.7,
        }
    }
}

impl RandomPolicy {
    /// Approves with `approval_probability`, which must be in [0, 1].
    pub fn new(approval_probability: f64) -> Result<Self, PolicyError> {
        if !(0.0..=1.0).contains(&approval_probability) {
            return Err(PolicyError::Probability(approval_probability));
        }
        Ok(Self {
            approval_probability,
        })
    }

    /// Probability that an order is approved.
    pub fn approval_probability(&self) -> f64 {
        self.approval_probability
    }
}

impl ModerationPolicy for RandomPolicy {
    fn name(&self) -> &str {
        "random"
    }

    fn describe(&self) -> String {
        format!("random(approval_probability={})", self.approval_probability)
    }

    fn decide(&self, order: &Order, prices: &dyn PriceSource, rng: &mut dyn Rng) -> Outcome {
        if rng.random_bool(self.approval_probability) {
            match quote_for(order, prices, rng) {
                Ok(quote) => Outcome::approved(quote),
                Err(rejected) => rejected,
            }
        } else {
            let reason = REJECT_REASONS[rng.random_range(0..REJECT_REASONS.len())];
            Outcome::rejected(reason, None)
        }
    }
}

/// A limit order clears when the real-time price crosses its limit, as in a day-ahead market:
/// a BUY is approved iff price ≤ limit, a SELL iff price ≥ limit. **At equality the order
/// clears** (both sides). An order that does not cross is rejected with
/// [`PRICE_OUTSIDE_RANGE`]; an order whose location has no price for its interval is rejected
/// with "No real-time price for LOCATION at INTERVAL".
///
/// Optionally, a crossing order is still rejected with probability `rejection_rate`, for one of
/// [`LIQUIDITY_REASONS`] (uniformly), drawn from the order's generator after its price. With a
/// rate of 0 (the default) nothing is drawn and the policy is deterministic given the prices.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct ClearingPolicy {
    rejection_rate: f64,
}

impl ClearingPolicy {
    /// Clears by price, then rejects crossing orders with `rejection_rate` in [0, 1].
    pub fn new(rejection_rate: f64) -> Result<Self, PolicyError> {
        if !(0.0..=1.0).contains(&rejection_rate) {
            return Err(PolicyError::RejectionRate(rejection_rate));
        }
        Ok(Self { rejection_rate })
    }

    /// Probability that a crossing order is rejected anyway, for liquidity or grid reasons.
    pub fn rejection_rate(&self) -> f64 {
        self.rejection_rate
    }

    /// Whether `price` crosses `limit` for `side` (equality crosses).
    pub fn crosses(side: Side, limit: orders::Price, price: orders::Price) -> bool {
        match side {
            Side::Buy => price <= limit,
            Side::Sell => price >= limit,
        }
    }
}

impl ModerationPolicy for ClearingPolicy {
    fn name(&self) -> &str {
        "clearing"
    }

    fn describe(&self) -> String {
        format!("clearing(rejection_rate={})", self.rejection_rate)
    }

    fn decide(&self, order: &Order, prices: &dyn PriceSource, rng: &mut dyn Rng) -> Outcome {
        let quote = match quote_for(order, prices, rng) {
            Ok(quote) => quote,
            Err(rejected) => return rejected,
        };
        if !Self::crosses(order.side, order.limit_price, quote.price.lmp) {
            return Outcome::rejected(PRICE_OUTSIDE_RANGE, Some(quote));
        }
        if self.rejection_rate > 0.0 && rng.random_bool(self.rejection_rate) {
            let reason = LIQUIDITY_REASONS[rng.random_range(0..LIQUIDITY_REASONS.len())];
            return Outcome::rejected(reason, Some(quote));
        }
        Outcome::approved(quote)
    }
}
