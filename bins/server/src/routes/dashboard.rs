//! The dashboard page at `/`: HTML, CSS and JavaScript embedded in the binary with
//! `include_str!`, so users need no build step and the page requests nothing from outside the
//! server. Every response carries a strict Content-Security-Policy (`default-src 'self'`, no
//! inline script or style), so even a row rendered from hostile order data cannot run code.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpResponse};

/// The page itself.
const INDEX_HTML: &str = include_str!("../dashboard/index.html");
/// The page's script: status panel, order form, live tables.
const APP_JS: &str = include_str!("../dashboard/app.js");
/// The page's style sheet.
const STYLE_CSS: &str = include_str!("../dashboard/style.css");
/// The page's icon (so the browser does not ask for a missing `/favicon.ico`).
const FAVICON_SVG: &str = include_str!("../dashboard/favicon.svg");

/// Content-Security-Policy of every dashboard response: only this origin, no inline code, no
/// framing, forms post only here.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Registers the dashboard routes: `/` and its three assets under `/dashboard/`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/dashboard/app.js", web::get().to(app_js))
        .route("/dashboard/style.css", web::get().to(style_css))
        .route("/dashboard/favicon.svg", web::get().to(favicon));
}

async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style_css() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

async fn favicon() -> HttpResponse {
    asset("image/svg+xml", FAVICON_SVG)
}

/// One embedded file with its content type and the security headers. `no-cache` makes the
/// browser revalidate, so a new binary's page is seen at once.
fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(content_type)))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::{call_service, init_service, TestRequest};
    use actix_web::{body::to_bytes, App};

    #[actix_web::test]
    async fn serves_the_page_and_assets_with_types_and_csp() {
        let app = init_service(App::new().configure(configure)).await;
        for (path, ty, needle) in [
            ("/", "text/html", "<main"),
            ("/dashboard/app.js", "text/javascript", "EventSource"),
            ("/dashboard/style.css", "text/css", "--accent"),
            ("/dashboard/favicon.svg", "image/svg+xml", "<svg"),
        ] {
            let res = call_service(&app, TestRequest::get().uri(path).to_request()).await;
            assert!(res.status().is_success(), "{path}: {}", res.status());
            let h = res.headers();
            let got = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
            assert!(got.is_some_and(|t| t.starts_with(ty)), "{path}: {got:?}");
            let csp = h
                .get(header::CONTENT_SECURITY_POLICY)
                .and_then(|v| v.to_str().ok());
            assert_eq!(csp, Some(CONTENT_SECURITY_POLICY), "{path}");
            let body = to_bytes(res.into_body()).await.expect("body");
            let text = String::from_utf8_lossy(&body);
            assert!(text.contains(needle), "{path} lacks {needle}");
        }
    }

    #[test]
    fn page_has_no_inline_code_or_external_reference() {
        // The CSP forbids inline code, so any would silently not run; and nothing may leave
        // the machine.
        assert!(!INDEX_HTML.contains("<script>") && !INDEX_HTML.contains("style="));
        let handler = INDEX_HTML.split(" on").skip(1).any(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(!handler, "inline event handler in index.html");
        for (name, text) in [("html", INDEX_HTML), ("js", APP_JS), ("css", STYLE_CSS)] {
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "{name}"
            );
            assert!(
                !text.contains("innerHTML"),
                "{name} must build DOM nodes, not HTML"
            );
        }
    }
}
