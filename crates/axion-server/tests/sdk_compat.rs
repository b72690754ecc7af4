//! The official SDKs as clients: each generation of the Langfuse Python SDK (and a plain
//! OpenTelemetry exporter) runs its scenario (`tests/python/`) against a real server, then
//! everything is checked through the read API.
//!
//! Needs the venvs from `scripts/python-sdks.sh`, so these tests are `#[ignore]`d in a plain
//! `cargo test`; `scripts/test.sh` makes the venvs and runs them with `--ignored`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TestServer, PUBLIC_KEY, SECRET_KEY};
use serde_json::{json, Value};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `tests/python/<script>.py <run>` with the venv's Python; returns its last stdout line.
async fn run_scenario(server: &TestServer, venv: &str, script: &str, run: &str) -> Value {
    let python = repo_root().join("target/py").join(venv).join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/python-sdks.sh first",
        python.display()
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(format!("{script}.py"));
    let base = server.base.clone();
    let run = run.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(run)
            .env("LANGFUSE_HOST", &base)
            .env("LANGFUSE_BASE_URL", &base)
            .env("LANGFUSE_PUBLIC_KEY", PUBLIC_KEY)
            .env("LANGFUSE_SECRET_KEY", SECRET_KEY)
            .env("LANGFUSE_DEBUG", "false")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "scenario failed:\n{stdout}\n{stderr}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|_| panic!("no JSON summary:\n{stdout}\n{stderr}"))
}

fn by_name<'a>(observations: &'a [Value], name: &str) -> &'a Value {
    observations
        .iter()
        .find(|observation| observation["name"] == name)
        .unwrap_or_else(|| panic!("no observation {name} in {observations:#?}"))
}

fn close(actual: &Value, expected: f64) -> bool {
    actual
        .as_f64()
        .is_some_and(|value| (value - expected).abs() < 1e-9)
}

async fn trace(server: &TestServer, id: &str) -> Value {
    let (status, trace) = server.get(&format!("/api/public/traces/{id}")).await;
    assert_eq!(status, 200, "{trace}");
    trace
}

/// The support-bot trace, identical in every SDK generation.
async fn check_support_trace(server: &TestServer, id: &str, run: &str, typed: bool) {
    let trace = trace(server, id).await;
    assert_eq!(trace["name"], format!("support-{run}"));
    assert_eq!(trace["userId"], "alice");
    assert_eq!(trace["sessionId"], format!("sess-{run}"));
    assert!(
        trace["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("support")),
        "{}",
        trace["tags"]
    );
    assert_eq!(trace["metadata"]["priority"], "high");
    assert_eq!(
        trace["input"],
        json!({"question": "How do I reset my password?"})
    );
    assert_eq!(trace["output"], json!({"answer": "Use the reset link."}));
    assert_eq!(trace["release"], "r-7");
    assert_eq!(trace["version"], "2.0");
    // 120 × $0.15/M + 30 × $0.60/M computed for gpt-4o-mini, plus $0.003 sent for polish-answer.
    assert!(
        close(&trace["totalCost"], 0.003036),
        "{}",
        trace["totalCost"]
    );

    let observations = trace["observations"].as_array().unwrap();
    let classify = by_name(observations, "classify");
    let search = by_name(observations, "search-kb");
    let draft = by_name(observations, "draft-answer");
    let polish = by_name(observations, "polish-answer");
    let email = by_name(observations, "send-email");
    for sibling in [search, draft, polish, email] {
        assert_eq!(
            sibling["parentObservationId"], classify["parentObservationId"],
            "siblings share a parent"
        );
    }
    assert_eq!(classify["output"], json!({"intent": "account"}));
    assert_eq!(search["type"], if typed { "RETRIEVER" } else { "SPAN" });
    assert_eq!(search["output"], json!({"docs": ["kb-1", "kb-2"]}));
    let miss = by_name(observations, "kb-miss");
    assert_eq!(
        (&miss["type"], &miss["level"]),
        (&json!("EVENT"), &json!("WARNING"))
    );
    assert_eq!(miss["parentObservationId"], search["id"]);

    assert_eq!(draft["type"], "GENERATION");
    assert_eq!(draft["model"], "gpt-4o-mini");
    // SDK 2.x stringifies float model parameters; they are stored as sent.
    let temperature = &draft["modelParameters"]["temperature"];
    assert!(temperature == 0.1 || temperature == "0.1", "{temperature}");
    assert_eq!(
        draft["input"],
        json!([{"role": "user", "content": "How do I reset my password?"}])
    );
    assert_eq!(
        draft["usageDetails"],
        json!({"input": 120, "output": 30, "total": 150})
    );
    assert!(
        close(&draft["calculatedTotalCost"], 3.6e-5),
        "{}",
        draft["costDetails"]
    );
    assert!(
        close(&polish["costDetails"]["total"], 0.003),
        "a sent cost wins: {}",
        polish["costDetails"]
    );

    assert_eq!(email["type"], if typed { "TOOL" } else { "SPAN" });
    assert_eq!(
        (&email["level"], &email["statusMessage"]),
        (&json!("ERROR"), &json!("smtp timeout"))
    );

    let scores = trace["scores"].as_array().unwrap();
    let score = |name: &str| {
        scores
            .iter()
            .find(|score| score["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no score {name}"))
    };
    let resolution = score("resolution");
    assert_eq!(
        (resolution["value"].as_f64(), &resolution["comment"]),
        (Some(0.9), &json!("resolved"))
    );
    assert_eq!(score("sentiment")["stringValue"], "positive");
    let grounded = score("grounded");
    assert_eq!(
        (&grounded["dataType"], &grounded["observationId"]),
        (&json!("BOOLEAN"), &draft["id"])
    );
}

/// The decorated async flow: two concurrent children of one root, a generation, a score.
async fn check_decorated_trace(server: &TestServer, id: &str, run: &str) {
    let trace = trace(server, id).await;
    assert_eq!(trace["name"], format!("decorated-{run}"));
    assert_eq!(trace["userId"], "bob");
    assert!(trace["tags"]
        .as_array()
        .unwrap()
        .contains(&json!("decorated")));
    let observations = trace["observations"].as_array().unwrap();
    // SDK 2.x makes the outermost decorated function the trace itself, later SDKs a root span.
    let root_id = observations
        .iter()
        .find(|o| o["name"] == format!("decorated-{run}"))
        .map_or(Value::Null, |root| root["id"].clone());
    let lookups: Vec<&Value> = observations
        .iter()
        .filter(|o| o["name"] == "lookup")
        .collect();
    assert_eq!(lookups.len(), 2, "both concurrent lookups arrived");
    for lookup in lookups {
        assert_eq!(
            lookup["parentObservationId"], root_id,
            "concurrent children parented to the root"
        );
    }
    let summarize = by_name(observations, "summarize");
    assert_eq!(
        (&summarize["type"], &summarize["model"]),
        (&json!("GENERATION"), &json!("gpt-4o"))
    );
    assert!(
        close(&summarize["calculatedTotalCost"], 7.5e-5),
        "{}",
        summarize["costDetails"]
    );
    let scores = trace["scores"].as_array().unwrap();
    assert!(scores
        .iter()
        .any(|score| score["name"] == "quality" && score["value"] == 0.7));
    let (_, session) = server
        .get(&format!("/api/public/sessions/sess-{run}"))
        .await;
    assert_eq!(
        session["traces"].as_array().map(Vec::len),
        Some(2),
        "both traces in the session: {session}"
    );
}

async fn langfuse_generation(venv: &str, script: &str, typed: bool) -> Value {
    langfuse_generation_into(TestServer::start().await, venv, script, typed).await
}

async fn langfuse_generation_into(
    server: TestServer,
    venv: &str,
    script: &str,
    typed: bool,
) -> Value {
    let run = format!("{venv}-run");
    let summary = run_scenario(&server, venv, script, &run).await;
    check_support_trace(&server, summary["support"].as_str().unwrap(), &run, typed).await;
    check_decorated_trace(&server, summary["decorated"].as_str().unwrap(), &run).await;
    server.stop().await;
    summary["reads"].clone()
}

#[tokio::test]
#[ignore = "needs the Python SDK venvs: scripts/python-sdks.sh"]
async fn langfuse_2_sdk() {
    let reads = langfuse_generation("langfuse2", "langfuse_v2", false).await;
    assert_eq!(
        reads,
        json!({"trace_observations": 6, "trace_scores": 3, "traces_for_alice": 1, "generations": 2,
               "draft_model": "gpt-4o-mini", "sessions": 1}),
        "the SDK's own read helpers parse our answers"
    );
}

#[tokio::test]
#[ignore = "needs the Python SDK venvs: scripts/python-sdks.sh"]
async fn langfuse_3_sdk() {
    let reads = langfuse_generation("langfuse3", "langfuse_v3", true).await;
    assert_eq!(
        reads,
        json!({"auth_check": true, "trace_observations": 7, "trace_scores": 3, "traces_for_alice": 1,
               "generations": 2, "draft_model": "gpt-4o-mini", "v2_observations": 7, "sessions": 1,
               "v2_scores": 3, "metrics_generations": 2, "legacy_metrics_generations": 2}),
        "the SDK's own API client parses our answers"
    );
}

#[tokio::test]
#[ignore = "needs the Python SDK venvs: scripts/python-sdks.sh"]
async fn langfuse_5_sdk() {
    let reads = langfuse_generation("langfuse5", "langfuse_v5", true).await;
    assert_eq!(
        reads,
        json!({"auth_check": true, "v2_observations": 7, "v3_scores": 3, "metrics_generations": 2}),
        "the SDK's own API client parses our answers"
    );
}

/// Each Langfuse SDK generation again, into a server on PostgreSQL: the same checks and the
/// same answers to the SDKs' own read helpers.
#[tokio::test]
#[ignore = "needs the Python SDK venvs and PostgreSQL: scripts/test.sh"]
async fn langfuse_sdks_into_postgres() {
    for (venv, script, typed) in [
        ("langfuse2", "langfuse_v2", false),
        ("langfuse3", "langfuse_v3", true),
        ("langfuse5", "langfuse_v5", true),
    ] {
        let on_sqlite = langfuse_generation(venv, script, typed).await;
        let server = TestServer::start_postgres().await;
        let on_postgres = langfuse_generation_into(server, venv, script, typed).await;
        assert_eq!(
            on_postgres, on_sqlite,
            "{venv}: the SDK reads the same answers"
        );
    }
}

#[tokio::test]
#[ignore = "needs the Python SDK venvs: scripts/python-sdks.sh"]
async fn opentelemetry_otlp_exporter() {
    opentelemetry_otlp_exporter_into(TestServer::start().await).await;
}

#[tokio::test]
#[ignore = "needs the Python SDK venvs and PostgreSQL: scripts/test.sh"]
async fn opentelemetry_otlp_exporter_into_postgres() {
    opentelemetry_otlp_exporter_into(TestServer::start_postgres().await).await;
}

async fn opentelemetry_otlp_exporter_into(server: TestServer) {
    let summary = run_scenario(&server, "otel", "otel_exporter", "otel").await;
    let trace = trace(&server, summary["trace"].as_str().unwrap()).await;
    assert_eq!(trace["name"], "otel-chat-otel");
    assert_eq!(
        (&trace["userId"], &trace["sessionId"]),
        (&json!("carol"), &json!("otel-sess-otel"))
    );
    assert_eq!(trace["environment"], "staging");
    assert_eq!(trace["input"], json!({"question": "weather?"}));
    assert_eq!(trace["output"], "Sunny.");
    let observations = trace["observations"].as_array().unwrap();
    let chat = by_name(observations, "chat gpt-4o");
    assert_eq!(
        (&chat["type"], &chat["model"]),
        (&json!("GENERATION"), &json!("gpt-4o"))
    );
    assert_eq!(chat["modelParameters"]["temperature"], 0.3);
    assert_eq!(
        chat["usageDetails"],
        json!({"input": 200, "output": 50, "total": 250})
    );
    assert!(
        close(&chat["calculatedTotalCost"], 1e-3),
        "{}",
        chat["costDetails"]
    );
    assert_eq!(
        chat["input"],
        json!([{"role": "user", "content": "weather?"}])
    );
    assert_eq!(chat["output"], json!([{"content": "Sunny."}]));
    let tool = by_name(observations, "get_weather");
    assert_eq!(
        (&tool["type"], &tool["level"]),
        (&json!("TOOL"), &json!("ERROR"))
    );
    assert_eq!(tool["statusMessage"], "upstream 503");
    assert_eq!(
        tool["metadata"]["resourceAttributes"]["service.name"],
        "otel-bot"
    );
    server.stop().await;
}
