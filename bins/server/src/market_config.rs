//! Flags choosing how orders are moderated: the policy (`random`, the original's, or
//! `clearing`) and where real-time prices come from (the simulated model, or a CSV of hourly
//! LMPs such as PJM Data Miner 2's `rt_hrl_lmps` export). Each has an environment fallback.
//!
//! [`MarketArgs::build`] turns them, with the original policy's parameters, into the
//! [`Moderator`] the scheduler decides with and the market routes read prices from. It is the
//! one place the price file is read, at start: a bad file stops the server with the line of
//! the first bad row.

use crate::config::PolicyArgs;
use anyhow::Context;
use clap::Args;
use moderator::{ColumnMap, ModerationConfig, Moderator, Policy, PolicyKind, PriceSourceSpec};

/// How orders are moderated and priced.
#[derive(Debug, Clone, Args)]
pub struct MarketArgs {
    /// Moderation policy: `random` (the original's: approve with --approval-probability at
    /// the source's price) or `clearing` (a BUY clears when the price is at or below its
    /// limit, a SELL at or above; otherwise "Price outside acceptable range").
    #[arg(long = "policy", env = "MODERATION_POLICY", default_value = "random",
        value_parser = parse_policy)]
    pub policy: PolicyKind,
    /// Where real-time prices come from: `simulated` (--rt-lmp-base ± --rt-lmp-variance,
    /// recorded as SIMULATED_RT) or `file:PATH`, a CSV of hourly real-time LMPs read once at
    /// start (recorded as FILE:<file name>); an order is priced at the hour containing its
    /// due time, at its location.
    #[arg(long, env = "PRICE_SOURCE", default_value = "simulated",
        value_parser = parse_price_source)]
    pub price_source: PriceSourceSpec,
    /// The price file's column names, as comma-separated ROLE=COLUMN pairs overriding PJM
    /// Data Miner 2's `rt_hrl_lmps` names (roles: time, location, lmp, energy, congestion,
    /// loss, current), e.g. `time=INTERVAL_START_GMT,location=NODE,lmp=LMP`.
    #[arg(long, env = "PRICE_COLUMNS", default_value = "")]
    pub price_columns: String,
    /// Price an order the file has no price for with the simulated model instead of
    /// rejecting it with "No real-time price for LOCATION at INTERVAL".
    #[arg(long, env = "PRICE_FALLBACK_SIMULATED")]
    pub price_fallback_simulated: bool,
    /// With `--policy clearing`: the probability, 0 to 1, that an order whose limit the
    /// price crosses is still rejected (liquidity or grid constraints), drawn from the
    /// order's seeded generator.
    #[arg(long, env = "CLEARING_REJECTION_RATE", default_value_t = 0.0,
        value_parser = parse_rate)]
    pub clearing_rejection_rate: f64,
}

impl MarketArgs {
    /// The moderator these flags and the original policy's parameters describe; reads the
    /// price file, if any. Errors name the flag, and for a bad file its line.
    pub fn build(&self, policy: &PolicyArgs) -> anyhow::Result<Moderator> {
        let random = Policy::new(
            policy.approval_probability,
            policy.rt_lmp_base,
            policy.rt_lmp_variance,
        )
        .context("invalid moderation policy")?;
        let columns = ColumnMap::parse(&self.price_columns).context("invalid --price-columns")?;
        let config = ModerationConfig {
            policy: self.policy,
            price_source: self.price_source.clone(),
            columns,
            fallback_to_simulated: self.price_fallback_simulated,
            random,
            clearing_rejection_rate: self.clearing_rejection_rate,
            simulated_seed: policy.moderation_seed.unwrap_or(0),
        };
        config
            .build()
            .with_context(|| format!("cannot use --price-source {}", self.price_source))
    }
}

fn parse_policy(s: &str) -> Result<PolicyKind, String> {
    s.parse().map_err(|e: moderator::ConfigError| e.to_string())
}

fn parse_price_source(s: &str) -> Result<PriceSourceSpec, String> {
    s.parse().map_err(|e: moderator::ConfigError| e.to_string())
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a number between 0 and 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        market: MarketArgs,
        #[command(flatten)]
        policy: PolicyArgs,
    }

    #[test]
    fn defaults_are_the_original() {
        let f = Flags::try_parse_from(["x"]).map_err(|e| e.to_string());
        let f = f.as_ref().map(|f| (&f.market, &f.policy));
        let Ok((market, policy)) = f else {
            panic!("defaults parse: {f:?}");
        };
        assert_eq!(market.policy, PolicyKind::Random);
        assert_eq!(market.price_source, PriceSourceSpec::Simulated);
        let m = market.build(policy).map_err(|e| e.to_string());
        assert_eq!(
            m.map(|m| m.describe()),
            Ok("random(approval_probability=0.7) over SIMULATED_RT".to_string())
        );
    }

    #[test]
    fn refuses_bad_values_by_name() {
        for argv in [
            &["x", "--policy", "lottery"][..],
            &["x", "--price-source", "http://example.com"],
            &["x", "--clearing-rejection-rate", "1.5"],
        ] {
            assert!(Flags::try_parse_from(argv).is_err(), "{argv:?}");
        }
        let f = Flags::try_parse_from(["x", "--price-columns", "colour=red"]);
        let err = f.map(|f| f.market.build(&f.policy).map(|_| ()));
        assert!(
            matches!(&err, Ok(Err(e)) if format!("{e:#}").contains("--price-columns")),
            "{err:?}"
        );
    }

    #[test]
    fn a_bad_price_file_names_its_line() {
        let dir = tempfile::tempdir().map_err(|e| e.to_string());
        let Ok(dir) = dir else {
            panic!("temp dir: {dir:?}");
        };
        let path = dir.path().join("lmps.csv");
        let written = std::fs::write(
            &path,
            "datetime_beginning_utc,pnode_name,total_lmp_rt\n\
             1/1/2024 5:00:00 AM,A,41.23\n\
             1/1/2024 6:00:00 AM,A,forty\n",
        );
        assert!(written.is_ok(), "{written:?}");
        let source = format!("file:{}", path.display());
        let f = Flags::try_parse_from(["x", "--price-source", &source]);
        let err = f.map(|f| f.market.build(&f.policy).map(|_| ()));
        let Ok(Err(e)) = err else {
            panic!("a bad row must fail the build: {err:?}");
        };
        let text = format!("{e:#}");
        assert!(text.contains("line 3") && text.contains("forty"), "{text}");
    }
}
