//! `GET /api/v1/events`: server-sent events of order status changes and scheduler state.
//!
//! A client reconnecting with `Last-Event-ID` (or `?last_event_id=`) first gets the events it
//! missed, replayed from the database, then the live stream. A frame's `id:` is the hub's
//! watermark (see `crate::events`), never above an id that might still commit late, so a
//! reconnect replays late events too; delivery is at least once. Comments every 15 s keep
//! idle connections open through proxies.

use super::resource;
use crate::error::{ApiError, ErrorBody};
use crate::events::{covered_by_replay, StreamItem};
use crate::state::AppState;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::stream;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{error::RecvError, Receiver};
use utoipa::OpenApi;

/// Registers the route under the API prefix.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/events").route(web::get().to(events)));
}

/// The route's part of the OpenAPI document (paths relative to the API prefix).
#[derive(OpenApi)]
#[openapi(paths(events))]
pub struct EventsApi;

const HEARTBEAT: Duration = Duration::from_secs(15);
const REPLAY_PAGE: i64 = 500;

enum Phase {
    Hello,
    Replay { after: i64, until: i64 },
    Live,
    Done,
}

struct Client {
    state: web::Data<AppState>,
    rx: Receiver<Arc<StreamItem>>,
    phase: Phase,
    /// Events up to this id were replayed; live copies of them are skipped unless late.
    replayed_until: i64,
}

/// One `event: order` frame; `cursor` is its SSE `id:`.
fn order_frame(row: &storage::EventWithDue, cursor: i64) -> String {
    let data = serde_json::to_string(row).unwrap_or_default();
    format!("id: {cursor}\nevent: order\ndata: {data}\n\n")
}

fn frame(item: &StreamItem) -> String {
    match item {
        StreamItem::Order(p) => order_frame(&p.row, p.cursor),
        StreamItem::Scheduler(s) => {
            let data = serde_json::to_string(s).unwrap_or_default();
            format!("event: scheduler\ndata: {data}\n\n")
        }
    }
}

/// `GET /api/v1/events`: the stream of one client, replaying what it missed first.
#[utoipa::path(get, path = "/events", tag = "events",
    params(
        ("Last-Event-ID" = Option<i64>, Header, description = "Replay events after this id"),
        ("last_event_id" = Option<i64>, Query, description = "Same, for clients that cannot set headers"),
    ),
    responses((status = 200, description = "text/event-stream: `event: order` (id, order_id, from_status, to_status, at, actor, details, hour_start_utc) and `event: scheduler` (state, at, instance_id, error)", content_type = "text/event-stream"),
        (status = 400, description = "Bad Last-Event-ID", body = ErrorBody)))]
pub async fn events(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let header = req
        .headers()
        .get("Last-Event-ID")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let query = crate::query::Params::parse(req.query_string(), &["last_event_id"])?;
    let last = header.or_else(|| query.get("last_event_id").map(str::to_string));
    let last = last
        .map(|v| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| ApiError::invalid("Last-Event-ID must be an integer"))
        })
        .transpose()?;
    // Subscribe before reading the hub's position, so nothing published in between is lost.
    let rx = state.events.subscribe();
    let high = state.events.high();
    let phase = match last {
        Some(after) if after < high => Phase::Replay { after, until: high },
        _ => Phase::Hello,
    };
    let client = Client {
        state,
        rx,
        phase,
        replayed_until: high,
    };
    let body = stream::unfold(client, |mut c| async move {
        let chunk = next_chunk(&mut c).await?;
        Some((Ok::<Bytes, actix_web::Error>(Bytes::from(chunk)), c))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

async fn next_chunk(c: &mut Client) -> Option<String> {
    loop {
        match c.phase {
            Phase::Done => return None,
            Phase::Hello => {
                c.phase = Phase::Live;
                return Some("retry: 2000\n: connected\n\n".into());
            }
            Phase::Replay { after, until } => {
                let store = c.state.store.clone();
                let page = web::block(move || store.events_after(after, REPLAY_PAGE)).await;
                let rows = match page {
                    Ok(Ok(rows)) => rows,
                    _ => {
                        c.phase = Phase::Done; // the client reconnects and retries the replay
                        return Some(": replay failed; reconnect\n\n".into());
                    }
                };
                let rows: Vec<_> = rows.into_iter().filter(|r| r.event.id <= until).collect();
                let Some(last) = rows.last().map(|r| r.event.id) else {
                    c.phase = Phase::Hello;
                    continue;
                };
                c.phase = Phase::Replay { after: last, until };
                // Rows above the watermark may sit above an id that commits late: their frames
                // carry the watermark, so a reconnect replays from below that id.
                let watermark = c.state.events.watermark();
                let mut out = String::new();
                for row in rows {
                    let cursor = row.event.id.min(watermark);
                    out.push_str(&order_frame(&row, cursor));
                }
                return Some(out);
            }
            Phase::Live => {
                let received = tokio::time::timeout(HEARTBEAT, c.rx.recv()).await;
                return match received {
                    Err(_) => Some(": keep-alive\n\n".into()),
                    Ok(Ok(item)) => match &*item {
                        StreamItem::Order(p) if covered_by_replay(p, c.replayed_until) => continue,
                        other => Some(frame(other)),
                    },
                    Ok(Err(RecvError::Lagged(n))) => {
                        // Too slow: end the stream; the reconnect replays from the database.
                        log::info!("event stream client fell {n} events behind; disconnecting it");
                        c.phase = Phase::Done;
                        Some(": too slow; reconnect with Last-Event-ID\n\n".into())
                    }
                    Ok(Err(RecvError::Closed)) => None,
                };
            }
        }
    }
}
