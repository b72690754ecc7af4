//! Span API: nesting, setters, trace updates, scores, statistics.
mod common;

use std::time::Duration;

use axion::{
    LlmCall, MetadataType, ObservationLevel, ObservationType, ObservationUpdate, ScoreValue,
    TraceUpdate, Tracer,
};
use common::tracer;
use serde_json::json;

#[test]
fn nested_sync_spans_form_a_tree_with_one_trace() {
    let (tracer, sink) = tracer(MetadataType::Base);
    {
        let outer = tracer.span("outer");
        outer.set_input(json!({"q": "hi"}));
        {
            let inner = tracer.span("inner");
            inner.set_output("done");
        }
        outer.set_output("answer");
    }
    let outer = sink.observation("outer");
    let inner = sink.observation("inner");
    assert_eq!(
        inner.parent_observation_id.as_deref(),
        Some(outer.id.as_str())
    );
    assert_eq!(outer.parent_observation_id, None);
    assert_eq!(inner.trace_id, outer.trace_id);
    assert!(outer.start_time <= inner.start_time && inner.end_time <= outer.end_time);
    let traces = sink.traces();
    assert_eq!(traces.len(), 1, "one trace record, at the end of the root");
    assert_eq!(traces[0].id, outer.trace_id);
    assert_eq!(traces[0].name.as_deref(), Some("outer"));
    assert_eq!(
        traces[0].input,
        Some(json!({"q": "hi"})),
        "trace input defaults to the root's"
    );
    assert_eq!(traces[0].output, Some(json!("answer")));
    assert!(axion::current_span().is_none(), "context restored");
}

#[test]
fn tracer_defaults_land_on_every_trace() {
    let collector = std::sync::Arc::new(common::Collector::default());
    let tracer = Tracer::builder(MetadataType::Base)
        .provider(collector.clone())
        .tags(["rag", "support"])
        .user_id("u-1")
        .session_id("s-1")
        .environment("staging")
        .release("1.2.3")
        .build();
    drop(tracer.span("a"));
    drop(tracer.span("b"));
    let traces = collector.traces();
    assert_eq!(traces.len(), 2);
    assert_ne!(traces[0].id, traces[1].id, "each root starts a trace");
    for trace in &traces {
        assert_eq!(trace.tags, ["rag", "support"]);
        assert_eq!(trace.user_id.as_deref(), Some("u-1"));
        assert_eq!(trace.session_id.as_deref(), Some("s-1"));
        assert_eq!(trace.environment.as_deref(), Some("staging"));
        assert_eq!(trace.release.as_deref(), Some("1.2.3"));
    }
    assert_eq!(
        collector.observation("a").environment.as_deref(),
        Some("staging")
    );
}

#[test]
fn fixed_trace_id_groups_roots() {
    let collector = std::sync::Arc::new(common::Collector::default());
    let id = axion::TraceId::from_bytes([9; 16]);
    let tracer = Tracer::builder(MetadataType::Base)
        .provider(collector.clone())
        .trace_id(id)
        .build();
    drop(tracer.span("a"));
    drop(tracer.span("b"));
    assert!(collector
        .observations()
        .iter()
        .all(|o| o.trace_id == id.to_string()));
    assert_eq!(tracer.trace_id(), Some(id));
}

#[test]
fn span_setters_reach_the_observation() {
    let (tracer, sink) = tracer(MetadataType::Llm);
    {
        let span = tracer.span("llm");
        span.set_model("gpt-4o-mini");
        span.set_model_parameters(json!({"temperature": 0.2}));
        span.set_usage(100, 20);
        span.set_usage_details([("cache_read_input_tokens", 5)]);
        span.set_cost(0.0012);
        span.set_attribute("k", 3);
        span.set_attribute("k", 4);
        span.set_attributes([("a", "x"), ("b", "y")]);
        span.set_level(ObservationLevel::Warning);
        span.set_status_message("slow");
        span.set_version("v2");
        span.set_input_ref(&vec![1, 2, 3]);
        #[derive(Debug)]
        struct Opaque(#[allow(dead_code)] u8);
        span.set_output_debug(&Opaque(1));
    }
    let observation = sink.observation("llm");
    assert_eq!(
        observation.r#type,
        ObservationType::Generation,
        "a model makes a generation"
    );
    assert_eq!(observation.model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(observation.model_parameters.unwrap()["temperature"], 0.2);
    let usage = observation.usage_details.unwrap();
    assert_eq!(
        (
            usage["input"],
            usage["output"],
            usage["total"],
            usage["cache_read_input_tokens"]
        ),
        (100, 20, 120, 5)
    );
    assert_eq!(observation.cost_details.unwrap()["total"], 0.0012);
    assert_eq!(
        observation.metadata,
        Some(json!({"k": 4, "a": "x", "b": "y"}))
    );
    assert_eq!(observation.level, ObservationLevel::Warning);
    assert_eq!(observation.status_message.as_deref(), Some("slow"));
    assert_eq!(observation.version.as_deref(), Some("v2"));
    assert_eq!(observation.input, Some(json!([1, 2, 3])));
    assert_eq!(observation.output, Some(json!("Opaque(1)")));
}

#[test]
fn observation_type_is_inferred_from_the_name_unless_set() {
    let (tracer, sink) = tracer(MetadataType::Base);
    for name in [
        "vector_retrieval",
        "embed_query",
        "faithfulness_eval",
        "search_tool",
        "planner_agent",
        "guard_input",
        "plain",
        "KnowledgeLookup",
        "LangChain_Run",
        "re_eval",
        "_",
        "tool_then_retriever",
        "Answer_Relevancy",
    ] {
        drop(tracer.span(name));
    }
    drop(
        tracer
            .span_builder("explicit")
            .kind(ObservationType::Chain)
            .enter(),
    );
    let kind = |name: &str| sink.observation(name).r#type;
    assert_eq!(kind("vector_retrieval"), ObservationType::Retriever);
    assert_eq!(kind("embed_query"), ObservationType::Embedding);
    assert_eq!(kind("faithfulness_eval"), ObservationType::Evaluator);
    assert_eq!(kind("search_tool"), ObservationType::Tool);
    assert_eq!(kind("planner_agent"), ObservationType::Agent);
    assert_eq!(kind("guard_input"), ObservationType::Guardrail);
    assert_eq!(kind("plain"), ObservationType::Span);
    assert_eq!(kind("KnowledgeLookup"), ObservationType::Retriever);
    assert_eq!(kind("LangChain_Run"), ObservationType::Chain);
    assert_eq!(kind("re_eval"), ObservationType::Evaluator);
    assert_eq!(kind("_"), ObservationType::Span);
    // Rule priority, not position in the name, decides.
    assert_eq!(kind("tool_then_retriever"), ObservationType::Retriever);
    assert_eq!(kind("Answer_Relevancy"), ObservationType::Evaluator);
    assert_eq!(kind("explicit"), ObservationType::Chain);
}

#[derive(Debug)]
struct Outer(std::io::Error);
impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request failed")
    }
}
impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn errors_events_and_scores() {
    let (tracer, sink) = tracer(MetadataType::Base);
    {
        let span = tracer.span("call");
        span.record_error(&Outer(std::io::Error::other("connection reset")));
        span.add_event("retry", ObservationLevel::Warning, json!({"attempt": 2}));
        span.score("quality", 0.5, Some("meh"));
        span.score_trace("grounded", true, None);
        span.score_trace("label", "good", None);
    }
    let call = sink.observation("call");
    assert_eq!(call.level, ObservationLevel::Error);
    assert_eq!(
        call.status_message.as_deref(),
        Some("request failed: connection reset")
    );
    let event = sink.observation("retry");
    assert_eq!(event.r#type, ObservationType::Event);
    assert_eq!(
        event.parent_observation_id.as_deref(),
        Some(call.id.as_str())
    );
    assert_eq!(event.level, ObservationLevel::Warning);
    assert_eq!(event.input, Some(json!({"attempt": 2})));
    assert_eq!(event.start_time, event.end_time, "zero duration");
    let scores = sink.scores();
    assert_eq!(scores.len(), 3);
    assert_eq!(scores[0].observation_id.as_deref(), Some(call.id.as_str()));
    assert_eq!(scores[0].comment.as_deref(), Some("meh"));
    assert_eq!(scores[1].observation_id, None);
    assert_eq!(scores[1].trace_id.as_deref(), Some(call.trace_id.as_str()));
    assert_eq!(
        (scores[1].value, scores[1].string_value.as_deref()),
        (1.0, Some("True"))
    );
    assert_eq!(scores[2].string_value.as_deref(), Some("good"));
    assert_eq!(ScoreValue::from(3u32), ScoreValue::Numeric(3.0));
}

#[test]
fn trace_and_observation_updates_from_anywhere_inside() {
    let (tracer, sink) = tracer(MetadataType::Base);
    assert!(
        !axion::update_current_trace(TraceUpdate::new().name("x")),
        "outside a trace: refused"
    );
    {
        let _root = tracer.span("rag_pipeline");
        {
            let _child = tracer.span("generate");
            assert!(axion::update_current_trace(
                TraceUpdate::new()
                    .name("support-question")
                    .user_id("user-7")
                    .session_id("chat-1")
                    .tags(["rag"])
                    .metadata(json!({"tier": "pro"}))
                    .version("3")
                    .release("r1")
            ));
            assert!(axion::update_current_trace(
                TraceUpdate::new().tags(["rag", "prod"])
            ));
            assert!(axion::update_current_observation(
                ObservationUpdate::new()
                    .model("gpt-4o-mini")
                    .usage(10, 5)
                    .metadata("attempt", 1)
                    .output("ok")
            ));
            assert!(axion::score_current_trace(
                "context_relevance",
                0.91,
                Some("good context")
            ));
            assert!(axion::score_current_observation("fluency", 1, None));
        }
    }
    let traces = sink.traces();
    assert_eq!(
        traces.len(),
        1,
        "updates made before the root ended merge into its trace record"
    );
    let trace = &traces[0];
    assert_eq!(trace.name.as_deref(), Some("support-question"));
    assert_eq!(trace.user_id.as_deref(), Some("user-7"));
    assert_eq!(trace.session_id.as_deref(), Some("chat-1"));
    assert_eq!(trace.tags, ["rag", "prod"]);
    assert_eq!(trace.metadata, Some(json!({"tier": "pro"})));
    assert_eq!(
        (trace.version.as_deref(), trace.release.as_deref()),
        (Some("3"), Some("r1"))
    );
    let generate = sink.observation("generate");
    assert_eq!(generate.model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(generate.usage_details.unwrap()["total"], 15);
    assert_eq!(generate.output, Some(json!("ok")));
    let scores = sink.scores();
    assert_eq!(scores[0].name, "context_relevance");
    assert_eq!(scores[0].trace_id.as_deref(), Some(trace.id.as_str()));
    assert_eq!(
        scores[1].observation_id.as_deref(),
        Some(generate.id.as_str())
    );
}

#[test]
fn updates_after_the_root_ended_are_sent_on_their_own() {
    let (tracer, sink) = tracer(MetadataType::Base);
    let root = tracer.span("root");
    let handle = root.span();
    drop(root);
    handle.update_trace(TraceUpdate::new().user_id("late"));
    handle.set_output("ignored: the span ended");
    let traces = sink.traces();
    assert_eq!(traces.len(), 2);
    assert_eq!(traces[1].user_id.as_deref(), Some("late"));
    assert_eq!(traces[1].name, None, "a partial update");
    assert_eq!(sink.observation("root").output, None);
}

#[test]
fn a_span_nobody_ends_is_recorded_when_the_last_handle_drops() {
    let (tracer, sink) = tracer(MetadataType::Base);
    let span = tracer.span_builder("detached").start();
    assert!(axion::current_span().is_none(), "start() does not enter");
    let clone = span.clone();
    drop(span);
    assert!(sink.observations().is_empty());
    drop(clone);
    assert_eq!(sink.observations().len(), 1);
}

#[test]
fn a_root_is_recorded_when_its_last_handle_drops_though_a_child_lives_on() {
    let (tracer, sink) = tracer(MetadataType::Base);
    let root = tracer.span_builder("root").start();
    let child = tracer.span_builder("worker").child_of(&root).start();
    child.update_trace(TraceUpdate::new().user_id("early"));
    drop(root);
    let traces = sink.traces();
    assert_eq!(
        traces.len(),
        1,
        "the root ended with its handle, not with its child"
    );
    assert_eq!(traces[0].user_id.as_deref(), Some("early"));
    child.update_trace(TraceUpdate::new().session_id("late"));
    child.end();
    let traces = sink.traces();
    assert_eq!(traces.len(), 2);
    assert_eq!(traces[1].session_id.as_deref(), Some("late"));
    assert_eq!(traces[1].id, traces[0].id);
    let worker = sink.observation("worker");
    assert_eq!(worker.trace_id, traces[0].id);
    assert_eq!(
        worker.parent_observation_id.as_deref(),
        Some(sink.observation("root").id.as_str())
    );
}

#[test]
fn explicit_parents_and_new_traces() {
    let (tracer, sink) = tracer(MetadataType::Base);
    let parent = tracer.span_builder("parent").start();
    {
        let _unrelated = tracer.span("unrelated");
        drop(tracer.span_builder("adopted").child_of(&parent).enter());
        drop(tracer.span_builder("fresh").new_trace().enter());
    }
    parent.end();
    let parent = sink.observation("parent");
    assert_eq!(
        sink.observation("adopted").parent_observation_id.as_deref(),
        Some(parent.id.as_str())
    );
    let fresh = sink.observation("fresh");
    assert_eq!(fresh.parent_observation_id, None);
    assert_ne!(fresh.trace_id, sink.observation("unrelated").trace_id);
}

#[test]
fn panics_mark_the_span_failed_and_keep_unwinding() {
    let (tracer, sink) = tracer(MetadataType::Base);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _span = tracer.span("explodes");
        panic!("boom");
    }));
    assert!(result.is_err());
    let observation = sink.observation("explodes");
    assert_eq!(observation.level, ObservationLevel::Error);
    assert_eq!(observation.status_message.as_deref(), Some("panicked"));
    assert!(axion::current_span().is_none());
}

#[test]
fn llm_calls_evaluations_retrievals_and_queries_feed_stats() {
    let (tracer, sink) = tracer(MetadataType::Llm);
    {
        let _root = tracer.span("pipeline");
        tracer.log_llm_call(
            LlmCall::new("gpt-4o-mini")
                .provider("openai")
                .prompt("Hi")
                .response("Hello")
                .tokens(10, 5)
                .cost(0.002)
                .latency(Duration::from_millis(250)),
        );
        tracer.log_llm_call(
            LlmCall::new("claude")
                .name("second")
                .tokens(1, 1)
                .error("rate limited"),
        );
        tracer.log_evaluation("faithfulness", 0.8, Some("ok"));
        tracer.log_retrieval("query", vec!["a", "b", "c"], Duration::from_millis(5));
        tracer.log_database_query(&"x".repeat(300), Duration::from_millis(3), 7);
    }
    tracer.log_evaluation("standalone", 1.0, None);
    let call = sink.observation("llm_call");
    assert_eq!(call.r#type, ObservationType::Generation);
    assert_eq!(call.input, Some(json!("Hi")));
    assert_eq!(call.metadata, Some(json!({"provider": "openai"})));
    let latency = call.latency_seconds().unwrap();
    assert!((0.25..1.0).contains(&latency), "{latency}");
    assert_eq!(sink.observation("second").level, ObservationLevel::Error);
    assert_eq!(
        sink.observation("database_query")
            .input
            .unwrap()
            .as_str()
            .unwrap()
            .len(),
        200
    );
    assert_eq!(
        sink.observation("standalone").r#type,
        ObservationType::Evaluator
    );

    let stats = tracer.stats();
    assert_eq!(stats.llm.calls, 2);
    assert_eq!(stats.llm.failed_calls, 1);
    assert_eq!(
        (
            stats.llm.prompt_tokens,
            stats.llm.completion_tokens,
            stats.llm.total_tokens
        ),
        (11, 6, 17)
    );
    assert!((stats.llm.cost_usd - 0.002).abs() < 1e-12);
    assert!(stats.llm.models.contains("claude") && stats.llm.providers.contains("openai"));
    assert_eq!(stats.evaluation.datapoints, 2);
    assert_eq!(
        (stats.knowledge.retrievals, stats.knowledge.documents),
        (1, 3)
    );
    assert_eq!((stats.database.queries, stats.database.rows), (1, 7));
    let table = stats.to_string();
    assert!(
        table.contains("LLM statistics") && table.contains("llm calls") && table.contains("50.0%"),
        "{table}"
    );
}

#[test]
fn lifecycle_and_local_events() {
    let (tracer, _sink) = tracer(MetadataType::Evaluation);
    tracer.start();
    {
        let span = tracer.span("step");
        let mut meta = serde_json::Map::new();
        meta.insert("rows".into(), json!(3));
        tracer.add_trace("custom", "did a thing", Some(json!(meta)));
        let event = tracer.events().pop().unwrap();
        assert_eq!(
            event.metadata["span_id"],
            json!(span.span_id().unwrap().to_string())
        );
        assert_eq!(event.metadata["rows"], 3);
    }
    tracer.complete(json!({"ok": true}));
    let stats = tracer.stats();
    assert_eq!(stats.status, axion::LifecycleStatus::Completed);
    assert!(stats.latency.is_some());
    let kinds: Vec<_> = tracer
        .events()
        .into_iter()
        .map(|event| event.event_type)
        .collect();
    assert_eq!(kinds, ["execution_start", "custom", "execution_complete"]);
    assert_eq!(tracer.outcome().0, Some(json!({"ok": true})));
    tracer.fail("later failure");
    assert_eq!(tracer.stats().status, axion::LifecycleStatus::Failed);
    assert!(tracer.stats().to_string().contains("Evaluation statistics"));
    for _ in 0..axion::MAX_LOCAL_EVENTS + 10 {
        tracer.add_trace("spam", "x", None);
    }
    assert_eq!(tracer.events().len(), axion::MAX_LOCAL_EVENTS, "bounded");
}

#[test]
fn noop_tracer_records_nothing_and_shutdown_stops_recording() {
    let noop = Tracer::builder(MetadataType::Base)
        .provider(std::sync::Arc::new(axion::NoopTracer))
        .build();
    let span = noop.span("x");
    assert!(!span.is_recording());
    assert!(span.span_id().is_none());
    assert!(
        axion::current_span().is_none(),
        "a disabled span does not touch the context"
    );
    drop(span);

    let (tracer, sink) = tracer(MetadataType::Base);
    drop(tracer.span("before"));
    tracer.shutdown(Duration::from_secs(1)).unwrap();
    assert!(!tracer.is_recording());
    drop(tracer.span("after"));
    assert_eq!(sink.observations().len(), 1);
}
