//! Exact money and quantity arithmetic on scaled integers.
//!
//! Prices are whole cents per MWh, quantities whole thousandths of a MWh, and P&L the exact
//! product of the two: units of 10⁻⁵ dollars. Integers never drift, add up exactly in any order
//! and are stored as `BIGINT` on both databases. Binary floats appear only at the JSON edge,
//! where a value is printed with the shortest decimal that reads back to it (so `40.12` prints
//! as `40.12`), and incoming floats are read back through that same decimal text.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Why a decimal could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// Not a decimal number at all (letters, empty, several dots...).
    #[error("'{0}' is not a decimal number")]
    Malformed(String),
    /// NaN or an infinity.
    #[error("must be a finite number")]
    NotFinite,
    /// More fractional digits than the unit allows.
    #[error("has more than {0} decimal places")]
    TooManyDecimals(u32),
    /// Too large to represent.
    #[error("is out of range")]
    Overflow,
}

/// Reads a plain decimal (`-12.345`, `+3`, `.5`) into an integer scaled by `10^decimals`.
///
/// Trailing zeros beyond `decimals` are accepted because they do not change the value. Text that
/// is not a plain decimal but is a finite float (`1e3`) is read through its shortest decimal
/// form, which is exact for every float.
pub fn parse_scaled(text: &str, decimals: u32) -> Result<i64, DecimalError> {
    let s = text.trim();
    match parse_plain(s, decimals) {
        Ok(v) => Ok(v),
        Err(DecimalError::Malformed(_)) => {
            let lower = s.to_ascii_lowercase();
            if lower.contains("nan") || lower.contains("inf") {
                return Err(DecimalError::NotFinite);
            }
            // Only scientific notation gets a second chance; anything else stays malformed.
            if !lower.contains('e') {
                return Err(DecimalError::Malformed(text.to_string()));
            }
            let f: f64 = s
                .parse()
                .map_err(|_| DecimalError::Malformed(text.to_string()))?;
            scaled_from_f64(f, decimals)
        }
        Err(e) => Err(e),
    }
}

/// Converts a float (as read from JSON) into a scaled integer through its shortest decimal text.
pub fn scaled_from_f64(value: f64, decimals: u32) -> Result<i64, DecimalError> {
    if !value.is_finite() {
        return Err(DecimalError::NotFinite);
    }
    if value.abs() >= 1e15 {
        return Err(DecimalError::Overflow);
    }
    // `Display` for f64 never uses exponent notation and prints the shortest round-trip digits.
    parse_plain(&value.to_string(), decimals)
}

fn parse_plain(s: &str, decimals: u32) -> Result<i64, DecimalError> {
    let malformed = || DecimalError::Malformed(s.to_string());
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(malformed());
    }
    let significant = frac_part.trim_end_matches('0');
    if significant.len() > decimals as usize {
        return Err(DecimalError::TooManyDecimals(decimals));
    }
    let mut value: i64 = 0;
    for b in int_part.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or(DecimalError::Overflow)?;
    }
    let mut frac_digits = significant.bytes();
    for _ in 0..decimals {
        let digit = frac_digits.next().map_or(0, |b| i64::from(b - b'0'));
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(digit))
            .ok_or(DecimalError::Overflow)?;
    }
    Ok(if negative { -value } else { value })
}

/// Writes `value / 10^decimals` as a plain decimal without trailing zeros.
fn fmt_scaled(f: &mut fmt::Formatter<'_>, value: i64, decimals: u32) -> fmt::Result {
    let scale = 10i128.pow(decimals);
    let v = i128::from(value);
    let sign = if v < 0 { "-" } else { "" };
    let (int, frac) = (v.abs() / scale, v.abs() % scale);
    if frac == 0 {
        return write!(f, "{sign}{int}");
    }
    let digits = format!("{frac:0width$}", width = decimals as usize);
    write!(f, "{sign}{int}.{}", digits.trim_end_matches('0'))
}

/// Serialises a scaled integer as a JSON number. The float is the one nearest the exact decimal,
/// and JSON writers print it back as that same decimal.
fn to_json_number(value: i64, decimals: u32) -> f64 {
    value as f64 / 10f64.powi(decimals as i32)
}

/// A JSON number or a numeric string, so that clients may send either.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(f64),
    Text(String),
}

fn from_json<'de, D: Deserializer<'de>>(d: D, decimals: u32) -> Result<i64, D::Error> {
    let scaled = match NumberOrText::deserialize(d)? {
        NumberOrText::Number(n) => scaled_from_f64(n, decimals),
        NumberOrText::Text(t) => parse_scaled(&t, decimals),
    };
    scaled.map_err(serde::de::Error::custom)
}

macro_rules! scaled_type {
    ($(#[$doc:meta])* $name:ident, $decimals:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(i64);

        impl $name {
            /// Number of decimal places the unit keeps.
            pub const DECIMALS: u32 = $decimals;

            /// Builds the value from its scaled integer (the unit is `10^-DECIMALS`).
            pub const fn from_scaled(scaled: i64) -> Self {
                Self(scaled)
            }

            /// The scaled integer, as stored in the database.
            pub const fn scaled(self) -> i64 {
                self.0
            }

            /// Reads a decimal text, refusing more decimals than the unit keeps.
            pub fn parse(text: &str) -> Result<Self, DecimalError> {
                parse_scaled(text, Self::DECIMALS).map(Self)
            }

            /// Reads a float through its shortest decimal form (exact, never rounded).
            pub fn from_f64(value: f64) -> Result<Self, DecimalError> {
                scaled_from_f64(value, Self::DECIMALS).map(Self)
            }

            /// The value as the nearest float, for display only.
            pub fn to_f64(self) -> f64 {
                to_json_number(self.0, Self::DECIMALS)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt_scaled(f, self.0, Self::DECIMALS)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_f64(self.to_f64())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                from_json(d, Self::DECIMALS).map(Self)
            }
        }
    };
}

scaled_type!(
    /// A price in dollars per MWh, held in whole cents.
    Price,
    2
);
scaled_type!(
    /// A quantity of energy in MWh, held in thousandths of a MWh.
    Quantity,
    3
);
scaled_type!(
    /// Profit and loss in dollars, held exactly in units of 10⁻⁵ dollars (a cent times a
    /// thousandth of a MWh), so that it is the exact product of a price and a quantity.
    Pnl,
    5
);

impl Pnl {
    /// The P&L rounded to whole cents, half away from zero.
    pub fn round_to_cents(self) -> Price {
        let v = self.0;
        let q = (v.abs() + 500) / 1000;
        Price::from_scaled(if v < 0 { -q } else { q })
    }

    /// Adds two P&L values; `None` on overflow (far beyond any real book).
    pub fn checked_add(self, other: Pnl) -> Option<Pnl> {
        self.0.checked_add(other.0).map(Pnl)
    }
}

impl std::iter::Sum for Pnl {
    fn sum<I: Iterator<Item = Pnl>>(iter: I) -> Pnl {
        // Saturating: a book of 10^13 dollars is not a simulation anyone runs.
        Pnl(iter.fold(0i64, |acc, p| acc.saturating_add(p.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_decimals_exactly() {
        assert_eq!(Price::parse("40.12").map(Price::scaled), Ok(4012));
        assert_eq!(Price::parse("-3.5").map(Price::scaled), Ok(-350));
        assert_eq!(Price::parse(".5").map(Price::scaled), Ok(50));
        assert_eq!(Price::parse("7").map(Price::scaled), Ok(700));
        assert_eq!(Price::parse("7.100").map(Price::scaled), Ok(710));
        assert_eq!(Quantity::parse("0.001").map(Quantity::scaled), Ok(1));
        assert_eq!(Quantity::parse("1e3").map(Quantity::scaled), Ok(1_000_000));
    }

    #[test]
    fn refuses_bad_decimals() {
        assert_eq!(Price::parse("1.234"), Err(DecimalError::TooManyDecimals(2)));
        assert_eq!(Price::parse("NaN"), Err(DecimalError::NotFinite));
        assert_eq!(Price::parse("-inf"), Err(DecimalError::NotFinite));
        assert!(matches!(Price::parse(""), Err(DecimalError::Malformed(_))));
        assert!(matches!(
            Price::parse("1.2.3"),
            Err(DecimalError::Malformed(_))
        ));
        assert!(matches!(
            Price::parse("12abc"),
            Err(DecimalError::Malformed(_))
        ));
        assert!(matches!(Price::parse("-"), Err(DecimalError::Malformed(_))));
        assert_eq!(
            Price::parse("99999999999999999999"),
            Err(DecimalError::Overflow)
        );
    }

    #[test]
    fn floats_are_read_through_their_shortest_decimal() {
        assert_eq!(
            Price::from_f64(0.1 + 0.2).ok(),
            None,
            "0.30000000000000004 has 17 decimals"
        );
        assert_eq!(Price::from_f64(40.12).map(Price::scaled), Ok(4012));
        assert_eq!(Price::from_f64(f64::NAN), Err(DecimalError::NotFinite));
        assert_eq!(Quantity::from_f64(1e300), Err(DecimalError::Overflow));
    }

    #[test]
    fn displays_and_serialises_without_drift() {
        assert_eq!(Price::from_scaled(4012).to_string(), "40.12");
        assert_eq!(Price::from_scaled(-5).to_string(), "-0.05");
        assert_eq!(Quantity::from_scaled(1500).to_string(), "1.5");
        assert_eq!(Pnl::from_scaled(-123_456_789).to_string(), "-1234.56789");
        let json = serde_json::to_string(&Price::from_scaled(4012)).unwrap_or_default();
        assert_eq!(json, "40.12");
        let back: Price = serde_json::from_str("\"40.12\"").unwrap_or_default();
        assert_eq!(back.scaled(), 4012);
    }

    #[test]
    fn rounds_pnl_half_away_from_zero() {
        assert_eq!(Pnl::from_scaled(1500).round_to_cents().scaled(), 2);
        assert_eq!(Pnl::from_scaled(-1500).round_to_cents().scaled(), -2);
        assert_eq!(Pnl::from_scaled(1499).round_to_cents().scaled(), 1);
    }
}
