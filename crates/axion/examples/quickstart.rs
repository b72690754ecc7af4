//! The Quick Start: a service that holds a tracer, traced methods, and a manual async span.
//!
//! ```sh
//! cargo run -p axion --example quickstart                       # tracing off (noop)
//! TRACING_MODE=console cargo run -p axion --example quickstart  # JSON lines on stderr
//! ```

use axion::{trace, HasTracer, MetadataType, Tracer};

#[derive(HasTracer)]
struct MyService {
    tracer: Tracer,
}

impl MyService {
    fn new() -> Self {
        Self {
            tracer: axion::init_tracer(MetadataType::Llm),
        }
    }

    #[trace(name = "span", capture_args, capture_result)]
    async fn span(&self, query: &str) -> String {
        let prepared = self.internal_span(query);
        self.tracer
            .async_span("manual_span", |span| async move {
                span.set_attribute("custom_attr", "value");
                format!("processed: {prepared}")
            })
            .await
    }

    #[trace(name = "internal_span")]
    fn internal_span(&self, query: &str) -> String {
        query.trim().to_lowercase()
    }
}

#[tokio::main]
async fn main() {
    let _tracing = axion::shutdown_guard();
    let service = MyService::new();
    let result = service.span("  Hello Axion ").await;
    println!("{result}");
}
