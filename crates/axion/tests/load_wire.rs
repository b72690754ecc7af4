//! The Opik and Logfire loaders against a local listener that answers like those backends: the
//! requests must have the shape of the Python SDKs' captured ones, and the answers must come
//! back as whole traces.

use std::sync::{Arc, Mutex};

use axion::load::{FetchTraces, LogfireTraceLoader, OpikTraceLoader, TimeWindow};
use axion::{ObservationLevel, ObservationType, Settings};
use axum::body::Bytes;
use axum::http::{HeaderMap, Uri};
use serde_json::{json, Value};

type Seen = Arc<Mutex<Vec<(String, HeaderMap, Value)>>>;

async fn backend(
    answer: impl Fn(&str, &Value) -> String + Send + Sync + 'static,
) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let answer = Arc::new(answer);
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let (log, answer) = (log.clone(), answer.clone());
        async move {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let text = answer(uri.path(), &body);
            log.lock()
                .unwrap()
                .push((uri.path().to_owned(), headers, body));
            text
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn fixture(path: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(path);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn assert_keys_from(ours: &Value, capture: &Value, what: &str) {
    for key in capture.as_object().unwrap().keys() {
        assert!(
            ours.get(key).is_some(),
            "{what}: the Python SDK sends {key}, we don't: {ours}"
        );
    }
}

const TRACE: &str = "01a1ffcf-09c1-7993-b858-1d8271a4e035";

#[tokio::test(flavor = "multi_thread")]
async fn opik_loader_searches_like_the_python_sdk() {
    let (base, seen) = backend(|path, _| {
        if path.ends_with("traces/search") {
            [json!({"id": TRACE, "name": "answer_question", "start_time": "2026-11-21T20:32:00.962059Z",
                    "input": {"question": "capital?"}, "output": {"answer": "Paris."},
                    "metadata": {"user_id": "user-42"}, "tags": ["capture"], "thread_id": "session-123",
                    "duration": 159.9, "total_estimated_cost": 0.00002,
                    "feedback_scores": [{"name": "relevance", "value": 0.9, "reason": "on topic", "source": "sdk"}]})]
            .iter()
            .map(|v| v.to_string() + "\n")
            .collect()
        } else {
            [json!({"id": "01a1ffcf-09c2-79f3-b740-9e9030dc19e9", "trace_id": TRACE, "name": "answer_question", "type": "general",
                    "start_time": "2026-11-21T20:32:00.962Z", "end_time": "2026-11-21T20:32:01.12Z"}),
             json!({"id": "01a1ffcf-0a5a-7bfb-bf25-b8195484ad5f", "trace_id": TRACE, "parent_span_id": "01a1ffcf-09c2-79f3-b740-9e9030dc19e9",
                    "name": "chat_completion", "type": "llm", "model": "gpt-4o-mini", "start_time": "2026-11-21T20:32:01.113Z",
                    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}, "total_estimated_cost": 0.00002,
                    "error_info": {"exception_type": "Timeout", "message": "slow", "traceback": ""},
                    "feedback_scores": [{"name": "accuracy", "value": 1.0, "category_name": "correct", "source": "sdk"}]})]
            .iter()
            .map(|v| v.to_string() + "\n")
            .collect()
        }
    })
    .await;
    let settings = Settings::from_pairs([
        ("OPIK_URL_OVERRIDE", format!("{base}/api")),
        ("OPIK_API_KEY", "key".to_owned()),
        ("OPIK_WORKSPACE", "capture-workspace".to_owned()),
        ("OPIK_PROJECT_NAME", "capture-opik-demo".to_owned()),
    ]);
    let traces = tokio::task::spawn_blocking(move || {
        let loader = OpikTraceLoader::from_settings(&settings).unwrap();
        loader
            .fetch_traces(&FetchTraces {
                limit: 10,
                window: TimeWindow::All,
                tags: vec!["capture".into()],
                ..FetchTraces::default()
            })
            .unwrap()
    })
    .await
    .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].0, "/api/v1/private/traces/search");
    assert_keys_from(
        &seen[0].2,
        &fixture("opik/010-post-api-v1-private-traces-search.json")["body"],
        "traces/search",
    );
    assert_eq!(
        seen[0].2["filters"][0],
        fixture("opik/010-post-api-v1-private-traces-search.json")["body"]["filters"][0]
    );
    assert_eq!(seen[0].1["authorization"], "key");
    assert_eq!(seen[1].0, "/api/v1/private/spans/search");
    assert_keys_from(
        &seen[1].2,
        &fixture("opik/012-post-api-v1-private-spans-search.json")["body"],
        "spans/search",
    );

    assert_eq!(traces.len(), 1);
    let loaded = &traces[0];
    assert_eq!(
        (
            loaded.trace.user_id.as_deref(),
            loaded.trace.session_id.as_deref()
        ),
        (Some("user-42"), Some("session-123"))
    );
    assert!(
        (loaded.latency.unwrap() - 0.1599).abs() < 1e-9,
        "duration ms → latency s"
    );
    let llm = loaded
        .observations
        .iter()
        .find(|o| o.name.as_deref() == Some("chat_completion"))
        .unwrap();
    assert_eq!(llm.r#type, ObservationType::Generation);
    assert_eq!(llm.usage_details.as_ref().unwrap()["total"], 15);
    assert_eq!(
        (llm.level, llm.status_message.as_deref()),
        (ObservationLevel::Error, Some("slow"))
    );
    let names: Vec<&str> = loaded.scores.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["relevance", "accuracy"]);
    assert_eq!(
        loaded.scores[1].observation_id.as_deref(),
        Some(llm.id.as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn logfire_loader_queries_like_the_python_sdk() {
    let (base, seen) = backend(|_, body| {
        let sql = body["sql"].as_str().unwrap_or_default();
        let root = json!({"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331", "parent_span_id": null,
            "span_name": "answer_question {question}", "kind": "span", "level": 9, "tags": ["capture", "demo"],
            "attributes": {"user.id": "user-42", "input.value": "{\"question\": \"capital?\"}", "logfire.msg": "x"},
            "start_timestamp": "2026-11-21T20:32:05.000000Z", "end_timestamp": "2026-11-21T20:32:06.500000Z"});
        let rows = if sql.contains("parent_span_id IS NULL") {
            vec![root]
        } else {
            vec![root, json!({"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "00f067aa0ba902b7",
                "parent_span_id": "b7ad6b7169203331", "span_name": "Chat Completion with {request_data[model]!r}", "kind": "span",
                "level": 17, "tags": [], "otel_status_code": "ERROR", "otel_status_message": "RateLimitError",
                "attributes": {"gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 3,
                               "operation.cost": 0.00002, "gen_ai.output.messages": "[{\"role\": \"assistant\"}]"},
                "start_timestamp": "2026-11-21T20:32:05.100000Z", "end_timestamp": "2026-11-21T20:32:06.000000Z"}),
                json!({"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "1111111111111111", "parent_span_id": "b7ad6b7169203331",
                "span_name": "cache miss", "kind": "log", "level": 13, "attributes": {},
                "start_timestamp": "2026-11-21T20:32:05.050000Z", "end_timestamp": "2026-11-21T20:32:05.050000Z"})]
        };
        json!({"schema": {"fields": []}, "data": rows}).to_string()
    })
    .await;
    let settings = Settings::from_pairs([
        ("LOGFIRE_READ_TOKEN", "read-token".to_owned()),
        ("LOGFIRE_BASE_URL", base),
    ]);
    let traces = tokio::task::spawn_blocking(move || {
        LogfireTraceLoader::from_settings(&settings)
            .unwrap()
            .fetch_traces(&FetchTraces {
                limit: 5,
                window: TimeWindow::HoursBack(2),
                tags: vec!["capture".into()],
                user_id: Some("user-42".into()),
                ..FetchTraces::default()
            })
            .unwrap()
    })
    .await
    .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        2,
        "one query for the roots, one for their spans"
    );
    let capture = fixture("logfire/004-post-v2-query.json");
    assert_eq!(seen[0].0, capture["path"]);
    assert_keys_from(&seen[0].2, &capture["body"], "/v2/query");
    assert_eq!(seen[0].1["authorization"], "read-token");
    let sql = seen[0].2["sql"].as_str().unwrap();
    assert!(
        sql.contains("array_has(tags, 'capture')")
            && sql.contains("attributes->>'user.id' = 'user-42'"),
        "{sql}"
    );

    let loaded = &traces[0];
    assert_eq!(
        loaded.trace.name.as_deref(),
        Some("answer_question {question}")
    );
    assert_eq!(loaded.trace.user_id.as_deref(), Some("user-42"));
    assert_eq!(loaded.trace.tags, ["capture", "demo"]);
    assert_eq!(loaded.trace.input, Some(json!({"question": "capital?"})));
    assert_eq!(loaded.latency, Some(1.5));
    assert_eq!(loaded.observations.len(), 3);
    let chat = loaded
        .observations
        .iter()
        .find(|o| o.r#type == ObservationType::Generation)
        .unwrap();
    assert_eq!(
        (chat.model.as_deref(), chat.level),
        (Some("gpt-4o-mini"), ObservationLevel::Error)
    );
    assert_eq!(chat.status_message.as_deref(), Some("RateLimitError"));
    assert_eq!(chat.usage_details.as_ref().unwrap()["input"], 12);
    assert_eq!(chat.output, Some(json!([{"role": "assistant"}])));
    let event = loaded
        .observations
        .iter()
        .find(|o| o.r#type == ObservationType::Event)
        .unwrap();
    assert_eq!(event.level, ObservationLevel::Warning);
}

#[test]
fn sql_strings_are_quoted() {
    let settings = Settings::from_pairs([
        ("LOGFIRE_READ_TOKEN", "t"),
        ("LOGFIRE_BASE_URL", "http://127.0.0.1:9"),
    ]);
    assert!(LogfireTraceLoader::from_settings(&settings).is_ok());
    assert!(LogfireTraceLoader::from_settings(&Settings::default())
        .unwrap_err()
        .to_string()
        .contains("LOGFIRE_READ_TOKEN"));
}

#[tokio::test(flavor = "multi_thread")]
async fn langfuse_loader_retries_429_and_5xx() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            use axum::http::StatusCode;
            match counter.fetch_add(1, Ordering::SeqCst) {
                0 => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], String::new()),
                1 => (StatusCode::BAD_GATEWAY, [("retry-after", "0")], String::new()),
                _ => (
                    StatusCode::OK,
                    [("retry-after", "0")],
                    json!({"data": [{"id": "t1", "name": "ok", "tags": []}], "meta": {"page": 1, "limit": 50, "totalItems": 1, "totalPages": 1}})
                        .to_string(),
                ),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let started = std::time::Instant::now();
    let traces = tokio::task::spawn_blocking(move || {
        let loader =
            axion::load::LangfuseTraceLoader::new(&format!("http://{addr}"), "pk", "sk").unwrap();
        loader
            .fetch_traces(&FetchTraces {
                fetch_full_traces: false,
                ..FetchTraces::default()
            })
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(traces.len(), 1);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After honoured"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn opik_score_target_sends_feedback_scores() {
    use axion::publish::{publish_to_observability, EvaluationResult, OpikScores, PublishOptions};
    let (base, seen) = backend(|_, _| String::new()).await;
    let settings = Settings::from_pairs([
        ("OPIK_URL_OVERRIDE", format!("{base}/api")),
        ("OPIK_WORKSPACE", "ws".to_owned()),
        ("OPIK_PROJECT_NAME", "evals".to_owned()),
    ]);
    let report = tokio::task::spawn_blocking(move || {
        let mut item = axion::dataset::DatasetItem::new("i1");
        item.trace_id = Some("0af7651916cd43dd8448eb211c80319c".into());
        let results = vec![EvaluationResult {
            item,
            metrics: std::collections::BTreeMap::from([("exact_match".to_owned(), 1.0)]),
            comment: Some("good".into()),
        }];
        publish_to_observability(
            &results,
            &PublishOptions::default(),
            &mut OpikScores::from_settings(&settings).unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!((report.uploaded, report.failed), (1, 0));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].0, "/api/v1/private/traces/feedback-scores");
    let score = &seen[0].2["scores"][0];
    assert_eq!(
        (
            &score["name"],
            &score["value"],
            &score["reason"],
            &score["project_name"]
        ),
        (
            &json!("exact_match"),
            &json!(1.0),
            &json!("good"),
            &json!("evals")
        )
    );
    let id = score["id"].as_str().unwrap();
    assert_eq!(&id[14..15], "7", "a UUIDv7 derived from the trace id: {id}");
}
