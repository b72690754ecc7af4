//! The Langfuse tutorial's RAG pipeline: embed, search, rerank, generate, with trace-level
//! user, tags, metadata and a relevance score.
//!
//! ```sh
//! cargo run -p axion --example rag_pipeline
//! TRACING_MODE=console cargo run -p axion --example rag_pipeline
//! ```

use std::time::Duration;

use axion::{trace, MetadataType, TraceUpdate};
use serde::Serialize;
use serde_json::json;

#[derive(Debug, Clone, Serialize)]
struct Document {
    id: &'static str,
    text: &'static str,
    score: f64,
}

const CORPUS: &[(&str, &str)] = &[
    ("kb-1", "Refunds are processed within 5 business days."),
    ("kb-2", "Premium plans include priority support."),
    (
        "kb-3",
        "You can cancel your subscription at any time from Settings.",
    ),
    ("kb-4", "Refund requests need the original order number."),
];

#[trace(span_type = "embedding", capture_args)]
async fn embed_query(query: &str) -> Vec<f32> {
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut vector = vec![0.0f32; 8];
    for (i, byte) in query.bytes().enumerate() {
        vector[i % 8] += f32::from(byte) / 255.0;
    }
    vector
}

#[trace(span_type = "retriever", capture_result)]
async fn vector_search(embedding: Vec<f32>, top_k: usize) -> Vec<Document> {
    tokio::time::sleep(Duration::from_millis(8)).await;
    let weight: f32 = embedding.iter().sum();
    let mut documents: Vec<Document> = CORPUS
        .iter()
        .enumerate()
        .map(|(i, (id, text))| {
            let overlap = text.to_lowercase().matches("refund").count() as f64;
            Document {
                id,
                text,
                score: overlap + f64::from(weight).fract() / (i + 2) as f64,
            }
        })
        .collect();
    documents.sort_by(|a, b| b.score.total_cmp(&a.score));
    documents.truncate(top_k);
    documents
}

#[trace(capture_result)]
fn rerank_documents(documents: Vec<Document>) -> Vec<Document> {
    let mut documents = documents;
    documents.sort_by(|a, b| {
        b.text
            .len()
            .cmp(&a.text.len())
            .then(b.score.total_cmp(&a.score))
    });
    documents.truncate(2);
    documents
}

#[trace]
async fn generate_response(query: &str, context: &[Document]) -> String {
    let prompt = format!(
        "Answer using the context.\nContext:\n{}\nQuestion: {query}",
        context
            .iter()
            .map(|d| d.text)
            .collect::<Vec<_>>()
            .join("\n")
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let answer = format!("Based on our policy: {}", context[0].text);
    axion::update_current_observation(
        axion::ObservationUpdate::new()
            .model("gpt-4o-mini")
            .model_parameters(json!({"temperature": 0.2, "max_tokens": 256}))
            .input(json!([{"role": "user", "content": prompt}]))
            .output(answer.clone())
            .usage(
                prompt.split_whitespace().count() as u64 * 4 / 3,
                answer.split_whitespace().count() as u64 * 4 / 3,
            ),
    );
    answer
}

#[trace(capture_args, capture_result)]
async fn rag_pipeline(query: &str) -> String {
    axion::update_current_trace(
        TraceUpdate::new()
            .user_id("user-123")
            .session_id("support-session-1")
            .tags(["rag", "support", "production"])
            .metadata(json!({"pipeline_version": "1.0", "retriever": "in-memory"})),
    );
    let embedding = embed_query(query).await;
    let documents = vector_search(embedding, 3).await;
    let reranked = rerank_documents(documents);
    let answer = generate_response(query, &reranked).await;
    axion::score_current_trace("context_relevance", 0.91, Some("retrieved refund policy"));
    answer
}

#[tokio::main]
async fn main() {
    let _tracing = axion::shutdown_guard();
    let tracer = axion::init_tracer(MetadataType::Llm);
    let _context = tracer.context();
    let answer = rag_pipeline("How long do refunds take?").await;
    println!("{answer}");
}
