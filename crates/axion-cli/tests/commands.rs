//! `axion traces | dataset | scores` against a real `axion serve`, with the SDK's variables.

use std::process::Command;
use std::time::Duration;

use axion::{MetadataType, Settings, Tracer, TracerRegistry};

const PK: &str = "pk-lf-cli";
const SK: &str = "sk-lf-cli";

fn axion(host: &str, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_axion"))
        .args(args)
        .env("LANGFUSE_HOST", host)
        .env("LANGFUSE_PUBLIC_KEY", PK)
        .env("LANGFUSE_SECRET_KEY", SK)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn traces_dataset_and_scores_commands() {
    let dir = tempfile::tempdir().unwrap();
    let server = axion_server::Server::start(axion_server::ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        keys: Some((PK.into(), SK.into())),
        database_url: None,
    })
    .await
    .unwrap();
    let host = format!("http://{}", server.local_addr());
    let work = dir.path().to_path_buf();
    let host_for_blocking = host.clone();
    let trace_id = tokio::task::spawn_blocking(move || {
        let settings = Settings::from_pairs([
            ("LANGFUSE_HOST", host_for_blocking.clone()),
            ("LANGFUSE_PUBLIC_KEY", PK.to_owned()),
            ("LANGFUSE_SECRET_KEY", SK.to_owned()),
        ]);
        let provider = TracerRegistry::create("langfuse", &settings).unwrap();
        let tracer = Tracer::builder(MetadataType::Llm).provider(provider).force_new(true).build();
        let mut first = String::new();
        for i in 0..3 {
            let root = tracer.span("cli-run");
            root.set_input(serde_json::json!({"question": format!("q{i}")}));
            root.set_output(serde_json::json!({"answer": format!("a{i}")}));
            root.update_trace(axion::TraceUpdate::new().tags(["cli", if i == 0 { "first" } else { "other" }]).user_id("u1"));
            if i == 0 {
                first = root.trace_id().unwrap().to_string();
            }
        }
        tracer.flush(Duration::from_secs(10)).unwrap();
        let host = host_for_blocking;

        let (ok, stdout, stderr) = axion(&host, &["traces", "list", "--tags", "cli", "--hours-back", "1"]);
        assert!(ok, "{stderr}");
        assert_eq!(stdout.lines().filter(|line| line.contains("cli-run")).count(), 3, "{stdout}");
        let (ok, stdout, _) = axion(&host, &["traces", "list", "--tags", "cli,first", "--json"]);
        assert!(ok);
        let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 1);

        let (ok, stdout, stderr) = axion(&host, &["traces", "get", &first]);
        assert!(ok, "{stderr}");
        assert!(stdout.contains("SPAN cli-run"), "{stdout}");

        let collection = work.join("traces.json");
        let (ok, _, stderr) = axion(&host, &["traces", "export", "--out", collection.to_str().unwrap()]);
        assert!(ok, "{stderr}");
        assert_eq!(axion::collection::TraceCollection::load(&collection).unwrap().len(), 3);

        let dataset = work.join("items.csv");
        let (ok, _, stderr) = axion(&host, &["dataset", "build", "--tags", "cli", "--out", dataset.to_str().unwrap()]);
        assert!(ok, "{stderr}");
        let items = axion::dataset::Dataset::load(&dataset, false).unwrap();
        assert_eq!(items.len(), 3);
        assert!(items.items().iter().any(|item| item.query.as_deref() == Some("q0")));

        let scores = work.join("scores.jsonl");
        std::fs::write(&scores, format!("{{\"trace_id\": \"{first}\", \"name\": \"manual\", \"value\": 0.5, \"comment\": \"from cli\"}}\n")).unwrap();
        let (ok, stdout, stderr) = axion(&host, &["scores", "push", scores.to_str().unwrap()]);
        assert!(ok, "{stderr}");
        assert!(stdout.contains("uploaded 1, skipped 0, failed 0"), "{stdout}");
        let (_, stdout, _) = axion(&host, &["traces", "get", &first]);
        assert!(stdout.contains("score manual = 0.5 (from cli)"), "{stdout}");

        let (ok, _, stderr) = axion(&host, &["traces", "list", "--from", "yesterday"]);
        assert!(!ok && stderr.contains("RFC 3339"), "{stderr}");
        first
    })
    .await
    .unwrap();
    assert_eq!(trace_id.len(), 32);
    server.shutdown().await;
}
