//! Due times: RFC 3339 with an explicit offset in, UTC milliseconds everywhere after.
//!
//! The seed compared ISO strings as text, so `-04:00` orders were moderated hours early. Here a
//! due time is parsed once into a UTC instant, truncated to the millisecond (the precision the
//! API shows and both databases keep identically), and never handled as text again.

use chrono::{DateTime, NaiveDate, SecondsFormat, Timelike, Utc};

/// Why a due time was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not RFC 3339, or without an offset (`2025-08-17T21:45:45` is ambiguous and refused).
    #[error("'{0}' is not an RFC 3339 time with an offset, e.g. 2025-08-17T21:45:45.000Z")]
    Malformed(String),
    /// Well formed, but the date is not in the calendar (`2029-02-29`, `2025-04-31`).
    #[error("'{0}': the date {1} does not exist")]
    NonexistentDate(String, String),
    /// Outside the years the simulator accepts.
    #[error("'{0}' is outside the accepted range 2000-01-01T00:00:00Z to 2099-12-31T23:59:59Z")]
    OutOfRange(String),
}

impl TimeError {
    /// A stable name of the rule that was broken, for API error codes.
    pub fn code(&self) -> &'static str {
        match self {
            TimeError::Malformed(_) => "invalid_time",
            TimeError::NonexistentDate(..) => "nonexistent_date",
            TimeError::OutOfRange(_) => "out_of_range",
        }
    }
}

/// `Some("YYYY-MM-DD")` when `text` starts with a date whose fields are each in their range
/// (month 1 to 12, day 1 to 31) but which the calendar does not have.
fn nonexistent_date(text: &str) -> Option<String> {
    let head = text.get(..10)?;
    let b = head.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if !(digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10)) {
        return None;
    }
    let year: i32 = head[..4].parse().ok()?;
    let month: u32 = head[5..7].parse().ok()?;
    let day: u32 = head[8..10].parse().ok()?;
    let plausible = (1..=12).contains(&month) && (1..=31).contains(&day);
    (plausible && NaiveDate::from_ymd_opt(year, month, day).is_none()).then(|| head.to_string())
}

/// Parses an RFC 3339 time that carries an offset (`Z` or `±hh:mm`), normalised to UTC and
/// truncated to milliseconds. Years before 2000 or after 2099 are refused.
pub fn parse_due_time(text: &str) -> Result<DateTime<Utc>, TimeError> {
    let trimmed = text.trim();
    let parsed = DateTime::parse_from_rfc3339(trimmed)
        .map_err(|_| match nonexistent_date(trimmed) {
            Some(date) => TimeError::NonexistentDate(text.to_string(), date),
            None => TimeError::Malformed(text.to_string()),
        })?
        .with_timezone(&Utc);
    if in_due_range(parsed) {
        Ok(truncate_ms(parsed))
    } else {
        Err(TimeError::OutOfRange(text.to_string()))
    }
}

/// Whether a due time lies in the accepted range, 2000-01-01T00:00:00Z (inclusive) to
/// 2100-01-01T00:00:00Z (exclusive): the one rule every way of creating an order applies.
pub fn in_due_range(t: DateTime<Utc>) -> bool {
    let lower = NaiveDate::from_ymd_opt(2000, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0));
    let upper = NaiveDate::from_ymd_opt(2100, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0));
    matches!((lower, upper), (Some(lo), Some(hi)) if t.naive_utc() >= lo && t.naive_utc() < hi)
}

/// Drops everything below the millisecond (and folds a leap second's extra nanoseconds).
pub fn truncate_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    let millis = (t.nanosecond() % 1_000_000_000) / 1_000_000;
    t.with_nanosecond(millis * 1_000_000).unwrap_or(t)
}

/// Formats a time as the API writes it: RFC 3339, UTC, milliseconds, `Z`.
pub fn format_ms(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Serde helpers writing times with [`format_ms`] and reading them with [`parse_due_time`].
pub mod serde_ms {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises a time as `2025-08-17T21:45:45.000Z`.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_ms(t))
    }

    /// Reads an RFC 3339 time with an offset.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        parse_due_time(&text).map_err(serde::de::Error::custom)
    }

    /// The same for optional times (`null` when absent).
    pub mod option {
        use super::*;
        use serde::Serialize;

        /// Serialises `Some(t)` as [`format_ms`] and `None` as `null`.
        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            t.as_ref().map(format_ms).serialize(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_offsets_to_utc_milliseconds() {
        let cases = [
            ("2025-08-17T21:45:45.000Z", "2025-08-17T21:45:45.000Z"),
            ("2025-08-17T17:45:45-04:00", "2025-08-17T21:45:45.000Z"),
            (
                "2025-08-18T03:15:45.123456+05:30",
                "2025-08-17T21:45:45.123Z",
            ),
            ("2025-08-17t21:45:45.9999z", "2025-08-17T21:45:45.999Z"),
        ];
        for (input, want) in cases {
            let got = parse_due_time(input).map(|t| format_ms(&t));
            assert_eq!(got.as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn refuses_times_without_offset_or_out_of_range() {
        for bad in [
            "2025-08-17T21:45:45",
            "2025-08-17",
            "tomorrow",
            "",
            "2025-08-17T21:45:45+25:00",
        ] {
            assert!(
                matches!(parse_due_time(bad), Err(TimeError::Malformed(_))),
                "{bad}"
            );
        }
        for missing in ["2029-02-29T12:00:00Z", "2025-04-31T00:00:00+02:00"] {
            let e = parse_due_time(missing);
            assert!(
                matches!(e, Err(TimeError::NonexistentDate(..))),
                "{missing}: {e:?}"
            );
            assert!(e
                .err()
                .is_some_and(|e| e.to_string().contains("does not exist")));
        }
        assert!(
            parse_due_time("2028-02-29T12:00:00Z").is_ok(),
            "2028 is a leap year"
        );
        for far in [
            "1999-12-31T23:59:59Z",
            "2100-01-01T00:00:00Z",
            "9999-01-01T00:00:00Z",
        ] {
            assert!(
                matches!(parse_due_time(far), Err(TimeError::OutOfRange(_))),
                "{far}"
            );
        }
    }
}
