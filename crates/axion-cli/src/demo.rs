//! `axion demo`: the whole loop on this machine, no account needed. Starts `axion serve` on an
//! embedded store, traces a small RAG pipeline through the real `langfuse` provider, reads the
//! traces back, builds a dataset, evaluates it, publishes the scores and prints the trace tree.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axion::collection::TraceCollection;
use axion::dataset::Dataset;
use axion::eval::{Contains, Evaluation, ExactMatch, LevenshteinRatio};
use axion::load::{FetchTraces, LangfuseTraceLoader, TimeWindow};
use axion::publish::{publish_to_observability, LangfuseScores, PublishOptions};
use axion::{MetadataType, ObservationType, Settings, Tracer, TracerRegistry};
use serde_json::json;

const KEYS: (&str, &str) = ("pk-lf-axion-demo", "sk-lf-axion-demo");

const KNOWLEDGE: &[(&str, &str)] = &[
    (
        "How long do refunds take?",
        "Refunds are processed within 5 business days.",
    ),
    (
        "Can I cancel anytime?",
        "You can cancel your subscription at any time from Settings.",
    ),
    (
        "Do premium plans include support?",
        "Premium plans include priority support.",
    ),
];

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Keep the server running afterwards, to browse the demo's traces and scores in the web
    /// UI (SIGINT/SIGTERM stop it).
    #[arg(long)]
    serve: bool,
}

pub fn run(args: DemoArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(16)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Listened for from the start: a signal during the demo stops it gracefully too.
        let signals = args
            .serve
            .then(crate::ShutdownSignals::install)
            .transpose()?;
        let dir = std::env::temp_dir().join(format!("axion-demo-{}", std::process::id()));
        let server = axion_server::Server::start(axion_server::ServerConfig {
            listen: "127.0.0.1:0".parse()?,
            data_dir: dir.clone(),
            keys: Some((KEYS.0.into(), KEYS.1.into())),
            database_url: None,
        })
        .await
        .context("starting axion serve")?;
        let host = format!("http://{}", server.local_addr());
        println!(
            "1. axion serve is listening on {host} (embedded SQLite in {})",
            dir.display()
        );
        let loop_host = host.clone();
        let result = tokio::task::spawn_blocking(move || loop_once(&loop_host)).await?;
        if let (Some(signals), Ok(first_trace)) = (signals, &result) {
            println!(
                "\n8. browse them in the web UI: {host}/project/{}/traces/{first_trace}\n   \
                 (sign in with {} / {}; Ctrl-C stops the server and removes its data)",
                server.bootstrap().project_id,
                KEYS.0,
                KEYS.1
            );
            signals.received().await;
        } else if result.is_ok() {
            println!("\n(`axion demo --serve` keeps the server running to browse all this in the web UI.)");
        }
        server.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
        result.map(drop)
    })
}

fn retrieve(tracer: &Tracer, question: &str) -> Vec<String> {
    let span = tracer
        .span_builder("retrieve_documents")
        .kind(ObservationType::Retriever)
        .enter();
    span.set_input(json!({"query": question}));
    let words: Vec<String> = question
        .to_lowercase()
        .split_whitespace()
        .map(|w| w.trim_matches('?').to_owned())
        .collect();
    let documents: Vec<String> = KNOWLEDGE
        .iter()
        .filter(|(_, text)| {
            words
                .iter()
                .any(|word| word.len() > 3 && text.to_lowercase().contains(word.as_str()))
        })
        .map(|(_, text)| (*text).to_owned())
        .collect();
    span.set_output(json!(documents));
    documents
}

fn generate(tracer: &Tracer, question: &str, documents: &[String]) -> String {
    let span = tracer
        .span_builder("generate_answer")
        .kind(ObservationType::Generation)
        .enter();
    let prompt = format!(
        "Answer from the context.\nContext: {}\nQuestion: {question}",
        documents.join(" ")
    );
    let answer = match documents.first() {
        Some(document) => format!("Based on our policy: {document}"),
        None => "I don't know.".to_owned(),
    };
    span.set_model("gpt-4o-mini");
    span.set_model_parameters(json!({"temperature": 0.0}));
    span.set_input(json!([{"role": "user", "content": prompt}]));
    span.set_output(json!(answer));
    span.set_usage((prompt.len() / 4) as u64, (answer.len() / 4) as u64);
    answer
}

/// Runs the loop; returns the first trace's id.
fn loop_once(host: &str) -> Result<String> {
    let settings = Settings::from_pairs([
        ("LANGFUSE_HOST", host.to_owned()),
        ("LANGFUSE_PUBLIC_KEY", KEYS.0.to_owned()),
        ("LANGFUSE_SECRET_KEY", KEYS.1.to_owned()),
    ]);
    let provider = TracerRegistry::create("langfuse", &settings)?;
    let tracer = Tracer::builder(MetadataType::Llm)
        .provider(provider)
        .force_new(true)
        .build();
    for (i, (question, _)) in KNOWLEDGE.iter().enumerate() {
        let root = tracer.span("rag_pipeline");
        root.set_input(json!({"question": question}));
        root.update_trace(
            axion::TraceUpdate::new()
                .user_id(format!("customer-{i}"))
                .tags(["demo", "rag"]),
        );
        let documents = retrieve(&tracer, question);
        let answer = generate(&tracer, question, &documents);
        root.set_output(json!({"answer": answer}));
    }
    let report = tracer.flush(Duration::from_secs(30))?;
    println!(
        "2. traced {} RAG runs through the langfuse provider ({} records exported, {} dropped)",
        KNOWLEDGE.len(),
        report.exported,
        report.dropped_total
    );

    let loader = LangfuseTraceLoader::from_settings(&settings)?;
    let query = FetchTraces {
        limit: 100,
        window: TimeWindow::HoursBack(1),
        tags: vec!["demo".into()],
        ..FetchTraces::default()
    };
    let collection = TraceCollection::from_langfuse(&loader, &query)?;
    println!(
        "3. fetched {} traces back with the loader; steps of the first: {:?}",
        collection.len(),
        collection[0]
            .steps()
            .iter()
            .map(|step| step.name().to_owned())
            .collect::<Vec<_>>()
    );

    let expected: std::collections::HashMap<&str, &str> = KNOWLEDGE.iter().copied().collect();
    let dataset = Dataset::from_traces_with(&collection, |trace| {
        let mut item = axion::dataset::DatasetItem::from_trace(trace);
        item.expected_output = item
            .query
            .as_deref()
            .and_then(|q| expected.get(q))
            .map(|answer| json!(answer));
        Some(item)
    });
    println!(
        "4. built a dataset of {} items (query, actual and expected output, retrieved context)",
        dataset.len()
    );

    let results = Evaluation::new("axion-demo-evaluation")
        .metric(Arc::new(ExactMatch::case_insensitive()))
        .metric(Arc::new(Contains))
        .metric(Arc::new(LevenshteinRatio))
        .tracer(tracer.clone())
        .progress(false)
        .run(&dataset);
    tracer.flush(Duration::from_secs(30))?;
    println!(
        "5. evaluated it: {}",
        results
            .iter()
            .map(|r| format!("{:.2}", r.metrics["levenshtein_ratio"]))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let mut target = LangfuseScores::from_settings(&settings)?;
    let published = publish_to_observability(&results, &PublishOptions::default(), &mut target);
    println!(
        "6. published scores: {} uploaded, {} skipped, {} failed",
        published.uploaded, published.skipped, published.failed
    );

    let first = axion::collection::Trace::from(loader.fetch_trace(&collection[0].id)?);
    println!("7. the first trace as the server now has it:\n");
    crate::traces::print_tree(&first);
    Ok(collection[0].id.clone())
}
