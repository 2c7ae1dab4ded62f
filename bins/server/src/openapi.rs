//! The OpenAPI 3 document, served at `GET /api/v1/openapi.json`, and the route list built from
//! it. Each route module documents its own routes (a `#[derive(OpenApi)]` fragment beside its
//! `configure`); this module only merges the fragments under their prefix and adds what is
//! shared: the error shape and the admin token's security scheme. The schemas are derived
//! from the types the handlers serialise, so they cannot drift from the answers.

use crate::error::ErrorBody;
use crate::routes::{
    batch::BatchApi, events::EventsApi, health::HealthApi, legacy::LegacyApi,
    metrics_endpoint::MetricsApi, orders::OrdersApi, resource, scheduler_api::SchedulerApi,
    DASHBOARD_ROUTES,
};
use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Path of the document itself.
pub const DOCUMENT_PATH: &str = "/api/v1/openapi.json";

/// Registers `GET /api/v1/openapi.json`. It must come before [`crate::routes::configure`],
/// whose `/api/v1` scope would otherwise take the request and answer 404.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource(DOCUMENT_PATH).route(web::get().to(openapi_json)));
}

struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole document: every route module's fragment under its prefix.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "order-scheduler",
        description = "Moderates simulated day-ahead energy orders at their exact due time. \
            The original system's routes are kept unchanged beside a JSON order API."
    ),
    paths(openapi_json),
    components(schemas(ErrorBody)),
    nest(
        (path = "/api/v1", api = LegacyApi),
        (path = "/api/v1", api = SchedulerApi),
        (path = "/api/v1", api = HealthApi),
        (path = "/api/v1", api = OrdersApi),
        (path = "/api/v1", api = BatchApi),
        (path = "/api/v1", api = EventsApi),
        (path = "/api/v1", api = crate::routes::parked::ParkedApi),
        (path = "/api/v1", api = crate::routes::retention::RetentionApi),
        (path = "/api/v1", api = crate::routes::market::MarketApi),
    ),
    modifiers(&AdminToken)
)]
struct ApiDoc;

/// The document, with the route fragments that live at the root (`/metrics`) merged in.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(MetricsApi::openapi());
    doc
}

/// The document as JSON text.
pub fn document_json() -> String {
    document().to_pretty_json().unwrap_or_else(|e| {
        log::error!("cannot render the OpenAPI document: {e}");
        "{}".into()
    })
}

/// `GET /api/v1/openapi.json`: this document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json")))]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document_json())
}

/// One route the server registers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path template, such as `/api/v1/orders/{id}`.
    pub path: String,
}

/// Every operation the document describes, sorted.
pub fn documented_routes() -> Vec<Route> {
    let doc = document();
    let mut out = Vec::new();
    for (path, item) in doc.paths.paths.iter() {
        let ops = [
            ("GET", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("PUT", item.put.is_some()),
            ("PATCH", item.patch.is_some()),
            ("DELETE", item.delete.is_some()),
        ];
        for (method, present) in ops {
            if present {
                out.push(Route {
                    method: method.to_string(),
                    path: path.clone(),
                });
            }
        }
    }
    out.sort();
    out
}

/// Every route the server registers: the documented operations and the dashboard's files.
pub fn route_list() -> Vec<Route> {
    let mut out = documented_routes();
    out.extend(DASHBOARD_ROUTES.iter().map(|path| Route {
        method: "GET".into(),
        path: path.to_string(),
    }));
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::{call_service, init_service, read_body, TestRequest};
    use actix_web::App;

    /// Every listed route reaches a handler: neither the fallback 404 nor a resource's 405.
    /// (Handlers fail here without the application state; that still proves the route.)
    #[actix_web::test]
    async fn every_listed_route_is_registered() {
        let app = init_service(
            App::new()
                .configure(configure)
                .configure(crate::routes::configure),
        )
        .await;
        let routes = route_list();
        assert!(routes.len() > DASHBOARD_ROUTES.len() + 10, "{routes:?}");
        for route in routes {
            let uri = route
                .path
                .replace("{order_id}", "0190b2a0-0000-7000-8000-000000000000")
                .replace("{id}", "0190b2a0-0000-7000-8000-000000000000")
                .replace("{hour_start_utc}", "2031-01-01T00:00:00Z")
                .replace("{asset}", "app.js");
            let method = actix_web::http::Method::from_bytes(route.method.as_bytes())
                .expect("a valid method");
            let req = TestRequest::default().method(method).uri(&uri).to_request();
            let res = call_service(&app, req).await;
            let status = res.status();
            let body = read_body(res).await;
            let text = String::from_utf8_lossy(&body);
            assert!(
                !text.contains("route_not_found") && !text.contains("method_not_allowed"),
                "{route:?} is listed but not registered ({status}: {text})"
            );
        }
    }

    #[test]
    fn the_dashboard_is_listed_but_not_documented() {
        let documented = documented_routes();
        assert!(!documented.iter().any(|r| r.path.starts_with("/dashboard")));
        assert!(documented.contains(&Route {
            method: "GET".into(),
            path: DOCUMENT_PATH.into()
        }));
        assert_eq!(
            route_list().len(),
            documented.len() + DASHBOARD_ROUTES.len()
        );
    }

    #[test]
    fn schemas_state_the_validation_rules() {
        let doc: serde_json::Value =
            serde_json::from_str(&document_json()).expect("the document is JSON");
        let schemas = &doc["components"]["schemas"];
        let create = &schemas["CreateOrder"]["properties"];
        assert_eq!(create["qty_mwh"]["multipleOf"], 0.001);
        assert_eq!(create["qty_mwh"]["maximum"], 10000.0);
        assert_eq!(create["limit_price"]["minimum"], -1000.0);
        assert_eq!(create["hour_start_utc"]["format"], "date-time");
        assert!(create["location"]["pattern"].is_string());
        let side = &schemas["Side"]["enum"];
        assert_eq!(side, &serde_json::json!(["BUY", "SELL"]));
        // The status and the pass report list every field they serialise.
        let status = schemas["Status"]["properties"]
            .as_object()
            .expect("Status has properties");
        for field in [
            "batch_size",
            "writers",
            "read_ahead",
            "backlog_sweeps",
            "panics",
            "parked_recent",
            "next_wake",
            "moderation_seed",
        ] {
            assert!(status.contains_key(field), "Status lacks {field}");
        }
        assert!(schemas["ForceRunResult"]["properties"]["results_truncated"].is_object());
        assert!(schemas["ModeratedOrder"].is_object());
    }
}
