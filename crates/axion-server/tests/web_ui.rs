//! The web UI's files through `Router::oneshot`: served without keys at `/` and at every
//! trace's `htmlPath`, each with the policy that keeps trace data from running in the page.
//! What the page does in a browser is `tests/ui/ui.test.mjs` (headless Chromium).

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const AUTH: &str = "Basic cGstbGYtdGVzdDpzay1sZi10ZXN0"; // pk-lf-test:sk-lf-test

struct Reply {
    status: StatusCode,
    content_type: String,
    policy: String,
    body: String,
}

async fn get(app: &axum::Router, path: &str, auth: Option<&str>) -> Reply {
    let mut request = Request::get(path);
    if let Some(auth) = auth {
        request = request.header(header::AUTHORIZATION, auth);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let header_text = |name| {
        response
            .headers()
            .get(name)
            .map(|value: &header::HeaderValue| value.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (status, content_type, policy) = (
        response.status(),
        header_text(header::CONTENT_TYPE),
        header_text(header::CONTENT_SECURITY_POLICY),
    );
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        content_type,
        policy,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

fn assert_page(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type, "text/html; charset=utf-8");
    assert!(reply.body.contains(r#"src="/ui/app.js""#), "{}", reply.body);
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
    ] {
        assert!(reply.policy.contains(directive), "{}", reply.policy);
    }
}

#[tokio::test]
async fn the_page_and_its_files_are_served_without_keys() {
    let (app, _store, _dir) = common::test_router();
    assert_page(&get(&app, "/", None).await);
    assert_page(&get(&app, "/project/any/traces?name=x", None).await);
    assert_page(&get(&app, "/project/any/sessions/s-1", None).await);

    let script = get(&app, "/ui/app.js", None).await;
    assert_eq!(script.status, StatusCode::OK);
    assert_eq!(script.content_type, "text/javascript; charset=utf-8");
    assert!(script.body.contains("async function route()"));
    assert!(!script.policy.is_empty());
    let style = get(&app, "/ui/app.css", None).await;
    assert_eq!(
        (style.status, style.content_type.as_str()),
        (StatusCode::OK, "text/css; charset=utf-8")
    );

    // The API behind it still asks for keys, and unknown files and routes stay JSON 404s.
    assert_eq!(
        get(&app, "/api/public/traces", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    for path in ["/ui/app.ts", "/ui/../Cargo.toml", "/nothing-here"] {
        let reply = get(&app, path, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        let body: Value = serde_json::from_str(&reply.body).unwrap();
        assert!(body["message"].is_string(), "{path}: {body}");
    }
}

#[tokio::test]
async fn every_trace_html_path_opens_the_page() {
    let (app, _store, _dir) = common::test_router();
    let batch = json!({"batch": [{
        "id": "e-1", "type": "trace-create", "timestamp": "2026-11-23T10:00:00Z",
        "body": {"id": "t-ui", "name": "answer", "timestamp": "2026-11-23T10:00:00Z"}
    }]});
    let response = app
        .clone()
        .oneshot(
            Request::post("/api/public/ingestion")
                .header(header::AUTHORIZATION, AUTH)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(batch.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::MULTI_STATUS);

    let listed = get(&app, "/api/public/traces", Some(AUTH)).await;
    let listed: Value = serde_json::from_str(&listed.body).unwrap();
    let html_path = listed["data"][0]["htmlPath"].as_str().unwrap().to_owned();
    assert!(html_path.ends_with("/traces/t-ui"), "{html_path}");
    assert_page(&get(&app, &html_path, None).await);
}
