//! The dashboard page at `/`: HTML, CSS and JavaScript modules embedded in the binary with
//! `include_str!`, so users need no build step and the page requests nothing from outside the
//! server. Every response carries a strict Content-Security-Policy (`default-src 'self'`, no
//! inline script or style), so even a row rendered from hostile order data cannot run code.
//!
//! [`FILES`] is the one list of what is served; a new script module is added there and
//! nowhere else.

use crate::error::ApiError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};

const HTML: &str = "text/html; charset=utf-8";
/// Module scripts need a JavaScript type: browsers refuse `import` of anything else.
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// `("/dashboard/NAME", type, the file's text)`.
macro_rules! asset {
    ($name:literal, $ty:expr) => {
        (
            concat!("/dashboard/", $name),
            $ty,
            include_str!(concat!("../dashboard/", $name)),
        )
    };
}

/// Every file of the dashboard: (URL path, content type, body). The scripts are ES modules;
/// `app.js` is the entry point that imports the others.
const FILES: &[(&str, &str, &str)] = &[
    ("/", HTML, include_str!("../dashboard/index.html")),
    asset!("style.css", CSS),
    // So the browser does not ask for a missing `/favicon.ico`.
    asset!("favicon.svg", SVG),
    asset!("app.js", JS),
    asset!("format.js", JS),
    asset!("dom.js", JS),
    asset!("api.js", JS),
    asset!("live.js", JS),
    asset!("scheduler.js", JS),
    asset!("form.js", JS),
    asset!("tables.js", JS),
    asset!("activity.js", JS),
    asset!("detail.js", JS),
    asset!("parked.js", JS),
];

/// Content-Security-Policy of every dashboard response: only this origin, no inline code, no
/// framing, forms post only here.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Registers the dashboard routes: `/` and `/dashboard/{asset}`, both answered from [`FILES`].
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(serve))
        .route("/dashboard/{asset}", web::get().to(serve));
}

/// One embedded file with its content type and the security headers, or the API's JSON 404
/// for a name not in [`FILES`]. `no-cache` makes the browser revalidate, so a new binary's page
/// is seen at once.
async fn serve(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let Some(&(_, content_type, body)) = FILES.iter().find(|(path, ..)| *path == req.path()) else {
        return Err(ApiError::RouteNotFound(format!("GET {}", req.path())));
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(content_type)))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::{call_service, init_service, TestRequest};
    use actix_web::{body::to_bytes, http::StatusCode, App};

    fn file(path: &str) -> &'static str {
        FILES
            .iter()
            .find(|(p, ..)| *p == path)
            .map(|(.., body)| *body)
            .unwrap_or_default()
    }

    #[actix_web::test]
    async fn serves_every_file_with_its_type_and_the_csp() {
        let app = init_service(App::new().configure(configure)).await;
        for (path, ty, body) in FILES {
            let res = call_service(&app, TestRequest::get().uri(path).to_request()).await;
            assert!(res.status().is_success(), "{path}: {}", res.status());
            let h = res.headers();
            let got = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
            assert_eq!(got, Some(*ty), "{path}");
            let csp = h
                .get(header::CONTENT_SECURITY_POLICY)
                .and_then(|v| v.to_str().ok());
            assert_eq!(csp, Some(CONTENT_SECURITY_POLICY), "{path}");
            let got = to_bytes(res.into_body()).await.unwrap_or_default();
            assert_eq!(got, body.as_bytes(), "{path}");
        }
    }

    #[actix_web::test]
    async fn an_unknown_asset_is_the_apis_404() {
        let app = init_service(App::new().configure(configure)).await;
        for path in [
            "/dashboard/nope.js",
            "/dashboard/format.test.mjs",
            "/dashboard/package.json",
        ] {
            let res = call_service(&app, TestRequest::get().uri(path).to_request()).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
            let body = to_bytes(res.into_body()).await.unwrap_or_default();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            assert_eq!(json["code"], "route_not_found", "{path}: {json}");
        }
    }

    #[test]
    fn every_file_of_the_directory_is_served_and_every_import_resolves() {
        // A module added to the directory but not to FILES would fail only in the browser.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/dashboard");
        let entries = std::fs::read_dir(&dir).expect("the dashboard directory");
        for entry in entries {
            let name = entry.expect("a directory entry").file_name();
            let name = name.to_string_lossy();
            // Node's files: the formatting tests and the package.json that makes .js modules.
            if name.ends_with(".test.mjs") || name == "package.json" {
                continue;
            }
            let path = if name == "index.html" {
                "/".to_string()
            } else {
                format!("/dashboard/{name}")
            };
            assert!(!file(&path).is_empty(), "{name} is not in FILES");
        }
        for (path, ty, body) in FILES {
            if *ty != JS {
                continue;
            }
            for import in body.split(" from './").skip(1) {
                let name = import.split('\'').next().unwrap_or_default();
                let target = format!("/dashboard/{name}");
                assert!(
                    !file(&target).is_empty(),
                    "{path} imports {name}: not served"
                );
            }
        }
        assert!(file("/").contains(r#"<script type="module" src="/dashboard/app.js">"#));
    }

    #[test]
    fn no_inline_code_html_injection_or_external_reference() {
        // The CSP forbids inline code, so any would silently not run; and nothing may leave
        // the machine.
        let index = file("/");
        assert!(!index.contains("<script>") && !index.contains("style="));
        let handler = index.split(" on").skip(1).any(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(!handler, "inline event handler in index.html");
        for (path, ty, text) in FILES {
            // The icon's `xmlns` is a namespace name, not something fetched.
            let text = text.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "{path} ({ty})"
            );
            assert!(
                !text.contains("innerHTML") && !text.contains("outerHTML"),
                "{path} must build DOM nodes, not HTML"
            );
        }
    }
}
