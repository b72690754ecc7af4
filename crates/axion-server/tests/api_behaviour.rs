//! Handler behaviour through `Router::oneshot`: auth, error shapes, merge semantics, paging.

mod common;

use std::sync::Arc;

use axion_server::auth::hash_secret;
use axion_server::store::{ApiKey, SqliteStore, Store};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

struct App {
    router: axum::Router,
    store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

fn basic(public_key: &str, secret_key: &str) -> String {
    let pair = format!("{public_key}:{secret_key}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

const AUTH: &str = "Basic cGstbGYtdGVzdDpzay1sZi10ZXN0"; // pk-lf-test:sk-lf-test

fn app() -> App {
    let (router, store, dir) = common::test_router();
    App {
        router,
        store,
        _dir: dir,
    }
}

impl App {
    async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let body = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        self.send(request.body(body).unwrap()).await
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call("GET", uri, Some(AUTH), None).await
    }

    async fn ingest(&self, events: Value) -> Value {
        let (status, body) = self
            .call(
                "POST",
                "/api/public/ingestion",
                Some(AUTH),
                Some(json!({"batch": events})),
            )
            .await;
        assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
        body
    }
}

fn event(id: &str, kind: &str, timestamp: &str, body: Value) -> Value {
    json!({"id": id, "type": kind, "timestamp": timestamp, "body": body})
}

#[tokio::test]
async fn auth_failures_use_langfuse_bodies() {
    let app = app();
    let (status, body) = app.call("GET", "/api/public/traces", None, None).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"message": "No authorization header"})
        )
    );
    let (status, body) = app
        .call(
            "POST",
            "/api/public/ingestion",
            None,
            Some(json!({"batch": []})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "UnauthorizedError");
    let (status, body) = app
        .call(
            "GET",
            "/api/public/traces",
            Some(&basic("pk-lf-test", "wrong")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .ends_with("Confirm that you've configured the correct host."));
    let (status, _) = app.call("GET", "/api/public/health", None, None).await;
    assert_eq!(status, StatusCode::OK, "health needs no auth");
}

#[tokio::test]
async fn a_public_key_alone_only_sends_scores() {
    let app = app();
    let bearer = "Bearer pk-lf-test";
    let (status, _) = app
        .call("GET", "/api/public/traces", Some(bearer), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app
        .call(
            "POST",
            "/api/public/scores",
            Some(bearer),
            Some(json!({"name": "n", "value": 1, "traceId": "t"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = app
        .call(
            "POST",
            "/api/public/ingestion",
            Some(bearer),
            Some(json!({"batch": [
                event("e1", "trace-create", "2024-01-01T00:00:00Z", json!({"id": "t"})),
                event("e2", "score-create", "2024-01-01T00:00:00Z", json!({"name": "m", "value": 2, "traceId": "t"})),
            ]})),
        )
        .await;
    assert_eq!(body["successes"], json!([{"id": "e2", "status": 201}]));
    assert_eq!(body["errors"][0]["status"], 401);
    let (status, _) = app
        .call(
            "POST",
            "/api/public/otel/v1/traces",
            Some(bearer),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_key_never_reads_another_project() {
    let app = app();
    app.ingest(json!([event(
        "e1",
        "trace-create",
        "2024-01-01T00:00:00Z",
        json!({"id": "secret-trace", "name": "mine"})
    )]))
    .await;
    let other = app.store.create_project("other").unwrap();
    app.store
        .put_api_key(&ApiKey {
            public_key: "pk-other".into(),
            secret_hash: hash_secret("sk-other"),
            project_id: other.id,
        })
        .unwrap();
    let auth = basic("pk-other", "sk-other");
    let (status, _) = app
        .call("GET", "/api/public/traces/secret-trace", Some(&auth), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app
        .call("GET", "/api/public/traces", Some(&auth), None)
        .await;
    assert_eq!(list["data"], json!([]));
    let (_, projects) = app
        .call("GET", "/api/public/projects", Some(&auth), None)
        .await;
    assert_eq!(projects["data"].as_array().unwrap().len(), 1);
    assert_eq!(projects["data"][0]["name"], "other");
    let (status, _) = app.get("/api/public/traces/secret-trace").await;
    assert_eq!(status, StatusCode::OK, "the owner still reads it");
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let app = app();
    let request = |uri: &str, content_type: &str, body: Vec<u8>| {
        Request::post(uri)
            .header("authorization", AUTH)
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap()
    };
    let (status, body) = app
        .send(request(
            "/api/public/ingestion",
            "application/json",
            b"{not json".to_vec(),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("not JSON"),
        "{body}"
    );
    let (status, body) = app
        .send(request(
            "/api/public/ingestion",
            "application/json",
            br#"{"batch": 3}"#.to_vec(),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("batch"), "{body}");
    let big = format!(r#"{{"batch": [], "pad": "{}"}}"#, "x".repeat(5_000_000));
    let (status, _) = app
        .send(request(
            "/api/public/ingestion",
            "application/json",
            big.into_bytes(),
        ))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, body) = app
        .send(request(
            "/api/public/otel/v1/traces",
            "application/x-protobuf",
            vec![0xff, 0xff, 0x01],
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("protobuf"),
        "{body}"
    );
    let (status, body) = app
        .send(request(
            "/api/public/otel/v1/traces",
            "text/plain",
            b"hi".to_vec(),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("content type"),
        "{body}"
    );
    let (status, body) = app.get("/api/public/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "LangfuseNotFoundError");
    let (status, _) = app.get("/api/public/traces?limit=101").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = app.get("/api/public/traces?fromTimestamp=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("fromTimestamp"),
        "{body}"
    );
    let (status, _) = app.get("/api/public/traces?orderBy=colour.asc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn one_invalid_event_fails_alone_and_the_rest_is_stored() {
    let app = app();
    let body = app
        .ingest(json!([
            event(
                "ok-1",
                "trace-create",
                "2024-01-01T00:00:00Z",
                json!({"id": "t1", "name": "kept"})
            ),
            event(
                "bad-1",
                "span-create",
                "2024-01-01T00:00:00Z",
                json!({"id": "s1", "traceId": "t1", "startTime": "tuesday"})
            ),
            event(
                "ok-2",
                "span-create",
                "2024-01-01T00:00:00Z",
                json!({"id": "s2", "traceId": "t1", "name": "kept-span"})
            ),
        ]))
        .await;
    assert_eq!(body["successes"].as_array().unwrap().len(), 2);
    assert_eq!(body["errors"][0]["id"], "bad-1");
    assert!(body["errors"][0]["error"]
        .as_str()
        .unwrap()
        .contains("startTime"));
    let (_, trace) = app.get("/api/public/traces/t1").await;
    assert_eq!(trace["name"], "kept");
    assert_eq!(trace["observations"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn updates_merge_in_any_order() {
    let app = app();
    // The update arrives first, in its own request.
    app.ingest(json!([event("e1", "span-update", "2024-01-01T00:00:02Z",
        json!({"id": "s1", "traceId": "t1", "output": {"done": true}, "endTime": "2024-01-01T00:00:02Z", "metadata": {"a": {"x": 1}}}))]))
        .await;
    app.ingest(json!([
        event("e2", "span-create", "2024-01-01T00:00:01Z",
            json!({"id": "s1", "traceId": "t1", "name": "step", "startTime": "2024-01-01T00:00:01Z", "metadata": {"a": {"y": 2}}})),
        event("e3", "trace-create", "2024-01-01T00:00:01Z", json!({"id": "t1", "tags": ["b"], "metadata": {"k": {"one": 1}}})),
        event("e4", "trace-create", "2024-01-01T00:00:03Z", json!({"id": "t1", "tags": ["a"], "metadata": {"k": {"two": 2}}, "name": "merged"})),
    ]))
    .await;
    let (_, observation) = app.get("/api/public/observations/s1").await;
    assert_eq!(observation["name"], "step");
    assert_eq!(observation["output"], json!({"done": true}));
    assert_eq!(observation["metadata"], json!({"a": {"x": 1, "y": 2}}));
    assert_eq!(observation["latency"], 1.0);
    let (_, trace) = app.get("/api/public/traces/t1").await;
    assert_eq!(trace["tags"], json!(["a", "b"]));
    assert_eq!(trace["metadata"], json!({"k": {"one": 1, "two": 2}}));
    assert_eq!(trace["name"], "merged");
    assert_eq!(trace["timestamp"], "2024-01-01T00:00:01.000000Z");
}

#[tokio::test]
async fn cursor_pages_cover_everything_once() {
    let app = app();
    let events: Vec<Value> = (0..7)
        .map(|i| {
            event(&format!("e{i}"), "span-create", "2024-01-01T00:00:00Z",
                json!({"id": format!("s{i}"), "traceId": "t", "startTime": format!("2024-01-01T00:00:0{i}Z")}))
        })
        .chain((0..5).map(|i| {
            event(&format!("sc{i}"), "score-create", &format!("2024-01-01T00:00:0{i}Z"),
                json!({"id": format!("score{i}"), "traceId": "t", "name": "n", "value": i}))
        }))
        .collect();
    app.ingest(Value::Array(events)).await;
    let mut seen = Vec::new();
    let mut uri = "/api/public/v2/observations?limit=3&fields=core".to_owned();
    loop {
        let (status, page) = app.get(&uri).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_str().unwrap().to_owned()),
        );
        match page["meta"]["cursor"].as_str() {
            Some(cursor) => {
                uri = format!(
                    "/api/public/v2/observations?limit=3&fields=core&cursor={}",
                    urlencode(cursor)
                )
            }
            None => break,
        }
    }
    assert_eq!(seen, ["s6", "s5", "s4", "s3", "s2", "s1", "s0"]);
    let (_, first) = app.get("/api/public/v3/scores?limit=2").await;
    assert_eq!(first["data"][0]["value"], 4.0);
    let cursor = first["meta"]["cursor"].as_str().unwrap();
    let (_, second) = app
        .get(&format!(
            "/api/public/v3/scores?limit=2&cursor={}",
            urlencode(cursor)
        ))
        .await;
    assert_eq!(second["data"][0]["id"], "score2");
    let (_, offset) = app.get("/api/public/observations?limit=3&page=3").await;
    assert_eq!(
        offset["meta"],
        json!({"page": 3, "limit": 3, "totalItems": 7, "totalPages": 3})
    );
    assert_eq!(offset["data"].as_array().unwrap().len(), 1);
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn trace_filters_and_bulk_delete() {
    let app = app();
    let trace = |id: &str, user: &str, tags: Value, time: &str, environment: &str| {
        event(
            &format!("e-{id}"),
            "trace-create",
            time,
            json!({"id": id, "userId": user, "tags": tags, "timestamp": time, "environment": environment}),
        )
    };
    app.ingest(json!([
        trace("a", "u1", json!(["x", "y"]), "2024-01-01T00:00:00Z", "prod"),
        trace("b", "u1", json!(["x"]), "2024-01-02T00:00:00Z", "prod"),
        trace("c", "u2", json!(["x", "y"]), "2024-01-03T00:00:00Z", "dev"),
    ]))
    .await;
    let ids = |page: &Value| {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let (_, page) = app.get("/api/public/traces?tags=x&tags=y").await;
    assert_eq!(ids(&page), ["c", "a"], "all tags, newest first");
    let (_, page) = app
        .get("/api/public/traces?userId=u1&fromTimestamp=2024-01-01T12:00:00Z")
        .await;
    assert_eq!(ids(&page), ["b"]);
    let (_, page) = app.get("/api/public/traces?environment=dev&environment=prod&orderBy=timestamp.asc&toTimestamp=2024-01-03T00:00:00Z").await;
    assert_eq!(ids(&page), ["a", "b"], "toTimestamp is exclusive");
    let (_, page) = app.get("/api/public/traces?fields=core").await;
    assert_eq!(page["data"][0]["latency"], -1);
    let (status, _) = app
        .call(
            "DELETE",
            "/api/public/traces",
            Some(AUTH),
            Some(json!({"traceIds": ["a", "b"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, page) = app.get("/api/public/traces").await;
    assert_eq!(ids(&page), ["c"]);
}

#[tokio::test]
async fn score_arrays_report_partial_failure() {
    let app = app();
    let (status, body) = app
        .call(
            "POST",
            "/api/public/scores",
            Some(AUTH),
            Some(json!([
                {"name": "good", "value": 1, "traceId": "t"},
                {"name": "bad", "value": "x", "dataType": "NUMERIC", "traceId": "t"},
            ])),
        )
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(
        (body["accepted"].as_u64(), body["rejected"].as_u64()),
        (Some(1), Some(1))
    );
    let (_, scores) = app.get("/api/public/scores?name=good").await;
    assert_eq!(scores["meta"]["totalItems"], 1);
    let (status, _) = app
        .call(
            "POST",
            "/api/public/scores",
            Some(AUTH),
            Some(json!({"name": "bad", "value": 2, "dataType": "BOOLEAN", "traceId": "t"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn structured_filters_select_traces_and_observations() {
    let app = app();
    let trace = |id: &str, user: &str, tags: Value, metadata: Value, time: &str| {
        event(
            &format!("e-{id}"),
            "trace-create",
            time,
            json!({"id": id, "name": format!("chat-{id}"), "userId": user, "tags": tags,
                   "metadata": metadata, "timestamp": time}),
        )
    };
    let generation =
        |id: &str, trace_id: &str, level: &str, tokens: u64, start: &str, end: &str| {
            event(
                &format!("e-{id}"),
                "generation-create",
                start,
                json!({"id": id, "traceId": trace_id, "name": format!("gen-{id}"), "level": level,
                   "model": "gpt-4o-mini", "usageDetails": {"input": tokens, "output": 10},
                   "startTime": start, "endTime": end, "metadata": {"step": id}}),
            )
        };
    app.ingest(json!([
        trace("a", "u1", json!(["x", "y"]), json!({"team": "ml-research", "tier": 3}), "2024-01-01T00:00:00Z"),
        trace("b", "u1", json!(["x"]), json!({"team": "support", "tier": 1}), "2024-01-02T00:00:00Z"),
        trace("c", "u2", json!([]), json!({"team": "ml-platform"}), "2024-01-03T00:00:00Z"),
        generation("ga", "a", "ERROR", 1000, "2024-01-01T00:00:00Z", "2024-01-01T00:00:04Z"),
        generation("gb", "b", "DEFAULT", 100, "2024-01-02T00:00:00Z", "2024-01-02T00:00:01Z"),
        generation("gc", "c", "WARNING", 5000, "2024-01-03T00:00:00Z", "2024-01-03T00:00:02Z"),
        event("s1", "score-create", "2024-01-03T00:00:00Z",
              json!({"id": "s1", "traceId": "c", "name": "verdict", "value": "good", "dataType": "CATEGORICAL"})),
        event("s2", "score-create", "2024-01-03T00:00:00Z",
              json!({"id": "s2", "traceId": "b", "name": "quality", "value": 0.9})),
    ]))
    .await;
    let ids = |page: &Value| {
        page["data"]
            .as_array()
            .unwrap_or_else(|| panic!("{page}"))
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let traces_uri = |conditions: &Value| {
        format!(
            "/api/public/traces?orderBy=timestamp.asc&filter={}",
            urlencode(&conditions.to_string())
        )
    };
    for (conditions, expected) in [
        (
            json!([{"type": "stringObject", "column": "metadata", "key": "team", "operator": "starts with", "value": "ml-"}]),
            vec!["a", "c"],
        ),
        (
            json!([{"type": "numberObject", "column": "metadata", "key": "tier", "operator": ">=", "value": 2}]),
            vec!["a"],
        ),
        (
            json!([{"type": "arrayOptions", "column": "tags", "operator": "none of", "value": ["y"]},
                   {"type": "string", "column": "userId", "operator": "=", "value": "u1"}]),
            vec!["b"],
        ),
        (
            json!([{"type": "datetime", "column": "timestamp", "operator": "<", "value": "2024-01-02T12:00:00Z"}]),
            vec!["a", "b"],
        ),
        (
            json!([{"type": "number", "column": "latency", "operator": ">", "value": 1.5}]),
            vec!["a", "c"],
        ),
        (
            json!([{"type": "number", "column": "totalCost", "operator": ">", "value": 0.0005}]),
            vec!["c"],
        ),
        (
            json!([{"type": "number", "column": "inputTokens", "operator": "<=", "value": 1000}]),
            vec!["a", "b"],
        ),
        (
            json!([{"type": "stringOptions", "column": "level", "operator": "any of", "value": ["ERROR", "WARNING"]}]),
            vec!["a", "c"],
        ),
        (
            json!([{"type": "number", "column": "errorCount", "operator": "=", "value": 1}]),
            vec!["a"],
        ),
        (
            json!([{"type": "categoryOptions", "column": "score_categories", "key": "verdict", "operator": "any of", "value": ["good"]}]),
            vec!["c"],
        ),
        (
            json!([{"type": "number", "column": "scores_avg", "operator": ">", "value": 0.5}]),
            vec!["b"],
        ),
        (
            json!([{"type": "string", "column": "name", "operator": "does not contain", "value": "-b"}]),
            vec!["a", "c"],
        ),
        (
            json!([{"type": "null", "column": "sessionId", "operator": "is null"}]),
            vec!["a", "b", "c"],
        ),
    ] {
        let (status, page) = app.get(&traces_uri(&conditions)).await;
        assert_eq!(status, StatusCode::OK, "{conditions}: {page}");
        assert_eq!(ids(&page), expected, "{conditions}");
        assert_eq!(
            page["meta"]["totalItems"],
            json!(expected.len()),
            "{conditions}"
        );
    }
    // The filter takes precedence over the simple parameters.
    let (_, page) = app
        .get(&format!(
            "/api/public/traces?userId=u2&filter={}",
            urlencode(
                &json!([{"type": "string", "column": "userId", "operator": "=", "value": "u1"}])
                    .to_string()
            )
        ))
        .await;
    assert_eq!(ids(&page).len(), 2);

    for path in ["/api/public/observations", "/api/public/v2/observations"] {
        for (conditions, expected) in [
            (
                json!([{"type": "number", "column": "latency", "operator": ">=", "value": 2},
                       {"type": "string", "column": "userId", "operator": "=", "value": "u2"}]),
                vec!["gc"],
            ),
            (
                json!([{"type": "arrayOptions", "column": "traceTags", "operator": "all of", "value": ["x", "y"]}]),
                vec!["ga"],
            ),
            (
                json!([{"type": "stringObject", "column": "metadata", "key": "step", "operator": "=", "value": "gb"}]),
                vec!["gb"],
            ),
            (
                json!([{"type": "number", "column": "tokensPerSecond", "operator": ">", "value": 4}]),
                vec!["gc", "gb"],
            ),
        ] {
            let uri = format!("{path}?filter={}", urlencode(&conditions.to_string()));
            let (status, page) = app.get(&uri).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {page}");
            assert_eq!(ids(&page), expected, "{path} {conditions}");
        }
    }

    let (status, body) = app
        .get(&format!(
            "/api/public/traces?filter={}",
            urlencode(r#"[{"type": "string", "column": "colour", "operator": "=", "value": "x"}]"#)
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.to_string().contains("colour"), "{body}");
}

#[tokio::test]
async fn metrics_queries_answer_or_say_what_is_wrong() {
    let app = app();
    let (status, body) = app.get("/api/public/v2/metrics").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("query"), "{body}");
    for (query, expected) in [
        ("{", "not JSON"),
        (r#"{"view": "traces"}"#, "observations"),
        (
            r#"{"view": "observations", "metrics": [{"measure": "count", "aggregation": "count"}], "fromTimestamp": "2024-01-02T00:00:00Z", "toTimestamp": "2024-01-01T00:00:00Z"}"#,
            "after fromTimestamp",
        ),
    ] {
        let (status, body) = app
            .get(&format!(
                "/api/public/v2/metrics?query={}",
                urlencode(query)
            ))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(
            body["error"].as_str().unwrap().contains(expected),
            "{query}: {body}"
        );
    }
    app.ingest(json!([{"id": "e1", "type": "span-create", "timestamp": "2024-01-01T00:00:00Z",
        "body": {"id": "o1", "traceId": "t1", "name": "step", "startTime": "2024-01-01T00:00:00Z"}}]))
        .await;
    let query = r#"{"view": "observations", "dimensions": [{"field": "name"}], "metrics": [{"measure": "count", "aggregation": "count"}], "fromTimestamp": "2024-01-01T00:00:00Z", "toTimestamp": "2024-01-02T00:00:00Z"}"#;
    for path in ["/api/public/v2/metrics", "/api/public/metrics"] {
        let (status, body) = app.get(&format!("{path}?query={}", urlencode(query))).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(
            body,
            json!({"data": [{"name": "step", "count_count": 1}]}),
            "{path}"
        );
    }
    // The traces view: the legacy path only, as in Langfuse.
    let traces = r#"{"view": "traces", "metrics": [{"measure": "count", "aggregation": "count"}], "fromTimestamp": "2024-01-01T00:00:00Z", "toTimestamp": "2024-01-02T00:00:00Z"}"#;
    let (status, body) = app
        .get(&format!(
            "/api/public/v2/metrics?query={}",
            urlencode(traces)
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = app
        .get(&format!("/api/public/metrics?query={}", urlencode(traces)))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["count_count"], 1, "{body}");
}
