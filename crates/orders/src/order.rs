//! Orders: a validated [`NewOrder`], a stored [`Order`], a moderation [`Decision`] and the
//! audit trail's [`OrderEvent`].

use crate::{
    kinds::{LocationType, Market, OrderStatus, Side},
    money::{DecimalError, Pnl, Price, Quantity},
    time::{format_ms, parse_due_time, serde_ms, TimeError},
};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A field of a new order that failed validation: the field, the rule it broke (a stable code)
/// and a message meant for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The field, by its API name (`qty_mwh`, `hour_start_utc`, ...).
    pub field: &'static str,
    /// What was wrong, for a program: `missing_parameter`, `not_a_decimal`,
    /// `too_many_decimals`, `out_of_range`, `nonexistent_date`, `invalid_side`, ...
    pub code: &'static str,
    /// What is wrong and what would be accepted.
    pub message: String,
}

impl ValidationError {
    /// Builds an error for `field` with the generic code `invalid_parameter`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self::with_code(field, "invalid_parameter", message)
    }

    /// Builds an error for `field` that broke the rule named `code`.
    pub fn with_code(field: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            code,
            message: message.into(),
        }
    }

    /// A decimal field that could not be read.
    pub fn decimal(field: &'static str, e: DecimalError) -> Self {
        Self::with_code(field, e.code(), e.to_string())
    }

    /// A due-time field that could not be read.
    pub fn time(field: &'static str, e: TimeError) -> Self {
        Self::with_code(field, e.code(), e.to_string())
    }
}

/// Largest quantity one order may carry, in MWh.
pub const MAX_QTY_MWH: i64 = 10_000;
/// Lowest accepted limit price, $/MWh.
pub const MIN_LIMIT_PRICE: i64 = -1_000;
/// Highest accepted limit price, $/MWh.
pub const MAX_LIMIT_PRICE: i64 = 10_000;

/// A pricing location: 1 to 64 letters, digits, `-`, `_` or `.` (such as `PJM-RTO`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Location(String);

impl Location {
    /// The original system's default location.
    pub const DEFAULT: &'static str = "PJM-RTO";

    /// Validates a location name.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let ok_len = (1..=64).contains(&text.len());
        let ok_chars = text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok_len && ok_chars {
            Ok(Self(text.to_string()))
        } else {
            Err(ValidationError::with_code(
                "location",
                "invalid_location",
                "must be 1 to 64 characters of letters, digits, '-', '_' or '.'",
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new order that passed every check; the only way to build one is through validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    side: Side,
    qty_mwh: Quantity,
    limit_price: Price,
    location: Location,
    location_type: LocationType,
    hour_start_utc: DateTime<Utc>,
}

/// The fields of a new order as text, the way the original system's query-string route receives them.
#[derive(Debug, Clone, Default)]
pub struct NewOrderFields<'a> {
    /// `BUY` or `SELL`, any case.
    pub side: Option<&'a str>,
    /// MWh, up to three decimals.
    pub qty_mwh: Option<&'a str>,
    /// $/MWh, up to two decimals.
    pub limit_price: Option<&'a str>,
    /// RFC 3339 with an offset.
    pub hour_start_utc: Option<&'a str>,
    /// Defaults to `PJM-RTO`.
    pub location: Option<&'a str>,
    /// Defaults to `ZONE`.
    pub location_type: Option<&'a str>,
}

fn required<'a>(field: &'static str, v: Option<&'a str>) -> Result<&'a str, ValidationError> {
    v.ok_or_else(|| ValidationError::with_code(field, "missing_parameter", "is required"))
}

impl NewOrder {
    /// Checks typed values against the order rules: quantity in (0, 10 000] MWh, limit price
    /// in [-1 000, 10 000] $/MWh, due time in 2000–2099 (UTC). Every way into the store —
    /// the API, the command line, an embedding service — builds its orders here.
    pub fn new(
        side: Side,
        qty_mwh: Quantity,
        limit_price: Price,
        location: Location,
        location_type: LocationType,
        hour_start_utc: DateTime<Utc>,
    ) -> Result<Self, ValidationError> {
        if qty_mwh.scaled() <= 0 || qty_mwh.scaled() > MAX_QTY_MWH * 1000 {
            return Err(ValidationError::with_code(
                "qty_mwh",
                "out_of_range",
                format!("must be greater than 0 and at most {MAX_QTY_MWH} MWh"),
            ));
        }
        if limit_price.scaled() < MIN_LIMIT_PRICE * 100
            || limit_price.scaled() > MAX_LIMIT_PRICE * 100
        {
            return Err(ValidationError::with_code(
                "limit_price",
                "out_of_range",
                format!("must be between {MIN_LIMIT_PRICE} and {MAX_LIMIT_PRICE} $/MWh"),
            ));
        }
        if !crate::time::in_due_range(hour_start_utc) {
            return Err(ValidationError::with_code(
                "hour_start_utc",
                "out_of_range",
                "must be from 2000-01-01T00:00:00Z to before 2100-01-01T00:00:00Z",
            ));
        }
        Ok(Self {
            side,
            qty_mwh,
            limit_price,
            location,
            location_type,
            hour_start_utc: crate::time::truncate_ms(hour_start_utc),
        })
    }

    /// Validates text fields (the original system's query parameters), reporting the first bad field.
    pub fn from_fields(f: &NewOrderFields<'_>) -> Result<Self, ValidationError> {
        let side = required("side", f.side)?
            .parse::<Side>()
            .map_err(|e| ValidationError::with_code("side", "invalid_side", e.to_string()))?;
        let qty = Quantity::parse(required("qty_mwh", f.qty_mwh)?)
            .map_err(|e| ValidationError::decimal("qty_mwh", e))?;
        let price = Price::parse(required("limit_price", f.limit_price)?)
            .map_err(|e| ValidationError::decimal("limit_price", e))?;
        let due = parse_due_time(required("hour_start_utc", f.hour_start_utc)?)
            .map_err(|e| ValidationError::time("hour_start_utc", e))?;
        let location = Location::parse(f.location.unwrap_or(Location::DEFAULT))?;
        let location_type = f
            .location_type
            .unwrap_or("ZONE")
            .parse::<LocationType>()
            .map_err(|e| {
                ValidationError::with_code("location_type", "invalid_location_type", e.to_string())
            })?;
        Self::new(side, qty, price, location, location_type, due)
    }

    /// BUY or SELL.
    pub fn side(&self) -> Side {
        self.side
    }
    /// Quantity in MWh.
    pub fn qty_mwh(&self) -> Quantity {
        self.qty_mwh
    }
    /// Limit price in $/MWh.
    pub fn limit_price(&self) -> Price {
        self.limit_price
    }
    /// Pricing location.
    pub fn location(&self) -> &Location {
        &self.location
    }
    /// Kind of location.
    pub fn location_type(&self) -> LocationType {
        self.location_type
    }
    /// Due time, UTC, whole milliseconds.
    pub fn hour_start_utc(&self) -> DateTime<Utc> {
        self.hour_start_utc
    }
}

/// A stored order, as the original system's API shows it (same field names, times as
/// `2025-08-17T21:45:45.000Z`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Order {
    /// Text id (a UUIDv7, so ids sort by creation).
    pub id: String,
    /// When the order was stored.
    #[serde(with = "serde_ms")]
    pub created_at: DateTime<Utc>,
    /// Always `DA`.
    pub market: Market,
    /// Kind of location.
    pub location_type: LocationType,
    /// Pricing location.
    #[cfg_attr(feature = "utoipa", schema(pattern = r"^[A-Za-z0-9._-]{1,64}$"))]
    pub location: String,
    /// Due time: the scheduler moderates the order at this instant.
    #[serde(with = "serde_ms")]
    pub hour_start_utc: DateTime<Utc>,
    /// BUY or SELL.
    pub side: Side,
    /// MWh.
    #[cfg_attr(feature = "utoipa", schema(value_type = f64, exclusive_minimum = 0, maximum = 10000, multiple_of = 0.001))]
    pub qty_mwh: Quantity,
    /// $/MWh.
    #[cfg_attr(feature = "utoipa", schema(value_type = f64, minimum = -1000, maximum = 10000, multiple_of = 0.01))]
    pub limit_price: Price,
    /// Where the order is in its life.
    pub status: OrderStatus,
    /// Moderation time; set on rejection too, as the original system did.
    #[serde(serialize_with = "serde_ms::option::serialize")]
    pub approved_at: Option<DateTime<Utc>>,
    /// Start of the 5-minute real-time interval whose LMP was used.
    #[serde(serialize_with = "serde_ms::option::serialize")]
    pub approval_rt_interval_start_utc: Option<DateTime<Utc>>,
    /// Real-time LMP at approval, $/MWh.
    #[cfg_attr(feature = "utoipa", schema(value_type = Option<f64>, multiple_of = 0.01))]
    pub approval_rt_lmp: Option<Price>,
    /// Where the LMP came from.
    pub approval_rt_source: Option<String>,
    /// Why the order was rejected.
    pub reject_reason: Option<String>,
}

impl Order {
    /// P&L of the order as a closed position: `(rt - limit) * qty * (+1 BUY / -1 SELL)` for an
    /// approved order with an LMP, zero for anything else.
    pub fn pnl(&self) -> Pnl {
        match (self.status.is_approved(), self.approval_rt_lmp) {
            (true, Some(rt)) => pnl(self.side, self.qty_mwh, self.limit_price, rt),
            _ => Pnl::default(),
        }
    }

    /// The due time as the API writes it.
    pub fn hour_key(&self) -> String {
        format_ms(&self.hour_start_utc)
    }
}

/// Exact P&L of a position: `(rt - limit) * qty * sign(side)`, in 10⁻⁵ dollars.
pub fn pnl(side: Side, qty: Quantity, limit: Price, rt: Price) -> Pnl {
    // cents * thousandths-of-MWh = 10^-5 dollars; bounded inputs keep this far from overflow.
    Pnl::from_scaled((rt.scaled() - limit.scaled()) * qty.scaled() * side.sign())
}

/// What moderation decided for one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Decision {
    /// Accepted at this real-time LMP.
    Approved {
        /// $/MWh, at least 0.01.
        rt_lmp: Price,
    },
    /// Refused for this reason.
    Rejected {
        /// One of the moderator's market reasons.
        reason: String,
    },
}

impl Decision {
    /// The status the decision moves an order to.
    pub fn status(&self) -> OrderStatus {
        match self {
            Decision::Approved { .. } => OrderStatus::Approved,
            Decision::Rejected { .. } => OrderStatus::Rejected,
        }
    }

    /// The two columns a decision fills, exactly one of them set: the LMP of an approval or the
    /// reason of a rejection.
    pub fn lmp_or_reason(&self) -> (Option<Price>, Option<&str>) {
        match self {
            Decision::Approved { rt_lmp } => (Some(*rt_lmp), None),
            Decision::Rejected { reason } => (None, Some(reason.as_str())),
        }
    }
}

/// Where simulated real-time LMPs come from, as written to `approval_rt_source`.
pub const RT_SOURCE: &str = "SIMULATED_RT";

/// Length of a real-time pricing interval, in seconds (five minutes, as in US ISOs).
pub const RT_INTERVAL_SECS: i64 = 300;

/// Start of the real-time interval containing `t`: the value of
/// `approval_rt_interval_start_utc` for an order moderated at `t`.
pub fn rt_interval_start(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp().div_euclid(RT_INTERVAL_SECS) * RT_INTERVAL_SECS;
    DateTime::from_timestamp(secs, 0).unwrap_or(t)
}

/// The original system's rejection reasons, kept here so every crate spells them the same way.
pub const REJECT_REASONS: [&str; 4] = [
    "Insufficient market liquidity",
    "Price outside acceptable range",
    "Grid constraints",
    "Random rejection for testing",
];

/// One line of an order's append-only history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct OrderEvent {
    /// Increasing id; also the server-sent event id.
    pub id: i64,
    /// The order.
    pub order_id: String,
    /// Status before (`null` for creation).
    pub from_status: Option<OrderStatus>,
    /// Status after.
    pub to_status: OrderStatus,
    /// When the change was committed.
    #[serde(with = "serde_ms")]
    pub at: DateTime<Utc>,
    /// Who made it: `scheduler:<instance>`, `api`, `admin`, `moderate-hour`.
    pub actor: String,
    /// The decision's inputs and outputs (policy, seed, LMP or reason, lateness).
    pub details: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>() -> NewOrderFields<'a> {
        NewOrderFields {
            side: Some("buy"),
            qty_mwh: Some("1.5"),
            limit_price: Some("40.25"),
            hour_start_utc: Some("2025-08-17T17:45:45-04:00"),
            location: None,
            location_type: None,
        }
    }

    #[test]
    fn valid_fields_build_an_order_with_defaults() {
        let o = NewOrder::from_fields(&fields());
        let o = o.as_ref().map_err(|e| e.to_string());
        assert!(o.is_ok(), "{o:?}");
        if let Ok(o) = o {
            assert_eq!(o.side(), Side::Buy);
            assert_eq!(o.qty_mwh().scaled(), 1500);
            assert_eq!(o.limit_price().scaled(), 4025);
            assert_eq!(o.location().as_str(), "PJM-RTO");
            assert_eq!(o.location_type(), LocationType::Zone);
            assert_eq!(format_ms(&o.hour_start_utc()), "2025-08-17T21:45:45.000Z");
        }
    }

    #[test]
    fn typed_constructor_refuses_due_times_outside_2000_to_2099() {
        let location = Location::parse(Location::DEFAULT).expect("default location");
        let build = |t: DateTime<Utc>| {
            NewOrder::new(
                Side::Buy,
                Quantity::from_scaled(1000),
                Price::from_scaled(4000),
                location.clone(),
                LocationType::Zone,
                t,
            )
        };
        let year = |y: i32| {
            chrono::NaiveDate::from_ymd_opt(y, 6, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
                .expect("a date")
        };
        assert!(build(year(2050)).is_ok());
        for far in [year(1999), year(2100), year(11533)] {
            let err = build(far).expect_err("out of range");
            assert_eq!(
                (err.field, err.code),
                ("hour_start_utc", "out_of_range"),
                "{far}"
            );
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(NewOrderFields, &str)> = vec![
            (
                NewOrderFields {
                    side: Some("HOLD"),
                    ..fields()
                },
                "side",
            ),
            (
                NewOrderFields {
                    side: None,
                    ..fields()
                },
                "side",
            ),
            (
                NewOrderFields {
                    qty_mwh: Some("0"),
                    ..fields()
                },
                "qty_mwh",
            ),
            (
                NewOrderFields {
                    qty_mwh: Some("-1"),
                    ..fields()
                },
                "qty_mwh",
            ),
            (
                NewOrderFields {
                    qty_mwh: Some("1.0005"),
                    ..fields()
                },
                "qty_mwh",
            ),
            (
                NewOrderFields {
                    qty_mwh: Some("10000.001"),
                    ..fields()
                },
                "qty_mwh",
            ),
            (
                NewOrderFields {
                    qty_mwh: Some("NaN"),
                    ..fields()
                },
                "qty_mwh",
            ),
            (
                NewOrderFields {
                    limit_price: Some("40.123"),
                    ..fields()
                },
                "limit_price",
            ),
            (
                NewOrderFields {
                    limit_price: Some("inf"),
                    ..fields()
                },
                "limit_price",
            ),
            (
                NewOrderFields {
                    limit_price: Some("-1000.01"),
                    ..fields()
                },
                "limit_price",
            ),
            (
                NewOrderFields {
                    limit_price: Some("10000.01"),
                    ..fields()
                },
                "limit_price",
            ),
            (
                NewOrderFields {
                    hour_start_utc: Some("2025-08-17T21:45:45"),
                    ..fields()
                },
                "hour_start_utc",
            ),
            (
                NewOrderFields {
                    location: Some(""),
                    ..fields()
                },
                "location",
            ),
            (
                NewOrderFields {
                    location: Some("a b"),
                    ..fields()
                },
                "location",
            ),
            (
                NewOrderFields {
                    location: Some("'; DROP TABLE orders;--"),
                    ..fields()
                },
                "location",
            ),
            (
                NewOrderFields {
                    location_type: Some("CITY"),
                    ..fields()
                },
                "location_type",
            ),
        ];
        for (f, field) in cases {
            let got = NewOrder::from_fields(&f).map_err(|e| e.field);
            assert_eq!(got.err(), Some(field), "{f:?}");
        }
        assert!(NewOrder::from_fields(&NewOrderFields {
            qty_mwh: Some("10000"),
            ..fields()
        })
        .is_ok());
        assert!(NewOrder::from_fields(&NewOrderFields {
            limit_price: Some("-1000"),
            ..fields()
        })
        .is_ok());
    }

    #[test]
    fn pnl_is_exact_and_signed_by_side() {
        let q = Quantity::from_scaled(1500); // 1.5 MWh
        let limit = Price::from_scaled(4025);
        let rt = Price::from_scaled(4137);
        assert_eq!(pnl(Side::Buy, q, limit, rt).to_string(), "1.68");
        assert_eq!(pnl(Side::Sell, q, limit, rt).to_string(), "-1.68");
        // 0.001 MWh * 0.01 $/MWh = 0.00001 $: representable exactly.
        let tiny = pnl(
            Side::Buy,
            Quantity::from_scaled(1),
            Price::from_scaled(0),
            Price::from_scaled(1),
        );
        assert_eq!(tiny.to_string(), "0.00001");
        // A float sum would drift here; integers do not.
        let total: Pnl = (0..10)
            .map(|_| {
                pnl(
                    Side::Buy,
                    Quantity::from_scaled(100),
                    limit,
                    Price::from_scaled(4026),
                )
            })
            .sum();
        assert_eq!(total.to_string(), "0.01");
    }
}
