//! Admin routes need the bearer token when one is configured.

use crate::app_tests;
use crate::helpers::{spawn_app, Options};
use reqwest::{Method, StatusCode};
use storage::testing::Backend;

async fn admin_routes_need_the_token(backend: Backend) {
    let options = Options {
        admin_token: Some("s3cret-token".into()),
        ..Options::default()
    };
    let Some(app) = spawn_app(backend, options).await else {
        return;
    };
    let order = app.create_fake("BUY", "1", "40", 3_600_000).await;
    let id = order["id"].as_str().expect("id");
    let routes = [
        (Method::POST, "/api/v1/scheduler/stop".to_string()),
        (Method::POST, "/api/v1/scheduler/start".to_string()),
        (Method::POST, "/api/v1/scheduler/force-run".to_string()),
        (
            Method::POST,
            "/api/v1/orders/moderate/2031-01-01T00:00:00Z".to_string(),
        ),
        (
            Method::PATCH,
            format!("/api/v1/orders/fake/{id}?status=CANCELLED"),
        ),
    ];
    let before = app.row_counts();
    for (method, path) in &routes {
        let url = format!("{}{path}", app.address);
        let none = crate::helpers::TestApp::reply(
            app.client
                .request(method.clone(), &url)
                .send()
                .await
                .expect("send"),
        )
        .await;
        assert_eq!(
            none.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without token"
        );
        assert_eq!(none.json["code"], "unauthorized");
        let wrong = crate::helpers::TestApp::reply(
            app.client
                .request(method.clone(), &url)
                .bearer_auth("s3cret-tokem")
                .send()
                .await
                .expect("send"),
        )
        .await;
        assert_eq!(
            wrong.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a wrong token"
        );
    }
    assert_eq!(
        app.row_counts(),
        before,
        "refused admin calls wrote nothing"
    );
    for (method, path) in &routes {
        let ok = app.request(method.clone(), path, None, true).await;
        assert_eq!(
            ok.status,
            StatusCode::OK,
            "{method} {path} with the token: {}",
            ok.json
        );
    }
    // Reading stays open.
    assert_eq!(
        app.get("/api/v1/scheduler/status").await.status,
        StatusCode::OK
    );
}

app_tests!(admin_routes_need_the_token);

#[test]
fn non_loopback_bind_without_token_is_refused() {
    let db = storage::testing::TestDb::sqlite();
    let mut args = crate::helpers::serve_args(&db.url, &Options::default());
    args.bind = "0.0.0.0:0".into();
    let err = order_scheduler::app::Application::build(&args)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("admin token"), "{err}");
}
