//! The SDK's exporters into a real `axion serve` on 127.0.0.1:0, read back through its API and
//! compared as a whole tree; plus failure injection (429 with Retry-After, 503, connection
//! resets, server down for 10 s and back) on a local listener.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axion::{MetadataType, ObservationLevel, Settings, Tracer, TracerRegistry};
use axion_server::{Server, ServerConfig};
use serde_json::{json, Value};

const PK: &str = "pk-lf-e2e";
const SK: &str = "sk-lf-e2e";

async fn server() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        keys: Some((PK.into(), SK.into())),
        database_url: None,
    })
    .await
    .unwrap();
    (server, dir)
}

fn provider(name: &str, pairs: &[(&str, String)]) -> Arc<dyn axion::BaseTracer> {
    let settings = Settings::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())));
    TracerRegistry::create(name, &settings).unwrap()
}

fn langfuse(addr: SocketAddr, transport: &str) -> Arc<dyn axion::BaseTracer> {
    provider(
        "langfuse",
        &[
            ("LANGFUSE_PUBLIC_KEY", PK.into()),
            ("LANGFUSE_SECRET_KEY", SK.into()),
            ("LANGFUSE_HOST", format!("http://{addr}")),
            ("LANGFUSE_TAGS", "from-env".into()),
            ("LANGFUSE_RELEASE", "rel-9".into()),
            ("AXION_LANGFUSE_TRANSPORT", transport.into()),
        ],
    )
}

/// A small support-bot trace: root › retrieve (retriever) › generate (generation) › event,
/// a failing tool, trace attributes, and two scores.
fn run_scenario(tracer: &Tracer, user: &str) -> String {
    let root = tracer.span("answer-ticket");
    root.update_trace(
        axion::TraceUpdate::new()
            .name(format!("ticket-{user}"))
            .user_id(user)
            .session_id("sess-1")
            .tags(["support"])
            .metadata(json!({"ticket": 42}))
            .input(json!({"question": "refund?"}))
            .output(json!({"answer": "5 days"})),
    );
    let trace_id = root.trace_id().expect("recording").to_string();
    {
        let retrieve = tracer
            .span_builder("retrieve")
            .kind(axion::ObservationType::Retriever)
            .enter();
        retrieve.set_input(json!({"query": "refund"}));
        retrieve.set_output(json!(["kb-1", "kb-2"]));
    }
    {
        let generate = tracer
            .span_builder("generate")
            .kind(axion::ObservationType::Generation)
            .enter();
        generate.set_model("gpt-4o");
        generate.set_model_parameters(json!({"temperature": 0.2}));
        generate.set_input(json!([{"role": "user", "content": "refund?"}]));
        generate.set_output(json!({"role": "assistant", "content": "5 days"}));
        generate.set_usage(1000, 100);
        generate.add_event(
            "cache-miss",
            ObservationLevel::Warning,
            json!({"key": "k1"}),
        );
    }
    {
        let tool = tracer
            .span_builder("send-email")
            .kind(axion::ObservationType::Tool)
            .enter();
        tool.set_level(ObservationLevel::Error);
        tool.set_status_message("smtp timeout");
    }
    root.score_trace("helpfulness", 0.9, Some("good"));
    drop(root);
    trace_id
}

/// [`run_scenario`] off the async runtime (the SDK's calls block, as in a sync program).
async fn scenario(tracer: &Tracer, user: &str) -> String {
    let (tracer, user) = (tracer.clone(), user.to_owned());
    tokio::task::spawn_blocking(move || run_scenario(&tracer, &user))
        .await
        .unwrap()
}

/// Flushes off the async runtime, waiting up to 30 s.
async fn flushed(tracer: &Tracer) -> axion::FlushReport {
    let tracer = tracer.clone();
    tokio::task::spawn_blocking(move || tracer.flush(Duration::from_secs(30)))
        .await
        .unwrap()
        .unwrap()
}

async fn read(addr: SocketAddr, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .basic_auth(PK, Some(SK))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn by_name<'a>(observations: &'a [Value], name: &str) -> &'a Value {
    observations
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {observations:#?}"))
}

async fn check_tree(addr: SocketAddr, trace_id: &str, user: &str) {
    let trace = read(addr, &format!("/api/public/traces/{trace_id}")).await;
    assert_eq!(trace["name"], format!("ticket-{user}"), "{trace:#}");
    assert_eq!(trace["userId"], user);
    assert_eq!(trace["sessionId"], "sess-1");
    let mut tags: Vec<String> = serde_json::from_value(trace["tags"].clone()).unwrap();
    tags.sort();
    assert_eq!(tags, ["from-env", "support"]);
    assert_eq!(trace["metadata"]["ticket"], 42);
    assert_eq!(trace["input"], json!({"question": "refund?"}));
    assert_eq!(trace["output"], json!({"answer": "5 days"}));
    assert_eq!(trace["release"], "rel-9");
    let observations = trace["observations"].as_array().unwrap();
    assert_eq!(observations.len(), 5, "{observations:#?}");
    let root = by_name(observations, "answer-ticket");
    assert!(root["parentObservationId"].is_null());
    let retrieve = by_name(observations, "retrieve");
    assert_eq!(
        (&retrieve["type"], &retrieve["parentObservationId"]),
        (&json!("RETRIEVER"), &root["id"])
    );
    assert_eq!(retrieve["output"], json!(["kb-1", "kb-2"]));
    let generate = by_name(observations, "generate");
    assert_eq!(generate["type"], "GENERATION");
    assert_eq!(generate["model"], "gpt-4o");
    assert_eq!(generate["modelParameters"]["temperature"], 0.2);
    assert_eq!(generate["usageDetails"]["input"], 1000);
    assert_eq!(generate["usageDetails"]["output"], 100);
    assert!(
        (generate["calculatedTotalCost"].as_f64().unwrap() - 0.0035).abs() < 1e-12,
        "computed by the server"
    );
    let event = by_name(observations, "cache-miss");
    assert_eq!(
        (&event["type"], &event["level"]),
        (&json!("EVENT"), &json!("WARNING"))
    );
    assert_eq!(event["parentObservationId"], generate["id"]);
    let tool = by_name(observations, "send-email");
    assert_eq!(
        (&tool["type"], &tool["level"], &tool["statusMessage"]),
        (&json!("TOOL"), &json!("ERROR"), &json!("smtp timeout"))
    );
    let scores = trace["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 1, "{scores:#?}");
    assert_eq!(
        (&scores[0]["name"], scores[0]["value"].as_f64()),
        (&json!("helpfulness"), Some(0.9))
    );
}

async fn langfuse_round_trip(transport: &str) {
    let (server, _dir) = server().await;
    let addr = server.local_addr();
    let tracer = Tracer::builder(MetadataType::Llm)
        .provider(langfuse(addr, transport))
        .force_new(true)
        .build();
    let trace_id = scenario(&tracer, "alice").await;
    let report = flushed(&tracer).await;
    assert_eq!(report.dropped_total, 0);
    check_tree(addr, &trace_id, "alice").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn langfuse_otlp_transport_lands_the_whole_tree() {
    langfuse_round_trip("otlp").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn langfuse_ingestion_transport_lands_the_whole_tree() {
    langfuse_round_trip("ingestion").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn otel_provider_speaks_genai_conventions() {
    let (server, _dir) = server().await;
    let addr = server.local_addr();
    let auth = format!("Basic {}", base64_encode(&format!("{PK}:{SK}")));
    let otel = provider(
        "otel",
        &[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://{addr}/api/public/otel"),
            ),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                format!("Authorization={}", auth.replace(' ', "%20")),
            ),
            ("OTEL_SERVICE_NAME", "support-bot".into()),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".into()),
        ],
    );
    let tracer = Tracer::builder(MetadataType::Llm)
        .provider(otel)
        .force_new(true)
        .build();
    let trace_id = scenario(&tracer, "bob").await;
    flushed(&tracer).await;
    let trace = read(addr, &format!("/api/public/traces/{trace_id}")).await;
    assert_eq!(trace["userId"], "bob");
    assert_eq!(trace["sessionId"], "sess-1");
    let observations = trace["observations"].as_array().unwrap();
    let generate = by_name(observations, "generate");
    assert_eq!(
        (&generate["type"], &generate["model"]),
        (&json!("GENERATION"), &json!("gpt-4o"))
    );
    assert_eq!(generate["usageDetails"]["input"], 1000);
    assert_eq!(
        generate["input"],
        json!([{"role": "user", "content": "refund?"}])
    );
    assert_eq!(by_name(observations, "retrieve")["type"], "RETRIEVER");
    let tool = by_name(observations, "send-email");
    assert_eq!(
        (&tool["type"], &tool["level"]),
        (&json!("TOOL"), &json!("ERROR"))
    );
    assert_eq!(
        generate["metadata"]["resourceAttributes"]["service.name"],
        "support-bot"
    );
    server.shutdown().await;
}

fn base64_encode(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A listener that answers 429 (Retry-After: 1), then 503, then proxies to the real server.
async fn flaky_front(backend: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode, Uri};
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let counter = counter.clone();
        async move {
            match counter.fetch_add(1, Ordering::SeqCst) {
                0 => (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "1")],
                    Bytes::new(),
                ),
                1 => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [("retry-after", "0")],
                    Bytes::new(),
                ),
                _ => {
                    let mut request =
                        reqwest::Client::new().post(format!("http://{backend}{}", uri.path()));
                    for (name, value) in &headers {
                        if name != "host" && name != "content-length" {
                            request = request.header(name, value);
                        }
                    }
                    let response = request.body(body).send().await.unwrap();
                    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
                    (
                        status,
                        [("retry-after", "0")],
                        response.bytes().await.unwrap(),
                    )
                }
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hits)
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_429_and_503_then_delivers_everything() {
    let (server, _dir) = server().await;
    let (front, hits) = flaky_front(server.local_addr()).await;
    let tracer = Tracer::builder(MetadataType::Llm)
        .provider(langfuse(front, "otlp"))
        .force_new(true)
        .build();
    let started = std::time::Instant::now();
    let trace_id = scenario(&tracer, "carol").await;
    let report = flushed(&tracer).await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(report.dropped_total, 0);
    assert!(hits.load(Ordering::SeqCst) >= 3);
    check_tree(server.local_addr(), &trace_id, "carol").await;
    server.shutdown().await;
}

/// A listener that resets the first `resets` connections (TCP RST, no answer) as soon as a
/// request starts arriving, then passes connections through to the real server. Counts the
/// connections it accepted.
async fn resetting_front(backend: SocketAddr, resets: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            if counter.fetch_add(1, Ordering::SeqCst) < resets {
                let _ = client.read(&mut [0u8; 1024]).await;
                let _ = client.set_zero_linger();
                drop(client);
                continue;
            }
            tokio::spawn(async move {
                if let Ok(mut server) = tokio::net::TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_resets_are_retried_and_nothing_is_lost() {
    let (server, _dir) = server().await;
    let (front, accepted) = resetting_front(server.local_addr(), 2).await;
    let tracer = Tracer::builder(MetadataType::Llm)
        .provider(langfuse(front, "otlp"))
        .force_new(true)
        .build();
    let trace_id = scenario(&tracer, "dave").await;
    let report = flushed(&tracer).await;
    assert_eq!(
        report.dropped_total, 0,
        "every reset request was sent again"
    );
    assert!(
        accepted.load(Ordering::SeqCst) >= 3,
        "two connections were reset before one got through"
    );
    assert_eq!(tracer.stats().export.dropped_export_failed, 0);
    check_tree(server.local_addr(), &trace_id, "dave").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_is_down_for_a_while_loses_nothing() {
    // Reserve a port, keep it closed while spans are produced, then start the server there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let tracer = Tracer::builder(MetadataType::Llm)
        .provider(langfuse(addr, "otlp"))
        .force_new(true)
        .build();
    let trace_ids: Vec<String> = tokio::task::spawn_blocking({
        let tracer = tracer.clone();
        move || {
            (0..20)
                .map(|i| run_scenario(&tracer, &format!("user-{i}")))
                .collect()
        }
    })
    .await
    .unwrap();
    let flushing = tokio::task::spawn_blocking({
        let tracer = tracer.clone();
        move || tracer.flush(Duration::from_secs(30))
    });
    // Down for 10 s, as the failure injection asks: the retries back off to 5 s and
    // keep going (a batch may be retried for 60 s).
    tokio::time::sleep(Duration::from_secs(10)).await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(ServerConfig {
        listen: addr,
        data_dir: dir.path().to_path_buf(),
        keys: Some((PK.into(), SK.into())),
        database_url: None,
    })
    .await
    .unwrap();
    let report = flushing.await.unwrap().unwrap();
    assert_eq!(
        report.dropped_total, 0,
        "nothing lost while the server was down"
    );
    for (i, trace_id) in trace_ids.iter().enumerate() {
        check_tree(addr, trace_id, &format!("user-{i}")).await;
    }
    assert_eq!(tracer.stats().export.dropped_export_failed, 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backpressure_keeps_every_span_of_a_burst_larger_than_the_queue() {
    let (server, _dir) = server().await;
    let addr = server.local_addr();
    let provider = provider(
        "langfuse",
        &[
            ("LANGFUSE_PUBLIC_KEY", PK.into()),
            ("LANGFUSE_SECRET_KEY", SK.into()),
            ("LANGFUSE_HOST", format!("http://{addr}")),
            ("AXION_EXPORT_QUEUE_SIZE", "8".into()),
            ("AXION_EXPORT_BATCH_SIZE", "4".into()),
            ("AXION_EXPORT_BLOCK_MS", "10000".into()),
        ],
    );
    let tracer = Tracer::builder(MetadataType::Llm)
        .provider(provider)
        .force_new(true)
        .build();
    let spans = 300;
    tokio::task::spawn_blocking({
        let tracer = tracer.clone();
        move || {
            for i in 0..spans {
                let span = tracer.span("burst");
                span.set_input(json!({"i": i}));
            }
        }
    })
    .await
    .unwrap();
    let report = flushed(&tracer).await;
    let stats = tracer.stats().export;
    assert_eq!(report.dropped_total, 0, "{stats:?}");
    assert_eq!(stats.dropped_queue_full, 0, "{stats:?}");
    let listed = read(addr, "/api/public/traces?name=burst&limit=1").await;
    assert_eq!(listed["meta"]["totalItems"], json!(spans), "{listed}");
    server.shutdown().await;
}

#[test]
fn backpressure_gives_up_at_once_while_the_backend_is_down() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let provider = provider(
        "langfuse",
        &[
            ("LANGFUSE_PUBLIC_KEY", PK.into()),
            ("LANGFUSE_SECRET_KEY", SK.into()),
            ("LANGFUSE_HOST", format!("http://127.0.0.1:{port}")),
            ("AXION_EXPORT_QUEUE_SIZE", "4".into()),
            ("AXION_EXPORT_BATCH_SIZE", "2".into()),
            ("AXION_EXPORT_BLOCK_MS", "200".into()),
        ],
    );
    let tracer = Tracer::builder(MetadataType::Llm)
        .provider(provider)
        .force_new(true)
        .build();
    let started = std::time::Instant::now();
    for _ in 0..200 {
        drop(tracer.span("while-down"));
    }
    // One wait of 200 ms, then drops without waiting until the worker gets anywhere.
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(tracer.stats().export.dropped_queue_full > 0);
}
