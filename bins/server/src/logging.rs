//! Log output: the default text lines (env_logger's), or `--log-format json`, one JSON object
//! per line for log collectors.
//!
//! A JSON line has `timestamp` (RFC 3339 UTC, milliseconds), `level`, `target` and `message`,
//! plus the fields a collector filters on, when the line carries them: `instance` (this
//! process's instance id once the server knows it, else one named in the message), `order_id`,
//! `due`, `lateness_ms`, and for request logs `method`, `path`, `status` and `duration_ms`.
//! The scheduler and actix write plain messages, so these fields are read from the message's
//! fixed shapes (`instance X`, a UUID, an RFC 3339 time, actix's `"GET /p HTTP/1.1" 200 .. 3ms`
//! as configured in `app.rs`); the message itself is always kept whole.

use clap::ValueEnum;
use serde_json::{Map, Value};
use std::io::Write;
use std::sync::OnceLock;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The default filter: our info lines, actix's request and server lines only on warnings.
pub const DEFAULT_FILTER: &str = "info,actix_web::middleware::logger=warn,actix_server=warn";

static INSTANCE: OnceLock<String> = OnceLock::new();

/// Names this process in every JSON line from now on (the server calls it once it has its
/// instance id).
pub fn set_instance(id: &str) {
    let _ = INSTANCE.set(id.to_string());
}

/// Installs the logger (once per process) with `RUST_LOG` or [`DEFAULT_FILTER`].
pub fn init(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(DEFAULT_FILTER));
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let line = json_line(
                chrono::Utc::now(),
                record.level().as_str(),
                record.target(),
                &record.args().to_string(),
            );
            writeln!(buf, "{line}")
        });
    }
    // A second call (tests building several applications) keeps the first logger.
    let _ = builder.try_init();
}

/// One JSON log line (without the newline).
pub fn json_line(
    at: chrono::DateTime<chrono::Utc>,
    level: &str,
    target: &str,
    message: &str,
) -> String {
    let mut m = Map::new();
    m.insert("timestamp".into(), orders::format_ms(&at).into());
    m.insert("level".into(), level.into());
    m.insert("target".into(), target.into());
    m.insert("message".into(), message.into());
    let instance = INSTANCE
        .get()
        .cloned()
        .or_else(|| word_after(message, "instance "));
    if let Some(i) = instance {
        m.insert("instance".into(), i.into());
    }
    if let Some(id) = find_uuid(message) {
        m.insert("order_id".into(), id.into());
    }
    if let Some(due) = find_time(message) {
        m.insert("due".into(), due.into());
    }
    if let Some(ms) = number_after(message, "lateness ") {
        m.insert("lateness_ms".into(), ms);
    }
    if target.starts_with("actix_web::middleware::logger") {
        request_fields(message, &mut m);
    }
    Value::Object(m).to_string()
}

/// The word following `prefix`, without trailing punctuation.
fn word_after(message: &str, prefix: &str) -> Option<String> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        .collect();
    let word = word.trim_end_matches(['.', ':']).to_string();
    (!word.is_empty()).then_some(word)
}

/// The number (optionally followed by `ms`) after `prefix`.
fn number_after(message: &str, prefix: &str) -> Option<Value> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    let rest = rest.trim_start_matches(['=', ':', ' ']);
    let num: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let v: f64 = num.parse().ok()?;
    serde_json::Number::from_f64(v).map(Value::Number)
}

/// The first UUID (8-4-4-4-12 hex digits) in the message: order ids are UUIDv7.
fn find_uuid(message: &str) -> Option<String> {
    let b = message.as_bytes();
    (0..b.len().saturating_sub(35)).find_map(|i| {
        let cand = b.get(i..i + 36)?;
        let boundary_ok = i == 0 || !b[i - 1].is_ascii_hexdigit();
        let shape_ok = cand.iter().enumerate().all(|(k, c)| match k {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
        (boundary_ok && shape_ok).then(|| String::from_utf8_lossy(cand).into_owned())
    })
}

/// The first RFC 3339 time (`2025-08-17T21:45:45.000Z` and the like) in the message.
fn find_time(message: &str) -> Option<String> {
    let b = message.as_bytes();
    (0..b.len()).find_map(|i| {
        let head = b.get(i..i + 11)?;
        let shape = head.iter().enumerate().all(|(k, c)| match k {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            _ => c.is_ascii_digit(),
        });
        if !shape || (i > 0 && b[i - 1].is_ascii_digit()) {
            return None;
        }
        let end = b[i..]
            .iter()
            .position(|c| {
                !(c.is_ascii_digit() || matches!(c, b'-' | b':' | b'.' | b'T' | b'Z' | b'+'))
            })
            .map_or(b.len(), |n| i + n);
        let text = message[i..end].trim_end_matches([':', '.']);
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|_| text.to_string())
    })
}

/// Method, path, status and duration from actix's request line, as `app.rs` formats it:
/// `<peer> "<METHOD> <path> <version>" <status> <bytes> <ms>ms`.
fn request_fields(message: &str, m: &mut Map<String, Value>) {
    let Some((_, rest)) = message.split_once('"') else {
        return;
    };
    let Some((request, tail)) = rest.split_once('"') else {
        return;
    };
    let mut parts = request.split(' ');
    if let (Some(method), Some(path)) = (parts.next(), parts.next()) {
        m.insert("method".into(), method.into());
        // The query string may carry values; the path is what routes are matched on.
        let path = path.split('?').next().unwrap_or(path);
        m.insert("path".into(), path.into());
    }
    let mut tail = tail.split_whitespace();
    if let Some(status) = tail.next().and_then(|s| s.parse::<u16>().ok()) {
        m.insert("status".into(), status.into());
    }
    if let Some(ms) = tail
        .nth(1)
        .and_then(|d| d.strip_suffix("ms"))
        .and_then(|d| d.parse::<f64>().ok())
        .and_then(serde_json::Number::from_f64)
    {
        m.insert("duration_ms".into(), Value::Number(ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(level: &str, target: &str, message: &str) -> Value {
        let at = chrono::DateTime::parse_from_rfc3339("2031-01-01T00:00:00.123Z")
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_default();
        serde_json::from_str(&json_line(at, level, target, message)).unwrap_or_default()
    }

    #[test]
    fn scheduler_lines_carry_their_fields() {
        let v = parse(
            "INFO",
            "scheduler::pass",
            "🤖 Auto-moderating 3 orders for 2031-01-01T02:00:00.000Z (instance ab12cd34)",
        );
        assert_eq!(v["timestamp"], "2031-01-01T00:00:00.123Z");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "scheduler::pass");
        assert_eq!(v["due"], "2031-01-01T02:00:00.000Z");
        assert!(v["message"]
            .as_str()
            .is_some_and(|m| m.contains("Auto-moderating")));
        let v = parse(
            "ERROR",
            "scheduler::pass",
            "parked order 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b: lateness 12.5 ms",
        );
        assert_eq!(v["order_id"], "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
        assert_eq!(v["lateness_ms"], 12.5);
        assert!(v.get("due").is_none());
    }

    #[test]
    fn request_lines_carry_method_path_status_and_duration() {
        let v = parse(
            "INFO",
            "actix_web::middleware::logger",
            "127.0.0.1:5000 \"GET /api/v1/orders?limit=5 HTTP/1.1\" 200 1234 3.25ms",
        );
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/api/v1/orders");
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration_ms"], 3.25);
    }
}
