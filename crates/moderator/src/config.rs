//! Building a moderator from configuration: a policy and a price source, chosen by name the
//! way command-line flags give them (`--policy clearing --price-source file:PATH`).
//!
//! Building is the one step that may do IO (reading a price file), so it happens once, at
//! start; the [`Moderator`] it returns is pure and cheap to clone.

use crate::policy::{ClearingPolicy, ModerationPolicy, Outcome, RandomPolicy};
use crate::price::{ColumnMap, FileError, FilePrices, PriceSource, SimulatedPrices, WithFallback};
use crate::{Policy, PolicyError};
use orders::Order;
use rand::Rng;
use std::{fmt, path::PathBuf, str::FromStr, sync::Arc};

/// A policy and the price source it asks: everything needed to decide an order.
#[derive(Debug, Clone)]
pub struct Moderator {
    policy: Arc<dyn ModerationPolicy>,
    prices: Arc<dyn PriceSource>,
}

impl Default for Moderator {
    /// The original's: [`RandomPolicy::default`] over [`SimulatedPrices::default`].
    fn default() -> Self {
        Self::new(RandomPolicy::default(), SimulatedPrices::default())
    }
}

impl Moderator {
    /// `policy` asking `prices`.
    pub fn new(
        policy: impl ModerationPolicy + 'static,
        prices: impl PriceSource + 'static,
    ) -> Self {
        Self::from_shared(Arc::new(policy), Arc::new(prices))
    }

    /// The same, from shared trait objects (to share a source with the market routes).
    pub fn from_shared(policy: Arc<dyn ModerationPolicy>, prices: Arc<dyn PriceSource>) -> Self {
        Self { policy, prices }
    }

    /// Decides one order with its generator (see [`crate::order_rng`] for a seeded one).
    pub fn decide<R: Rng + ?Sized>(&self, order: &Order, rng: &mut R) -> Outcome {
        // `&mut R` is itself a sized generator, so it can become the trait object even when
        // `R` is not sized.
        let mut rng = rng;
        self.policy.decide(order, &*self.prices, &mut rng)
    }

    /// The policy.
    pub fn policy(&self) -> &Arc<dyn ModerationPolicy> {
        &self.policy
    }

    /// The price source, also for the market routes' range queries.
    pub fn prices(&self) -> &Arc<dyn PriceSource> {
        &self.prices
    }

    /// Policy and source in one line, such as `clearing(rejection_rate=0) over FILE:lmps.csv`.
    pub fn describe(&self) -> String {
        format!("{} over {}", self.policy.describe(), self.prices.name())
    }
}

/// The policies selectable by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyKind {
    /// `random`: the original's.
    #[default]
    Random,
    /// `clearing`: approve when the price crosses the limit.
    Clearing,
}

impl FromStr for PolicyKind {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "random" => Ok(Self::Random),
            "clearing" => Ok(Self::Clearing),
            _ => Err(ConfigError::UnknownPolicy(s.to_string())),
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Random => "random",
            Self::Clearing => "clearing",
        })
    }
}

/// The price sources selectable by name: `simulated` or `file:PATH`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PriceSourceSpec {
    /// `simulated`: the original's model.
    #[default]
    Simulated,
    /// `file:PATH`: a CSV of hourly real-time LMPs.
    File(PathBuf),
}

impl FromStr for PriceSourceSpec {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("simulated") {
            return Ok(Self::Simulated);
        }
        match t.split_once(':') {
            Some((kind, path)) if kind.eq_ignore_ascii_case("file") && !path.is_empty() => {
                Ok(Self::File(PathBuf::from(path)))
            }
            _ => Err(ConfigError::UnknownPriceSource(s.to_string())),
        }
    }
}

impl fmt::Display for PriceSourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Simulated => f.write_str("simulated"),
            Self::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

/// Why a moderator could not be built from configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not `random` or `clearing`.
    #[error("unknown policy '{0}': expected random or clearing")]
    UnknownPolicy(String),
    /// Not `simulated` or `file:PATH`.
    #[error("unknown price source '{0}': expected simulated or file:PATH")]
    UnknownPriceSource(String),
    /// A parameter out of its domain.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The price file could not be loaded.
    #[error(transparent)]
    File(#[from] FileError),
}

/// What flags choose; [`ModerationConfig::build`] turns it into a [`Moderator`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModerationConfig {
    /// `--policy`.
    pub policy: PolicyKind,
    /// `--price-source`.
    pub price_source: PriceSourceSpec,
    /// The file's column names (see [`ColumnMap::parse`]); ignored for `simulated`.
    pub columns: ColumnMap,
    /// Price what the file lacks with the simulated model instead of rejecting the order.
    pub fallback_to_simulated: bool,
    /// The original's parameters: approval probability (used by `random`), LMP base and
    /// variance (used by the simulated source).
    pub random: Policy,
    /// `clearing`'s extra rejection rate for liquidity or grid reasons.
    pub clearing_rejection_rate: f64,
    /// Seeds the simulated source's answers to range queries (the market routes).
    pub simulated_seed: u64,
}

impl ModerationConfig {
    /// Builds the policy and loads the price source (reading the file, if any, once).
    pub fn build(&self) -> Result<Moderator, ConfigError> {
        let policy: Arc<dyn ModerationPolicy> = match self.policy {
            PolicyKind::Random => Arc::new(self.random.random_policy()),
            PolicyKind::Clearing => Arc::new(ClearingPolicy::new(self.clearing_rejection_rate)?),
        };
        let simulated = self
            .random
            .simulated_prices()
            .with_seed(self.simulated_seed);
        let prices: Arc<dyn PriceSource> = match &self.price_source {
            PriceSourceSpec::Simulated => Arc::new(simulated),
            PriceSourceSpec::File(path) => {
                let file = FilePrices::load(path, &self.columns)?;
                if self.fallback_to_simulated {
                    Arc::new(WithFallback::new(file, simulated))
                } else {
                    Arc::new(file)
                }
            }
        };
        Ok(Moderator::from_shared(policy, prices))
    }
}
