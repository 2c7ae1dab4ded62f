//! The moderation policy: what happens to an order at its due time.
//!
//! [`decide`] is a pure function of a [`Policy`], an order and a random number generator: with
//! the policy's probability the order is approved at a real-time LMP drawn uniformly from
//! `base ± variance` (whole cents, never below 0.01), otherwise it is rejected with one of the
//! seed's four market reasons. It does no IO and reads no clock, so it cannot fail.
//!
//! [`order_rng`] derives an order's generator from `(seed, order id)` alone, which makes an
//! outcome reproducible on every run, instance and batch order when a seed is configured.
//!
//! ```
//! use moderator::{decide, order_rng, Policy};
//! # let order = moderator::example_order();
//! let policy = Policy::default(); // 70 % approval, 40 ± 10 $/MWh
//! let decision = decide(&policy, &order, &mut order_rng(42, &order.id));
//! assert_eq!(decision, decide(&policy, &order, &mut order_rng(42, &order.id)));
//! ```

use orders::{Decision, Order, Price, REJECT_REASONS};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// A policy value outside its domain.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// The approval probability must be a number in [0, 1].
    #[error("approval_probability must be between 0 and 1, got {0}")]
    Probability(f64),
    /// Base and variance must be finite, non-negative, with at most two decimals.
    #[error("{field} must be a finite number >= 0 with at most 2 decimals, got {value}")]
    Price {
        /// `rt_lmp_base` or `rt_lmp_variance`.
        field: &'static str,
        /// What was given.
        value: f64,
    },
}

/// How orders are moderated. Built through [`Policy::new`], so it is always valid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Policy {
    approval_probability: f64,
    rt_lmp_base: Price,
    rt_lmp_variance: Price,
}

impl Default for Policy {
    /// The seed's policy: 70 % approval at 40 ± 10 $/MWh.
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
}

/// Decides one order: approved at an LMP, or rejected with a reason.
///
/// The LMP is a whole number of cents drawn uniformly from `[base - variance, base + variance]`
/// and floored at one cent; the order itself does not influence the draw (the parameter is there
/// so that richer policies can look at it without changing callers).
pub fn decide<R: Rng + ?Sized>(policy: &Policy, _order: &Order, rng: &mut R) -> Decision {
    if rng.random_bool(policy.approval_probability) {
        let base = policy.rt_lmp_base.scaled();
        let var = policy.rt_lmp_variance.scaled();
        let cents = rng.random_range(base - var..=base + var).max(1);
        Decision::Approved {
            rt_lmp: Price::from_scaled(cents),
        }
    } else {
        let reason = REJECT_REASONS[rng.random_range(0..REJECT_REASONS.len())];
        Decision::Rejected {
            reason: reason.to_string(),
        }
    }
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

/// An order for examples and tests (its fields do not affect [`decide`]).
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
