//! The dashboard page at `/`: HTML, CSS and JavaScript embedded in the binary.

use actix_web::{web, HttpResponse};

/// Registers the dashboard routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index));
}

async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body("<!doctype html><title>order-scheduler</title><p>Dashboard coming soon.</p>")
}
