//! The `opentelemetry_sdk` span the `axion` benches compare ours with (kept out of `support`,
//! which `axion-server`'s benches share and which has no OpenTelemetry to build against).

use opentelemetry::trace::{Span as _, Tracer as _};
use serde_json::Value;

/// One LLM-call span carrying `input` and `output`, serialised on the caller's thread as that
/// SDK requires (attributes are strings); the values are dropped there too.
pub fn llm_call(tracer: &opentelemetry_sdk::trace::SdkTracer, input: Value, output: Value) {
    let mut span = tracer.start("llm_call");
    span.set_attribute(opentelemetry::KeyValue::new(
        "input.value",
        serde_json::to_string(&input).unwrap(),
    ));
    span.set_attribute(opentelemetry::KeyValue::new(
        "output.value",
        serde_json::to_string(&output).unwrap(),
    ));
    span.end();
    drop((input, output));
}
