//! Real-time price sources: where a policy gets the LMP of a location for an interval.
//!
//! A [`PriceSource`] answers "what was the price at this location in the interval containing
//! this instant?" ([`PriceSource::price`]) and the range questions of the market routes
//! ([`PriceSource::latest_at_or_before`], [`PriceSource::range`]). Lookups are pure: a source
//! that reads a file does so once, when it is built ([`mod@file`]), and answers from memory.
//!
//! - [`SimulatedPrices`]: the original's model, uniform in `base ± variance` to the cent,
//!   drawn from the order's generator so a seeded run is reproducible.
//! - [`FilePrices`]: hourly real-time LMPs from a CSV export (PJM Data Miner 2's
//!   `rt_hrl_lmps` by default).
//! - [`WithFallback`]: one source, and another for what the first does not know.

pub mod cents;
pub mod file;

use chrono::{DateTime, Utc};
use orders::{rt_interval_start, Price, RT_INTERVAL_SECS, RT_SOURCE};
use rand::{Rng, RngExt};
use serde::Serialize;
use std::{fmt, sync::Arc};

pub use file::{ColumnMap, FileError, FilePrices};

/// The price of one interval at one location, with the LMP's components when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RtPrice {
    /// Start of the priced interval, UTC.
    #[serde(with = "orders::time::serde_ms")]
    pub interval_start_utc: DateTime<Utc>,
    /// Locational marginal price, $/MWh (may be negative).
    pub lmp: Price,
    /// System energy component, $/MWh.
    pub energy: Option<Price>,
    /// Congestion component, $/MWh.
    pub congestion: Option<Price>,
    /// Marginal loss component, $/MWh.
    pub loss: Option<Price>,
}

impl RtPrice {
    /// A price without components.
    pub fn new(interval_start_utc: DateTime<Utc>, lmp: Price) -> Self {
        Self {
            interval_start_utc,
            lmp,
            energy: None,
            congestion: None,
            loss: None,
        }
    }
}

/// A price together with the name of the source that gave it, as `approval_rt_source` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quote {
    /// The source's [`PriceSource::name`], such as `SIMULATED_RT` or `FILE:rt_hrl_lmps.csv`.
    #[serde(serialize_with = "serialize_str")]
    pub source: Arc<str>,
    /// The price.
    #[serde(flatten)]
    pub price: RtPrice,
}

// serde's `rc` feature would do this, but it is not enabled in the workspace.
fn serialize_str<S: serde::Serializer>(s: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(s)
}

/// A source that has no price for a location and interval.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("No real-time price for {location} at {}", orders::format_ms(.interval_start_utc))]
pub struct NoPrice {
    /// The order's location.
    pub location: String,
    /// Start of the interval that was asked for, UTC.
    pub interval_start_utc: DateTime<Utc>,
}

/// Where real-time prices come from.
///
/// Implementations must be pure once built: no IO and no clock in any method, so that a
/// decision cannot fail and is reproducible. `rng` is the order's generator: a source that is a
/// model draws from it (so the same seed gives the same price), a source of recorded prices
/// ignores it.
pub trait PriceSource: fmt::Debug + Send + Sync {
    /// The name written to `approval_rt_source`: `SIMULATED_RT`, `FILE:<file name>`, ...
    fn name(&self) -> &str;

    /// The price of `location` in the interval containing `at`, or which interval was missing.
    fn price(&self, location: &str, at: DateTime<Utc>, rng: &mut dyn Rng)
        -> Result<Quote, NoPrice>;

    /// The interval containing `at`, or else the last one before it, at `location`.
    fn latest_at_or_before(&self, location: &str, at: DateTime<Utc>) -> Option<RtPrice>;

    /// Every interval at `location` starting in `[start, end)`, in time order.
    fn range(&self, location: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<RtPrice>;
}

impl<S: PriceSource + ?Sized> PriceSource for Arc<S> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn price(
        &self,
        location: &str,
        at: DateTime<Utc>,
        rng: &mut dyn Rng,
    ) -> Result<Quote, NoPrice> {
        (**self).price(location, at, rng)
    }
    fn latest_at_or_before(&self, location: &str, at: DateTime<Utc>) -> Option<RtPrice> {
        (**self).latest_at_or_before(location, at)
    }
    fn range(&self, location: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<RtPrice> {
        (**self).range(location, start, end)
    }
}

/// Most intervals [`SimulatedPrices::range`] returns (31 days of 5-minute intervals), so that
/// an unbounded query cannot allocate without limit.
pub const MAX_SIMULATED_RANGE: usize = 31 * 24 * 12;

/// The original's price model: an LMP uniform in `base ± variance`, whole cents, at least
/// 0.01, for the 5-minute interval containing the instant asked about.
///
/// For an order the price is drawn from the order's generator, exactly as the original policy
/// drew it (so seeded runs give today's prices). The range queries, which have no order, draw
/// each `(location, interval)` from a generator seeded by [`SimulatedPrices::with_seed`]'s
/// seed, the location and the interval, so they answer the same on every call. Components:
/// energy is `base` (the system energy price is the same everywhere), and the difference
/// `lmp - base` is split into loss (a fifth, rounded toward zero) and congestion (the rest),
/// so the three always add up to the LMP exactly.
#[derive(Debug, Clone)]
pub struct SimulatedPrices {
    base: Price,
    variance: Price,
    seed: u64,
    name: Arc<str>,
}

impl Default for SimulatedPrices {
    /// 40 ± 10 $/MWh, the original's.
    fn default() -> Self {
        Self::new(Price::from_scaled(4000), Price::from_scaled(1000))
    }
}

/// One shared name, so that building a model (which [`crate::decide`] does per order) does not
/// allocate.
fn simulated_name() -> Arc<str> {
    static NAME: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    Arc::clone(NAME.get_or_init(|| Arc::from(RT_SOURCE)))
}

impl SimulatedPrices {
    /// A model centred on `base` with half-width `variance` (negative values are taken as 0).
    pub fn new(base: Price, variance: Price) -> Self {
        Self {
            base: Price::from_scaled(base.scaled().max(0)),
            variance: Price::from_scaled(variance.scaled().max(0)),
            seed: 0,
            name: simulated_name(),
        }
    }

    /// Seeds the range queries (not the per-order draws, which use the order's generator).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Centre of the range, $/MWh.
    pub fn base(&self) -> Price {
        self.base
    }

    /// Half-width of the range, $/MWh.
    pub fn variance(&self) -> Price {
        self.variance
    }

    fn draw(&self, interval_start_utc: DateTime<Utc>, rng: &mut dyn Rng) -> RtPrice {
        let (base, var) = (self.base.scaled(), self.variance.scaled());
        let cents = rng.random_range(base - var..=base + var).max(1);
        let diff = cents - base;
        let loss = diff / 5;
        RtPrice {
            interval_start_utc,
            lmp: Price::from_scaled(cents),
            energy: Some(self.base),
            congestion: Some(Price::from_scaled(diff - loss)),
            loss: Some(Price::from_scaled(loss)),
        }
    }

    fn at_interval(&self, location: &str, interval_start_utc: DateTime<Utc>) -> RtPrice {
        let key = format!("{location}@{}", interval_start_utc.timestamp());
        self.draw(interval_start_utc, &mut crate::order_rng(self.seed, &key))
    }
}

impl PriceSource for SimulatedPrices {
    fn name(&self) -> &str {
        &self.name
    }

    fn price(
        &self,
        _location: &str,
        at: DateTime<Utc>,
        rng: &mut dyn Rng,
    ) -> Result<Quote, NoPrice> {
        Ok(Quote {
            source: Arc::clone(&self.name),
            price: self.draw(rt_interval_start(at), rng),
        })
    }

    fn latest_at_or_before(&self, location: &str, at: DateTime<Utc>) -> Option<RtPrice> {
        Some(self.at_interval(location, rt_interval_start(at)))
    }

    fn range(&self, location: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<RtPrice> {
        let mut t = rt_interval_start(start);
        if t < start {
            t += chrono::Duration::seconds(RT_INTERVAL_SECS);
        }
        let mut out = Vec::new();
        while t < end && out.len() < MAX_SIMULATED_RANGE {
            out.push(self.at_interval(location, t));
            t += chrono::Duration::seconds(RT_INTERVAL_SECS);
        }
        out
    }
}

/// A primary source, and a fallback asked only for what the primary has no price for (for
/// example a file of real prices, falling back to the simulated model). A quote names the
/// source that actually priced it.
#[derive(Debug, Clone)]
pub struct WithFallback<P, F> {
    primary: P,
    fallback: F,
    name: String,
}

impl<P: PriceSource, F: PriceSource> WithFallback<P, F> {
    /// `primary`, else `fallback`.
    pub fn new(primary: P, fallback: F) -> Self {
        let name = format!("{}|{}", primary.name(), fallback.name());
        Self {
            primary,
            fallback,
            name,
        }
    }
}

impl<P: PriceSource, F: PriceSource> PriceSource for WithFallback<P, F> {
    /// `PRIMARY|FALLBACK`; each quote carries the name of the one that answered.
    fn name(&self) -> &str {
        &self.name
    }

    fn price(
        &self,
        location: &str,
        at: DateTime<Utc>,
        rng: &mut dyn Rng,
    ) -> Result<Quote, NoPrice> {
        self.primary
            .price(location, at, rng)
            .or_else(|_| self.fallback.price(location, at, rng))
    }

    fn latest_at_or_before(&self, location: &str, at: DateTime<Utc>) -> Option<RtPrice> {
        self.primary
            .latest_at_or_before(location, at)
            .or_else(|| self.fallback.latest_at_or_before(location, at))
    }

    fn range(&self, location: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<RtPrice> {
        let found = self.primary.range(location, start, end);
        if found.is_empty() {
            self.fallback.range(location, start, end)
        } else {
            found
        }
    }
}
