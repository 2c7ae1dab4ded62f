//! Exact money and quantity arithmetic on scaled integers.
//!
//! Prices are whole cents per MWh, quantities whole thousandths of a MWh, and P&L the exact
//! product of the two: units of 10⁻⁵ dollars. Integers never drift, add up exactly in any order
//! and are stored as `BIGINT` on both databases. No binary float takes part at the JSON edge
//! either: a value is written as the exact decimal of its scaled integer (a JSON number token,
//! `68749930625.00625`), and a JSON number is read from its exact text, under the same rules as
//! a decimal string (`9999.999999999999999` has too many decimals, whichever way it is sent).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Why a decimal could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// Not a decimal number at all (letters, empty, several dots...).
    #[error("'{0}' is not a decimal number (write it like 12.5)")]
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

impl DecimalError {
    /// A stable name of the rule that was broken, for API error codes.
    pub fn code(&self) -> &'static str {
        match self {
            DecimalError::Malformed(_) => "not_a_decimal",
            DecimalError::NotFinite => "not_finite",
            DecimalError::TooManyDecimals(_) => "too_many_decimals",
            DecimalError::Overflow => "out_of_range",
        }
    }
}

/// Reads a decimal (`-12.345`, `+3`, `.5`, `1.5e3`, the text of a JSON number) exactly into an
/// integer scaled by `10^decimals`.
///
/// Trailing zeros beyond `decimals` are accepted because they do not change the value; any
/// other digit beyond them is refused, never rounded. An exponent shifts the decimal point
/// exactly (no float is involved). `NaN` and infinities are named as such; any other text that
/// is not a decimal is malformed (`banana` is not "not finite").
pub fn parse_scaled(text: &str, decimals: u32) -> Result<i64, DecimalError> {
    let s = text.trim();
    let unsigned = s.trim_start_matches(['+', '-']).to_ascii_lowercase();
    if matches!(unsigned.as_str(), "nan" | "inf" | "infinity") {
        return Err(DecimalError::NotFinite);
    }
    parse_exact(s, decimals).map_err(|e| match e {
        DecimalError::Malformed(_) => DecimalError::Malformed(text.to_string()),
        other => other,
    })
}

/// Largest exponent magnitude considered; beyond it a non-zero value is out of range (or has
/// too many decimals) whatever its digits.
const MAX_EXPONENT: i64 = 1_000;

/// Mantissa with an optional exponent, the point shifted exactly.
fn parse_exact(s: &str, decimals: u32) -> Result<i64, DecimalError> {
    let malformed = || DecimalError::Malformed(s.to_string());
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        None => (s, 0i64),
        Some(i) => {
            let e = &s[i + 1..];
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed());
            }
            // Saturate: "1e99999999999" is simply out of range.
            let trimmed = digits.trim_start_matches('0');
            let magnitude = if trimmed.is_empty() {
                0
            } else {
                trimmed.parse::<i64>().unwrap_or(i64::MAX).min(MAX_EXPONENT)
            };
            (
                &s[..i],
                if e.starts_with('-') {
                    -magnitude
                } else {
                    magnitude
                },
            )
        }
    };
    let (negative, body) = match mantissa.as_bytes().first() {
        Some(b'-') => (true, &mantissa[1..]),
        Some(b'+') => (false, &mantissa[1..]),
        _ => (false, mantissa),
    };
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(malformed());
    }
    // The value is digits × 10^(exponent − fractional digits).
    let all = format!("{int_part}{frac_part}");
    let digits = all.trim_start_matches('0');
    let significant = digits.trim_end_matches('0');
    if significant.is_empty() {
        return Ok(0);
    }
    let trailing_zeros = (digits.len() - significant.len()) as i64;
    // Power of ten the significant digits are multiplied by, before scaling.
    let power = exponent - frac_part.len() as i64 + trailing_zeros;
    let shift = power + i64::from(decimals);
    if shift < 0 {
        return Err(DecimalError::TooManyDecimals(decimals));
    }
    if shift + significant.len() as i64 > 19 {
        return Err(DecimalError::Overflow);
    }
    let mut value: i64 = 0;
    for b in significant.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or(DecimalError::Overflow)?;
    }
    for _ in 0..shift {
        value = value.checked_mul(10).ok_or(DecimalError::Overflow)?;
    }
    Ok(if negative { -value } else { value })
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
    parse_exact(&value.to_string(), decimals)
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

/// A scaled integer as an exact JSON number token: the decimal of the scaled integer, with
/// `.0` on whole values (as the original system's floats printed them). Written through
/// serde_json's raw values, so no float is involved; other serialisers get the nearest float.
fn serialize_exact<S: Serializer>(value: i64, decimals: u32, s: S) -> Result<S::Ok, S::Error> {
    let mut text = Scaled(value, decimals).to_string();
    if !text.contains('.') {
        text.push_str(".0");
    }
    match serde_json::value::RawValue::from_string(text) {
        Ok(raw) => raw.serialize(s),
        Err(_) => s.serialize_f64(to_json_number(value, decimals)),
    }
}

/// Displays a scaled integer.
struct Scaled(i64, u32);

impl fmt::Display for Scaled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_scaled(f, self.0, self.1)
    }
}

/// The nearest float, for display only.
fn to_json_number(value: i64, decimals: u32) -> f64 {
    value as f64 / 10f64.powi(decimals as i32)
}

/// Why a JSON value could not be read as a decimal: the rule broken, or the JSON type it had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonDecimalError {
    /// A number or numeric string that breaks a decimal rule.
    #[error(transparent)]
    Decimal(#[from] DecimalError),
    /// Neither a number nor a string (`true`, `null`, an object, an array).
    #[error("must be a decimal number or a decimal string such as \"12.5\", not {0}")]
    WrongType(&'static str),
}

impl JsonDecimalError {
    /// A stable name of the rule that was broken, for API error codes.
    pub fn code(&self) -> &'static str {
        match self {
            JsonDecimalError::Decimal(e) => e.code(),
            JsonDecimalError::WrongType(_) => "wrong_type",
        }
    }
}

/// Reads the exact text of one JSON value (a number token or a string) into a scaled integer,
/// under the same rules for both forms.
pub fn scaled_from_json_text(raw: &str, decimals: u32) -> Result<i64, JsonDecimalError> {
    let raw = raw.trim();
    match raw.as_bytes().first() {
        Some(b'"') => {
            let text: String =
                serde_json::from_str(raw).map_err(|_| DecimalError::Malformed(raw.to_string()))?;
            Ok(parse_scaled(&text, decimals)?)
        }
        Some(b'-' | b'0'..=b'9') => Ok(parse_exact(raw, decimals)?),
        Some(b't' | b'f') => Err(JsonDecimalError::WrongType("a boolean")),
        Some(b'n') => Err(JsonDecimalError::WrongType("null")),
        Some(b'[') => Err(JsonDecimalError::WrongType("an array")),
        Some(b'{') => Err(JsonDecimalError::WrongType("an object")),
        _ => Err(DecimalError::Malformed(raw.to_string()).into()),
    }
}

/// Deserialises through serde_json's raw value, so a JSON number keeps its exact text (a
/// float would already have rounded `40.1200000000000001` to `40.12`).
fn from_json<'de, D: Deserializer<'de>>(d: D, decimals: u32) -> Result<i64, D::Error> {
    let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
    scaled_from_json_text(raw.get(), decimals).map_err(serde::de::Error::custom)
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

            /// Reads the exact text of a JSON value (a number token or a string).
            pub fn from_json_text(raw: &str) -> Result<Self, JsonDecimalError> {
                scaled_from_json_text(raw, Self::DECIMALS).map(Self)
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
                serialize_exact(self.0, Self::DECIMALS, s)
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
        assert_eq!(Price::parse("4012e-2").map(Price::scaled), Ok(4012));
        assert_eq!(Price::parse("0.00e5").map(Price::scaled), Ok(0));
        assert_eq!(Price::parse("1E+2").map(Price::scaled), Ok(10_000));
    }

    /// Issue 12 item 4: JSON numbers are read from their exact text under the same rules as
    /// strings, and money is written as the exact decimal.
    #[test]
    fn json_numbers_are_exact_both_ways() {
        for text in ["9999.999999999999999", "40.1200000000000001", "1.001"] {
            let number: Result<Price, _> = serde_json::from_str(text);
            let string: Result<Price, _> = serde_json::from_str(&format!("\"{text}\""));
            assert!(number.is_err(), "{text} as a number was accepted");
            assert!(string.is_err(), "{text} as a string was accepted");
            assert_eq!(
                Price::from_json_text(text).err().map(|e| e.code()),
                Some("too_many_decimals")
            );
        }
        let total = Pnl::from_scaled(6_874_993_062_500_625);
        assert_eq!(
            serde_json::to_string(&total).unwrap_or_default(),
            "68749930625.00625"
        );
        assert_eq!(
            serde_json::to_string(&Price::from_scaled(700)).unwrap_or_default(),
            "7.0"
        );
        let in_value = serde_json::json!({ "p": Price::from_scaled(4012) });
        assert_eq!(in_value["p"], 40.12);
        let back: Price = serde_json::from_str("4.012e1").unwrap_or_default();
        assert_eq!(back.scaled(), 4012);
        let wrong = Price::from_json_text("true").err();
        assert_eq!(wrong.as_ref().map(|e| e.code()), Some("wrong_type"));
        assert!(!wrong
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("NumberOrText"));
    }

    #[test]
    fn refuses_bad_decimals() {
        assert_eq!(Price::parse("1.234"), Err(DecimalError::TooManyDecimals(2)));
        assert_eq!(Price::parse("NaN"), Err(DecimalError::NotFinite));
        assert!(
            matches!(Quantity::parse("banana"), Err(DecimalError::Malformed(_))),
            "banana is not a decimal, whatever letters it contains"
        );
        assert!(matches!(
            Price::parse("1e"),
            Err(DecimalError::Malformed(_))
        ));
        assert_eq!(
            Price::parse("1e99999999999999999"),
            Err(DecimalError::Overflow)
        );
        assert_eq!(
            Price::parse("1e-999999"),
            Err(DecimalError::TooManyDecimals(2))
        );
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
