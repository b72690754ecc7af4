//! The whole loop on real parts: SDK → `axion serve` → loader → TraceCollection → Dataset →
//! evaluation → scores published back and visible on the trace through the read API.

use std::collections::BTreeMap;
use std::time::Duration;

use axion::collection::{TraceCollection, TraceFilter};
use axion::dataset::Dataset;
use axion::load::{FetchTraces, LangfuseTraceLoader, TimeWindow};
use axion::publish::{
    publish_to_observability, EvaluationResult, LangfuseScores, PublishOptions, ScoreLevel,
};
use axion::{MetadataType, ObservationType, Settings, Tracer, TracerRegistry};
use axion_server::{Server, ServerConfig};
use serde_json::{json, Value};

const PK: &str = "pk-lf-loop";
const SK: &str = "sk-lf-loop";

fn settings(addr: std::net::SocketAddr) -> Settings {
    Settings::from_pairs([
        ("LANGFUSE_PUBLIC_KEY", PK.to_owned()),
        ("LANGFUSE_SECRET_KEY", SK.to_owned()),
        ("LANGFUSE_HOST", format!("http://{addr}")),
    ])
}

/// A support bot answering `n` questions, each its own trace.
fn produce(tracer: &Tracer, n: usize) {
    for i in 0..n {
        let root = tracer.span("support-bot");
        let question = format!("question {i}?");
        let answer = if i % 2 == 0 {
            format!("answer {i}")
        } else {
            "I don't know".to_owned()
        };
        root.set_input(json!({"question": question}));
        root.update_trace(
            axion::TraceUpdate::new()
                .user_id(format!("user-{}", i % 3))
                .session_id("loop-session")
                .tags(if i % 2 == 0 {
                    vec!["support", "even"]
                } else {
                    vec!["support", "odd"]
                }),
        );
        {
            let retrieve = tracer
                .span_builder("search_kb")
                .kind(ObservationType::Retriever)
                .enter();
            retrieve.set_output(json!([format!("doc for {i}")]));
        }
        {
            let generation = tracer
                .span_builder("draftAnswer")
                .kind(ObservationType::Generation)
                .enter();
            generation.set_model("gpt-4o-mini");
            generation.set_input(
                json!([{"role": "user", "content": format!("Answer the customer: {question}")}]),
            );
            generation.set_output(json!(answer.clone()));
            generation.set_usage(100, 20);
        }
        root.set_output(json!({"answer": answer}));
    }
}

async fn read(addr: std::net::SocketAddr, path: &str) -> Value {
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

#[tokio::test(flavor = "multi_thread")]
async fn sdk_to_server_to_dataset_to_scores_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        keys: Some((PK.into(), SK.into())),
        database_url: None,
    })
    .await
    .unwrap();
    let addr = server.local_addr();
    let settings = settings(addr);

    let (collection, report) = tokio::task::spawn_blocking(move || {
        let provider = TracerRegistry::create("langfuse", &settings).unwrap();
        let tracer = Tracer::builder(MetadataType::Llm)
            .provider(provider)
            .force_new(true)
            .build();
        produce(&tracer, 130);
        tracer.flush(Duration::from_secs(30)).unwrap();

        // Loader: 130 traces need two pages of 100.
        let loader = LangfuseTraceLoader::from_settings(&settings).unwrap();
        let query = FetchTraces {
            limit: 500,
            window: TimeWindow::HoursBack(1),
            tags: vec!["even".into()],
            ..FetchTraces::default()
        };
        let collection = TraceCollection::from_langfuse(&loader, &query).unwrap();
        assert_eq!(collection.len(), 65, "tags = all of, paged past 100");
        let summaries = loader
            .fetch_traces(&FetchTraces {
                limit: 130,
                fetch_full_traces: false,
                ..FetchTraces::default()
            })
            .unwrap();
        assert_eq!(summaries.len(), 130);
        assert!(summaries.iter().all(|t| t.observations.is_empty()));
        let capped = loader
            .fetch_traces(&FetchTraces {
                limit: 7,
                fetch_full_traces: false,
                ..FetchTraces::default()
            })
            .unwrap();
        assert_eq!(capped.len(), 7);

        // The v2/v3 read paths give the same observations and scores as the v1 detail.
        let first = &collection[0];
        let v2 = loader.fetch_observations_v2(&first.id).unwrap();
        assert_eq!(v2.len(), first.observations.len());
        assert_eq!(
            v2.iter()
                .find(|o| o.name.as_deref() == Some("draftAnswer"))
                .unwrap()
                .input,
            first.step("draft_answer").unwrap().first().input
        );

        // Collection: steps by normalised name, path access, filters.
        assert_eq!(first.steps().len(), 3);
        assert_eq!(
            first.get("draft-answer.generation.output"),
            first.output.as_ref().and_then(|o| o.get("answer"))
        );
        let user_0 = collection.filter_by(&TraceFilter {
            user_id: Some("user-0".into()),
            ..TraceFilter::default()
        });
        assert!(!user_0.is_empty() && user_0.len() < collection.len());

        // Dataset with the default extraction, then a tiny evaluation.
        let dataset = Dataset::from_traces(&collection);
        assert_eq!(dataset.len(), 65);
        let results: Vec<EvaluationResult> = dataset
            .items()
            .iter()
            .map(|item| {
                let query = item.query.clone().unwrap();
                let number = query.trim_start_matches("question ").trim_end_matches('?');
                let expected = format!("answer {number}");
                let exact = f64::from(u8::from(item.actual_output == Some(json!(expected))));
                let mut item = item.clone();
                // Observation-level scores go on the generation.
                let trace = collection
                    .iter()
                    .find(|t| Some(&t.id) == item.trace_id.as_ref())
                    .unwrap();
                item.observation_id = Some(trace.step("draftAnswer").unwrap().first().id.clone());
                EvaluationResult {
                    item,
                    metrics: BTreeMap::from([
                        ("exact_match".into(), exact),
                        ("bogus".into(), f64::NAN),
                    ]),
                    comment: Some("loop".into()),
                }
            })
            .collect();
        let mut target = LangfuseScores::from_settings(&settings).unwrap();
        let options = PublishOptions {
            level: ScoreLevel::Observation,
            batch_size: 20,
            ..PublishOptions::default()
        };
        let report = publish_to_observability(&results, &options, &mut target);
        (collection, report)
    })
    .await
    .unwrap();
    assert_eq!(
        (report.uploaded, report.skipped, report.failed),
        (65, 65, 0)
    );

    // The scores are on the traces, attached to the generation.
    let trace = read(addr, &format!("/api/public/traces/{}", collection[0].id)).await;
    let scores = trace["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 1, "{scores:#?}");
    assert_eq!(scores[0]["name"], "exact_match");
    assert_eq!(scores[0]["value"], 1.0);
    assert_eq!(scores[0]["source"], "EVAL");
    let generation = trace["observations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "draftAnswer")
        .unwrap();
    assert_eq!(scores[0]["observationId"], generation["id"]);
    let (_, listed) = (
        0,
        read(addr, "/api/public/scores?name=exact_match&limit=100").await,
    );
    assert_eq!(listed["meta"]["totalItems"], 65);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn loader_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        keys: Some((PK.into(), SK.into())),
        database_url: None,
    })
    .await
    .unwrap();
    let addr = server.local_addr();
    tokio::task::spawn_blocking(move || {
        let wrong = LangfuseTraceLoader::new(&format!("http://{addr}"), PK, "wrong").unwrap();
        let error = wrong
            .fetch_traces(&FetchTraces::default())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("401") && error.contains("LANGFUSE_SECRET_KEY"),
            "{error}"
        );
        let loader = LangfuseTraceLoader::new(&format!("http://{addr}"), PK, SK).unwrap();
        assert!(loader
            .fetch_trace("no-such-trace")
            .unwrap_err()
            .to_string()
            .contains("not found"));
        let error = TimeWindow::from_mode("absolute", Some(3), None, None, None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("days_back"), "{error}");
        assert!(TimeWindow::from_mode(
            "absolute",
            None,
            None,
            Some("2024-01-02T00:00:00Z"),
            Some("2024-01-01T00:00:00Z")
        )
        .is_err());
        assert!(
            TimeWindow::from_mode("days_back", None, None, Some("2024-01-01T00:00:00Z"), None)
                .is_err()
        );
        assert_eq!(
            TimeWindow::from_mode("days_back", None, None, None, None).unwrap(),
            TimeWindow::DaysBack(7)
        );
        assert!(TimeWindow::from_mode("weekly", None, None, None, None).is_err());
    })
    .await
    .unwrap();
    server.shutdown().await;
}
