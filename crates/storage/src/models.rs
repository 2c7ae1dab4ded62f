//! Row types: how an order and an event look in the database, and their checked conversion
//! to and from the domain types of the `orders` crate.

#![allow(missing_docs)] // field-for-field mirrors of the columns in `schema.rs`

use crate::error::StorageError;
use crate::schema::{order_events, orders};
use ::orders::kinds::UnknownVariant;
use ::orders::{Order, OrderEvent, OrderStatus, Price, Quantity};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use std::str::FromStr;

/// The columns of an order that the API shows, in [`OrderRow`]'s field order.
pub type OrderColumns = (
    orders::id,
    orders::created_at,
    orders::market,
    orders::location_type,
    orders::location,
    orders::hour_start_utc,
    orders::side,
    orders::qty_milli_mwh,
    orders::limit_price_cents,
    orders::status,
    orders::approved_at,
    orders::approval_rt_interval_start_utc,
    orders::approval_rt_lmp_cents,
    orders::approval_rt_source,
    orders::reject_reason,
);

/// [`OrderColumns`] as a value, for `.select(ORDER_COLUMNS)`.
pub const ORDER_COLUMNS: OrderColumns = (
    orders::id,
    orders::created_at,
    orders::market,
    orders::location_type,
    orders::location,
    orders::hour_start_utc,
    orders::side,
    orders::qty_milli_mwh,
    orders::limit_price_cents,
    orders::status,
    orders::approved_at,
    orders::approval_rt_interval_start_utc,
    orders::approval_rt_lmp_cents,
    orders::approval_rt_source,
    orders::reject_reason,
);

/// [`OrderColumns`] as SQL, for the queries written by hand (a sweep's claim on SQLite); read
/// back by name into [`OrderRow`].
pub const ORDER_COLUMN_NAMES: &str = "id, created_at, market, location_type, location, \
     hour_start_utc, side, qty_milli_mwh, limit_price_cents, status, approved_at, \
     approval_rt_interval_start_utc, approval_rt_lmp_cents, approval_rt_source, reject_reason";

/// An order row exactly as stored; text columns are decoded by [`OrderRow::decode`].
#[derive(Debug, Clone, Queryable, QueryableByName)]
#[diesel(table_name = orders)]
pub struct OrderRow {
    pub id: String,
    pub created_at: NaiveDateTime,
    pub market: String,
    pub location_type: String,
    pub location: String,
    pub hour_start_utc: NaiveDateTime,
    pub side: String,
    pub qty_milli_mwh: i64,
    pub limit_price_cents: i64,
    pub status: String,
    pub approved_at: Option<NaiveDateTime>,
    pub approval_rt_interval_start_utc: Option<NaiveDateTime>,
    pub approval_rt_lmp_cents: Option<i64>,
    pub approval_rt_source: Option<String>,
    pub reject_reason: Option<String>,
}

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// Parses one enumerated text column, naming the row when it does not decode.
fn column<T: FromStr<Err = UnknownVariant>>(id: &str, text: &str) -> Result<T, StorageError> {
    text.parse()
        .map_err(|e: UnknownVariant| StorageError::Corrupt {
            id: id.to_string(),
            reason: e.to_string(),
        })
}

impl OrderRow {
    /// Checks every column, so that a hand-edited or corrupted row surfaces as
    /// [`StorageError::Corrupt`] instead of a wrong order.
    pub fn decode(self) -> Result<Order, StorageError> {
        let side = column(&self.id, &self.side)?;
        let market = column(&self.id, &self.market)?;
        let location_type = column(&self.id, &self.location_type)?;
        let status = column(&self.id, &self.status)?;
        if self.qty_milli_mwh <= 0 {
            return Err(StorageError::Corrupt {
                id: self.id,
                reason: format!("qty_milli_mwh {} is not positive", self.qty_milli_mwh),
            });
        }
        Ok(Order {
            created_at: utc(self.created_at),
            market,
            location_type,
            hour_start_utc: utc(self.hour_start_utc),
            side,
            qty_mwh: Quantity::from_scaled(self.qty_milli_mwh),
            limit_price: Price::from_scaled(self.limit_price_cents),
            status,
            approved_at: self.approved_at.map(utc),
            approval_rt_interval_start_utc: self.approval_rt_interval_start_utc.map(utc),
            approval_rt_lmp: self.approval_rt_lmp_cents.map(Price::from_scaled),
            approval_rt_source: self.approval_rt_source,
            reject_reason: self.reject_reason,
            location: self.location,
            id: self.id,
        })
    }
}

/// A new order row.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = orders)]
pub struct NewOrderRow<'a> {
    pub id: &'a str,
    pub created_at: NaiveDateTime,
    pub market: &'a str,
    pub location_type: &'a str,
    pub location: &'a str,
    pub hour_start_utc: NaiveDateTime,
    pub side: &'a str,
    pub qty_milli_mwh: i64,
    pub limit_price_cents: i64,
    pub status: &'a str,
    pub idempotency_key: Option<&'a str>,
    pub request_hash: Option<&'a str>,
}

/// An event row as stored.
#[derive(Debug, Clone, Queryable)]
pub struct EventRow {
    pub id: i64,
    pub order_id: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub at: NaiveDateTime,
    pub actor: String,
    pub details: String,
}

impl EventRow {
    /// Decodes statuses and the JSON details.
    pub fn decode(self) -> Result<OrderEvent, StorageError> {
        let id = &self.order_id;
        let from_status = self
            .from_status
            .as_deref()
            .map(|s| column::<OrderStatus>(id, s))
            .transpose()?;
        let to_status = column(id, &self.to_status)?;
        let details = serde_json::from_str(&self.details).map_err(|e| StorageError::Corrupt {
            id: id.clone(),
            reason: e.to_string(),
        })?;
        Ok(OrderEvent {
            id: self.id,
            from_status,
            to_status,
            at: utc(self.at),
            actor: self.actor,
            details,
            order_id: self.order_id,
        })
    }
}

/// A new event row.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = order_events)]
pub struct NewEventRow<'a> {
    pub order_id: &'a str,
    pub from_status: Option<&'a str>,
    pub to_status: &'a str,
    pub at: NaiveDateTime,
    pub actor: &'a str,
    pub details: String,
}
