//! The ingest workload shared by the benches: OTLP exports shaped like the Langfuse SDK's.

use axion_model::otlp::{
    any_value, AnyValue, ArrayValue, ExportTraceServiceRequest, InstrumentationScope, KeyValue,
    Resource, ResourceSpans, ScopeSpans, Span,
};
use prost::Message;

/// The number in the environment variable `name`, when it is set to one.
pub fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.parse().ok()
}

/// Spans per export request.
pub const BATCH: usize = 512;
const BASE_NANOS: u64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z
const DAY_NANOS: u64 = 86_400_000_000_000;

fn string(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}

fn tags(values: &[String]) -> KeyValue {
    let values = values
        .iter()
        .map(|tag| AnyValue {
            value: Some(any_value::Value::StringValue(tag.clone())),
        })
        .collect();
    KeyValue {
        key: "langfuse.trace.tags".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue { values })),
        }),
    }
}

/// The id number `n` as `len` bytes that look random, as W3C trace and span ids from real SDKs
/// do (sequential ids share long prefixes, which makes every index comparison slow and every
/// insert an append).
pub fn id_bytes(n: u64, len: usize) -> Vec<u8> {
    // splitmix64: a bijection, so distinct numbers stay distinct ids.
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut bytes = vec![0u8; len];
    bytes[len - 8..].copy_from_slice(&mix(n).to_be_bytes());
    if len > 8 {
        bytes[..8].copy_from_slice(&mix(!n).to_be_bytes());
    }
    bytes
}

/// A span's input and output: a short chat exchange, or with `AXION_BENCH_IO_BYTES` set, chat
/// messages of about that many bytes each (the SDK benches' 1 KB spans).
fn io() -> (String, String) {
    static IO: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    IO.get_or_init(|| {
        match env_number::<usize>("AXION_BENCH_IO_BYTES") {
            Some(bytes) => {
                let message = |role: &str, i: usize| {
                    format!(r#"{{"role":"{role}","content":"{}","index":{i}}}"#, "x".repeat(100))
                };
                let messages: Vec<String> = (0..bytes.div_ceil(130))
                    .map(|i| message(if i % 2 == 0 { "user" } else { "assistant" }, i))
                    .collect();
                let text = format!(r#"{{"model":"gpt-4o-mini","messages":[{}]}}"#, messages.join(","));
                (text.clone(), text)
            }
            None => (
                r#"{"messages":[{"role":"user","content":"What is the capital of France? Answer briefly."}]}"#.into(),
                r#"{"role":"assistant","content":"Paris."}"#.into(),
            ),
        }
    })
    .clone()
}

/// When the traces of a workload start.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(dead_code)] // each bench uses the variants it needs
pub enum Times {
    /// In the order they are sent, a million traces over 30 days: live traffic, where spans
    /// arrive shortly after they end.
    InOrder,
    /// Shuffled over 30 days: a backfill of old data in random order, the worst case for the
    /// time-ordered indexes.
    Shuffled,
}

/// One export of `spans_per_trace`-span traces, Langfuse-SDK-like attributes on every span,
/// started in the order they are sent.
#[allow(dead_code)] // each bench uses the variants it needs
pub fn export(first_trace: u64, traces: usize, spans_per_trace: usize) -> Vec<u8> {
    export_with(first_trace, traces, spans_per_trace, Times::InOrder)
}

/// [`export`] with a choice of start times.
pub fn export_with(
    first_trace: u64,
    traces: usize,
    spans_per_trace: usize,
    times: Times,
) -> Vec<u8> {
    let mut spans = Vec::with_capacity(traces * spans_per_trace);
    for t in 0..traces as u64 {
        let trace = first_trace + t;
        let start = match times {
            Times::InOrder => BASE_NANOS + trace % 1_000_000 * (30 * DAY_NANOS / 1_000_000),
            Times::Shuffled => {
                BASE_NANOS + trace.wrapping_mul(0x9e37_79b9_7f4a_7c15) % (30 * DAY_NANOS)
            }
        };
        for s in 0..spans_per_trace as u64 {
            let (input, output) = io();
            let mut attributes = vec![
                string("langfuse.trace.name", format!("chat-{}", trace % 50)),
                string("user.id", format!("user-{}", trace % 1000)),
                string("session.id", format!("session-{}", trace / 8)),
                tags(&[format!("team-{}", trace % 20), "prod".into()]),
                string("langfuse.observation.input", input),
                string("langfuse.observation.output", output),
            ];
            if s % 2 == 1 {
                attributes.push(string("langfuse.observation.type", "generation"));
                attributes.push(string("langfuse.observation.model.name", "gpt-4o-mini"));
                attributes.push(string(
                    "langfuse.observation.usage_details",
                    r#"{"input": 120, "output": 30}"#,
                ));
            }
            spans.push(Span {
                trace_id: id_bytes(trace, 16),
                span_id: id_bytes(trace * 1024 + s + 1, 8),
                parent_span_id: if s == 0 {
                    Vec::new()
                } else {
                    id_bytes(trace * 1024 + 1, 8)
                },
                name: if s == 0 {
                    "root".into()
                } else {
                    format!("step-{s}")
                },
                kind: 1,
                start_time_unix_nano: start + s * 1_000_000,
                end_time_unix_nano: start + s * 1_000_000 + 500_000,
                attributes,
                ..Default::default()
            });
        }
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string("service.name", "bench")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "langfuse-sdk".into(),
                    version: "5.0.4".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec()
}
