//! Changes made by people rather than the scheduler: manual transitions (the original system's
//! PATCH, cancel, settlement), parking, and deletion. Each is conditional on the status it was
//! checked against, so it cannot overwrite a concurrent moderation.

use crate::connection::DbConnection;
use crate::error::StorageError;
use crate::models::NewEventRow;
use crate::read::get_order;
use crate::schema::{order_events, orders};
use crate::store::{naive, Store};
use ::orders::{rt_interval_start, truncate_ms, Order, OrderStatus, Price};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::json;

/// A manual status change (the original system's PATCH, cancel, settlement).
#[derive(Debug, Clone, Default)]
pub struct ManualChange {
    /// Target status; must be a legal transition from the current one.
    pub to: Option<OrderStatus>,
    /// Required to approve.
    pub rt_lmp: Option<Price>,
    /// Defaults to `MANUAL` on a manual approval.
    pub rt_source: Option<String>,
    /// Defaults to "Manual rejection" on a manual rejection.
    pub reject_reason: Option<String>,
}

impl Store {
    /// Applies a manual status change if it is legal from the order's current status, and
    /// records it; the update is conditional on that status, so a concurrent change is a
    /// [`StorageError::Conflict`], never a silent overwrite.
    pub fn transition(
        &self,
        id: &str,
        change: &ManualChange,
        actor: &str,
    ) -> Result<Order, StorageError> {
        let to = change
            .to
            .ok_or_else(|| StorageError::MissingField("status is required".into()))?;
        self.write(|c| {
            let current = get_order(c, id)?;
            current.status.check_transition(to)?;
            let now = truncate_ms(Utc::now());
            let mut details = json!({});
            let target = orders::table
                .filter(orders::id.eq(id))
                .filter(orders::status.eq(current.status.as_str()));
            let updated = match to {
                OrderStatus::Approved => {
                    let lmp = change.rt_lmp.ok_or_else(|| {
                        StorageError::MissingField("approval_rt_lmp is required to approve".into())
                    })?;
                    let source = change.rt_source.clone().unwrap_or_else(|| "MANUAL".into());
                    details = json!({ "rt_lmp": lmp, "rt_source": source });
                    diesel::update(target)
                        .set((
                            orders::status.eq(to.as_str()),
                            orders::approved_at.eq(Some(naive(now))),
                            orders::approval_rt_interval_start_utc
                                .eq(Some(naive(rt_interval_start(now)))),
                            orders::approval_rt_lmp_cents.eq(Some(lmp.scaled())),
                            orders::approval_rt_source.eq(Some(source)),
                        ))
                        .execute(c)?
                }
                OrderStatus::Rejected => {
                    let reason = change
                        .reject_reason
                        .clone()
                        .unwrap_or_else(|| "Manual rejection".into());
                    details = json!({ "reason": reason });
                    diesel::update(target)
                        .set((
                            orders::status.eq(to.as_str()),
                            orders::approved_at.eq(Some(naive(now))),
                            orders::reject_reason.eq(Some(reason)),
                        ))
                        .execute(c)?
                }
                _ => diesel::update(target)
                    .set(orders::status.eq(to.as_str()))
                    .execute(c)?,
            };
            if updated != 1 {
                return Err(StorageError::Conflict(id.to_string()));
            }
            insert_event(c, id, Some(current.status), to, now, actor, details)?;
            get_order(c, id)
        })
    }

    /// Sets an order aside so that claims skip it; `reason` says why.
    pub fn park_order(&self, id: &str, reason: &str) -> Result<bool, StorageError> {
        let n = self.write(|c| {
            Ok(diesel::update(orders::table.filter(orders::id.eq(id)))
                .filter(orders::status.eq(OrderStatus::Pending.as_str()))
                .set(orders::parked_reason.eq(reason))
                .execute(c)?)
        })?;
        Ok(n == 1)
    }

    /// Deletes orders (and, by cascade, their history): all of them, or only those with the
    /// given status. Returns how many orders were deleted.
    pub fn delete_orders(&self, status: Option<OrderStatus>) -> Result<usize, StorageError> {
        self.write(|c| {
            let mut q = diesel::delete(orders::table).into_boxed();
            if let Some(s) = status {
                q = q.filter(orders::status.eq(s.as_str()));
            }
            Ok(q.execute(c)?)
        })
    }
}

/// Appends one history line.
pub(crate) fn insert_event(
    conn: &mut DbConnection,
    order_id: &str,
    from: Option<OrderStatus>,
    to: OrderStatus,
    at: DateTime<Utc>,
    actor: &str,
    details: serde_json::Value,
) -> Result<(), StorageError> {
    diesel::insert_into(order_events::table)
        .values(NewEventRow {
            order_id,
            from_status: from.map(OrderStatus::as_str),
            to_status: to.as_str(),
            at: naive(at),
            actor,
            details: details.to_string(),
        })
        .execute(conn)?;
    Ok(())
}
