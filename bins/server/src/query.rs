//! Strict query-string parsing for the original system's routes: every parameter at most
//! once, no unknown names, valid UTF-8. FastAPI silently took the last of repeated
//! parameters; we refuse them, so that a client never gets an order other than the one it
//! believes it sent.

use crate::error::ApiError;
use std::collections::HashMap;

/// Decodes one `application/x-www-form-urlencoded` component, refusing invalid UTF-8 (which
/// a lossy decoder would turn into replacement characters and store).
fn decode(raw: &str) -> Result<String, ApiError> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::BadRequest {
            code: "invalid_query",
            detail: "query string is not valid UTF-8 once percent-decoded".into(),
        })
}

/// Parameters of one request, by name.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses `query`, allowing only the names in `allowed`.
    pub fn parse(query: &str, allowed: &[&str]) -> Result<Self, ApiError> {
        let mut map = HashMap::new();
        for piece in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            let (name, value) = (decode(name)?, decode(value)?);
            if !allowed.contains(&name.as_str()) {
                return Err(ApiError::BadRequest {
                    code: "unknown_parameter",
                    detail: format!(
                        "unknown parameter '{name}'; allowed: {}",
                        allowed.join(", ")
                    ),
                });
            }
            if map.insert(name.clone(), value).is_some() {
                return Err(ApiError::BadRequest {
                    code: "repeated_parameter",
                    detail: format!("parameter '{name}' given more than once"),
                });
            }
        }
        Ok(Params(map))
    }

    /// The raw value, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Parses a value with `FromStr`, naming the parameter on failure; `None` if absent.
    pub fn parsed<T>(&self, name: &str) -> Result<Option<T>, ApiError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        self.get(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| ApiError::invalid(format!("{name}: {e}")))
            })
            .transpose()
    }

    /// An integer within `[min, max]`, or `default` if absent.
    pub fn int_in(&self, name: &str, default: i64, min: i64, max: i64) -> Result<i64, ApiError> {
        let v = match self.get(name) {
            None => default,
            Some(raw) => raw
                .trim()
                .parse::<i64>()
                .map_err(|_| ApiError::BadRequest {
                    code: "not_an_integer",
                    detail: format!("{name}: '{raw}' is not a whole number"),
                })?,
        };
        if (min..=max).contains(&v) {
            Ok(v)
        } else {
            Err(ApiError::BadRequest {
                code: "out_of_range",
                detail: format!("{name} must be between {min} and {max}, got {v}"),
            })
        }
    }

    /// A finite float, or `default` if absent.
    pub fn finite(&self, name: &str, default: f64) -> Result<f64, ApiError> {
        let v = match self.get(name) {
            None => default,
            Some(raw) => raw
                .trim()
                .parse::<f64>()
                .map_err(|_| ApiError::BadRequest {
                    code: "not_a_number",
                    detail: format!("{name}: '{raw}' is not a number"),
                })?,
        };
        if v.is_finite() {
            Ok(v)
        } else {
            Err(ApiError::BadRequest {
                code: "not_finite",
                detail: format!("{name} must be a finite number"),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_repeats_unknowns_and_bad_encoding() {
        assert!(Params::parse("a=1&b=2", &["a", "b"]).is_ok());
        assert_eq!(
            Params::parse("a=1&a=2", &["a"]).err().map(|e| e.code()),
            Some("repeated_parameter")
        );
        assert_eq!(
            Params::parse("z=1", &["a"]).err().map(|e| e.code()),
            Some("unknown_parameter")
        );
        assert_eq!(
            Params::parse("a=%FF", &["a"]).err().map(|e| e.code()),
            Some("invalid_query")
        );
        let p = Params::parse("n=5&x=inf", &["n", "x"]).unwrap_or_default();
        assert_eq!(p.int_in("n", 1, 0, 10).ok(), Some(5));
        assert!(p.int_in("n", 1, 6, 10).is_err());
        assert_eq!(
            p.finite("x", 0.0).err().map(|e| e.code()),
            Some("not_finite")
        );
        let banana = Params::parse("q=banana", &["q"]).unwrap_or_default();
        let e = banana.finite("q", 0.0).err();
        assert_eq!(e.as_ref().map(|e| e.code()), Some("not_a_number"));
        assert!(!e
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("finite"));
        assert_eq!(p.finite("y", 2.5).ok(), Some(2.5));
    }
}
