//! Moderation: what happens to an order at its due time.
//!
//! A [`ModerationPolicy`] decides an order, asking a [`PriceSource`] for the real-time price of
//! the order's location in the interval containing its due time, and returns an [`Outcome`]:
//! the [`orders::Decision`] plus the [`Quote`] behind it (which source, which interval), so
//! storage can record `approval_rt_source` and `approval_rt_interval_start_utc`. A
//! [`Moderator`] pairs a policy with a source; [`ModerationConfig`] builds one from flag values.
//! An embedding service plugs in its own rule by implementing [`ModerationPolicy`] (see its
//! example) or its own prices by implementing [`PriceSource`].
//!
//! | policy | rule |
//! |---|---|
//! | [`RandomPolicy`] (`random`, the default) | approve with a probability (0.7) at the source's price, else one of the four market reasons |
//! | [`ClearingPolicy`] (`clearing`) | BUY iff price ≤ limit, SELL iff price ≥ limit (equality clears), else "Price outside acceptable range"; optional extra liquidity/grid rejections |
//!
//! | source | prices |
//! |---|---|
//! | [`SimulatedPrices`] (`simulated`, `SIMULATED_RT`) | uniform in 40 ± 10 $/MWh to the cent, at least 0.01, 5-minute intervals |
//! | [`FilePrices`] (`file:PATH`, `FILE:<name>`) | hourly LMPs from a CSV, PJM Data Miner 2 `rt_hrl_lmps` columns by default |
//!
//! Policies and lookups do no IO and read no clock, so a decision cannot fail. With a seed an
//! outcome depends only on (seed, order id, policy, prices): [`order_rng`] hashes the id with
//! FNV-1a, mixes in the seed with SplitMix64 and seeds ChaCha8, all fixed algorithms. The only
//! IO is loading a price file, once, when the source is built ([`price::file`]).
//!
//! The original API stays: [`decide`] with a [`Policy`] is the random policy over the simulated
//! source, bit for bit the decisions it made before policies were pluggable.
//!
//! ```
//! use moderator::{decide, order_rng, Policy};
//! # let order = moderator::example_order();
//! let policy = Policy::default(); // 70 % approval, 40 ± 10 $/MWh
//! let decision = decide(&policy, &order, &mut order_rng(42, &order.id));
//! assert_eq!(decision, decide(&policy, &order, &mut order_rng(42, &order.id)));
//! ```
//!
//! A clearing policy over recorded prices:
//!
//! ```
//! use moderator::{ClearingPolicy, ColumnMap, FilePrices, Moderator, order_rng};
//! let csv = "datetime_beginning_utc,pnode_name,total_lmp_rt\n1/1/1970 12:00:00 AM,PJM-RTO,39.991\n";
//! let prices = FilePrices::from_reader(csv.as_bytes(), &ColumnMap::default(), "FILE:lmps.csv")?;
//! let moderator = Moderator::new(ClearingPolicy::default(), prices);
//! let order = moderator::example_order(); // BUY at 40.00, PJM-RTO, due 1970-01-01T00:00Z
//! let outcome = moderator.decide(&order, &mut order_rng(1, &order.id));
//! assert_eq!(outcome.decision, orders::Decision::Approved { rt_lmp: orders::Price::from_scaled(3999) });
//! assert_eq!(outcome.rt_source(), Some("FILE:lmps.csv"));
//! # Ok::<(), moderator::FileError>(())
//! ```

pub mod config;
pub mod policy;
pub mod price;

pub use config::{ConfigError, ModerationConfig, Moderator, PolicyKind, PriceSourceSpec};
pub use policy::{ClearingPolicy, ModerationPolicy, Outcome, RandomPolicy};
pub use price::{
    ColumnMap, FileError, FilePrices, NoPrice, PriceSource, Quote, RtPrice, SimulatedPrices,
    WithFallback,
};

use orders::{Decision, Order, Price};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// A policy value outside its domain.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// The approval probability must be a number in [0, 1].
    #[error("approval_probability must be between 0 and 1, got {0}")]
    Probability(f64),
    /// A clearing policy's extra rejection rate must be a number in [0, 1].
    #[error("rejection_rate must be between 0 and 1, got {0}")]
    RejectionRate(f64),
    /// Base and variance must be finite, non-negative, with at most two decimals.
    #[error("{field} must be a finite number >= 0 with at most 2 decimals, got {value}")]
    Price {
        /// `rt_lmp_base` or `rt_lmp_variance`.
        field: &'static str,
        /// What was given.
        value: f64,
    },
}

/// The original policy's parameters: approval probability, LMP base and variance. Built
/// through [`Policy::new`], so it is always valid. It splits into a [`RandomPolicy`]
/// ([`Policy::random_policy`]) and [`SimulatedPrices`] ([`Policy::simulated_prices`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Policy {
    approval_probability: f64,
    rt_lmp_base: Price,
    rt_lmp_variance: Price,
}

impl Default for Policy {
    /// The original system's policy: 70 % approval at 40 ± 10 $/MWh.
    fn default() -> Self {
        Self {
            approval_probability: 0.7,
            rt_lmp_base: Price::from_scaled(4000),
            rt_lmp_variance: Price::from_scaled(1000),
        }
    }
}

impl Policy {
    /// Validates a policy: probability in [0, 1]; base and variance finite, ≥ 0, in cents.
    pub fn new(
        approval_probability: f64,
        rt_lmp_base: f64,
        rt_lmp_variance: f64,
    ) -> Result<Self, PolicyError> {
        if !(0.0..=1.0).contains(&approval_probability) {
            return Err(PolicyError::Probability(approval_probability));
        }
        let price = |field, value: f64| {
            Price::from_f64(value)
                .ok()
                .filter(|p| p.scaled() >= 0 && p.scaled() <= 1_000_000)
                .ok_or(PolicyError::Price { field, value })
        };
        Ok(Self {
            approval_probability,
            rt_lmp_base: price("rt_lmp_base", rt_lmp_base)?,
            rt_lmp_variance: price("rt_lmp_variance", rt_lmp_variance)?,
        })
    }

    /// Probability that an order is approved.
    pub fn approval_probability(&self) -> f64 {
        self.approval_probability
    }

    /// Centre of the real-time LMP range, $/MWh.
    pub fn rt_lmp_base(&self) -> Price {
        self.rt_lmp_base
    }

    /// Half-width of the real-time LMP range, $/MWh.
    pub fn rt_lmp_variance(&self) -> Price {
        self.rt_lmp_variance
    }

    /// The approval part: a [`RandomPolicy`] with this probability.
    pub fn random_policy(&self) -> RandomPolicy {
        // The probability was validated by `new`; the fallback is unreachable.
        RandomPolicy::new(self.approval_probability).unwrap_or_default()
    }

    /// The price part: [`SimulatedPrices`] over `base ± variance`.
    pub fn simulated_prices(&self) -> SimulatedPrices {
        SimulatedPrices::new(self.rt_lmp_base, self.rt_lmp_variance)
    }
}

/// Decides one order the original's way: the [`RandomPolicy`] over [`SimulatedPrices`], both
/// taken from `policy`.
///
/// With the policy's probability the order is approved at a whole number of cents drawn
/// uniformly from `[base - variance, base + variance]` and floored at one cent, otherwise it is
/// rejected with one of the four market reasons. The order itself does not influence the draw.
/// Use [`decide_outcome`] (or a [`Moderator`]) to learn the source and interval too.
pub fn decide<R: Rng + ?Sized>(policy: &Policy, order: &Order, rng: &mut R) -> Decision {
    decide_outcome(policy, order, rng).into()
}

/// [`decide`], with the quote behind the decision.
pub fn decide_outcome<R: Rng + ?Sized>(policy: &Policy, order: &Order, rng: &mut R) -> Outcome {
    let mut rng = rng;
    policy
        .random_policy()
        .decide(order, &policy.simulated_prices(), &mut rng)
}

/// A generator that depends only on `(seed, order_id)`.
///
/// The id is hashed with FNV-1a and mixed with the seed through SplitMix64 (both fixed,
/// documented functions, unlike `std`'s hasher), then seeds ChaCha8, whose output is stable
/// across platforms and crate versions.
pub fn order_rng(seed: u64, order_id: &str) -> ChaCha8Rng {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in order_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    ChaCha8Rng::seed_from_u64(splitmix64(seed ^ splitmix64(h)))
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// An order for examples and tests: BUY 1 MWh at 40.00 $/MWh, `PJM-RTO`, due at the Unix
/// epoch (its fields do not affect [`decide`]).
#[doc(hidden)]
pub fn example_order() -> Order {
    use orders::{LocationType, Market, OrderStatus, Quantity, Side};
    let t = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    Order {
        id: "0192f0c8-0000-7000-8000-000000000001".into(),
        created_at: t,
        market: Market::Da,
        location_type: LocationType::Zone,
        location: "PJM-RTO".into(),
        hour_start_utc: t,
        side: Side::Buy,
        qty_mwh: Quantity::from_scaled(1000),
        limit_price: Price::from_scaled(4000),
        status: OrderStatus::Pending,
        approved_at: None,
        approval_rt_interval_start_utc: None,
        approval_rt_lmp: None,
        approval_rt_source: None,
        reject_reason: None,
    }
}
