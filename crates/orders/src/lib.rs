//! Domain types of the order scheduler.
//!
//! An order is a simulated day-ahead energy order: a side, a quantity in MWh, a limit price,
//! a location and a due time (`hour_start_utc`). It is stored `PENDING` and later moderated to
//! `APPROVED` (with a real-time LMP) or `REJECTED` (with a reason).
//!
//! This crate knows nothing of databases, HTTP, threads or clocks: every value here is plain
//! data, and every constructor validates, so an invalid order cannot be built and so cannot be
//! stored.
//!
//! # Layout
//! - [`money`]: exact scaled integers for prices ([`Price`], cents), quantities ([`Quantity`],
//!   thousandths of a MWh) and P&L ([`Pnl`]); no binary floats in arithmetic.
//! - [`kinds`]: the small enumerations: [`Side`], [`LocationType`], [`Market`],
//!   [`OrderStatus`] with its legal transitions as data.
//! - [`time`]: due-time parsing (RFC 3339 with an offset, normalised to UTC milliseconds) and
//!   the API's time format.
//! - [`order`]: [`Order`], [`NewOrder`] and its validation, [`Decision`], [`OrderEvent`].

pub mod kinds;
pub mod money;
pub mod order;
pub mod time;

pub use kinds::{LocationType, Market, OrderStatus, Side, StatusTransitionError};
pub use money::{DecimalError, Pnl, Price, Quantity};
pub use order::{
    pnl, rt_interval_start, Decision, Location, NewOrder, NewOrderFields, Order, OrderEvent,
    ValidationError, REJECT_REASONS, RT_INTERVAL_SECS, RT_SOURCE,
};
pub use time::{format_ms, parse_due_time, truncate_ms, TimeError};
