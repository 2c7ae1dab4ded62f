//! Decimal text to whole cents, exactly: no binary float is involved, so `41.005` is read as
//! the decimal it says, not as the nearest double (which is just below it).
//!
//! Digits past the second decimal are rounded half away from zero: `41.005` → 41.01,
//! `-41.005` → -41.01, `41.0049` → 41.00. ISO exports carry up to five or six decimals; one
//! cent is the precision of every price column in this project.

/// Why a price text is not a decimal number of dollars.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CentsError {
    /// Not a plain decimal (`-12.345`, `+3`, `.5`): empty, letters, exponent, several dots.
    #[error("not a decimal number")]
    Malformed,
    /// Beyond ±10¹⁵ $/MWh.
    #[error("out of range")]
    Overflow,
}

/// Largest magnitude accepted, in cents (10¹⁵ dollars: far beyond any price, far from `i64`).
const MAX_CENTS: i64 = 100_000_000_000_000_000;

/// Reads `text` (surrounding spaces allowed) as dollars and returns cents, rounding digits past
/// the second decimal half away from zero.
pub fn parse_cents(text: &str) -> Result<i64, CentsError> {
    let s = text.trim();
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty()) || !digits(int_part) || !digits(frac_part) {
        return Err(CentsError::Malformed);
    }
    let mut cents: i64 = 0;
    for b in int_part.bytes() {
        cents = cents
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .filter(|v| *v <= MAX_CENTS)
            .ok_or(CentsError::Overflow)?;
    }
    let mut frac = frac_part.bytes().map(|b| i64::from(b - b'0'));
    let tenths = frac.next().unwrap_or(0);
    let hundredths = frac.next().unwrap_or(0);
    // The magnitude's remainder is at least half a cent exactly when its first digit is >= 5.
    let round_up = frac.next().is_some_and(|d| d >= 5);
    cents = cents
        .checked_mul(100)
        .and_then(|v| v.checked_add(tenths * 10 + hundredths + i64::from(round_up)))
        .filter(|v| *v <= MAX_CENTS)
        .ok_or(CentsError::Overflow)?;
    Ok(if negative { -cents } else { cents })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_rounded_values() {
        for (text, want) in [
            ("41.23", 4123),
            ("41.2", 4120),
            ("41", 4100),
            (" 41.230000 ", 4123),
            (".5", 50),
            ("+3", 300),
            ("0", 0),
            ("-0.004", 0),
            ("-12.5", -1250),
            ("41.005", 4101),
            ("-41.005", -4101),
            ("41.00499999", 4100),
            ("0.015", 2),
            ("-0.015", -2),
            ("1.999", 200),
            ("-1.995", -200),
            ("22.1234567", 2212),
        ] {
            assert_eq!(parse_cents(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn junk_is_refused() {
        for text in [
            "", " ", "-", ".", "1.2.3", "abc", "1e3", "NaN", "inf", "4 1", "--1", "1,5",
        ] {
            assert_eq!(parse_cents(text), Err(CentsError::Malformed), "{text:?}");
        }
        assert_eq!(
            parse_cents("99999999999999999999999"),
            Err(CentsError::Overflow)
        );
        assert_eq!(
            parse_cents("1000000000000000.01"),
            Err(CentsError::Overflow)
        );
    }
}
