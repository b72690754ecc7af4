//! The evaluation runner's trace shape: evaluation › metric › LLM call.

mod common;

use std::sync::Arc;

use axion::dataset::{Dataset, DatasetItem};
use axion::eval::{Evaluation, ExactMatch, Metric, TraceGranularity};
use axion::{MetadataType, Tracer};
use serde_json::json;

/// A metric that asks a (traced) LLM judge.
struct Judge {
    tracer: Tracer,
}

impl Metric for Judge {
    fn name(&self) -> &str {
        "judge"
    }
    fn score(&self, item: &DatasetItem) -> f64 {
        self.tracer.log_llm_call(
            axion::LlmCall::new("gpt-4o-mini")
                .name("judge-call")
                .prompt(json!(format!("Is {:?} right?", item.actual_output)))
                .response(json!("yes"))
                .tokens(10, 1),
        );
        0.75
    }
}

fn dataset() -> Dataset {
    Dataset::from_items(
        (0..3)
            .map(|i| {
                let mut item = DatasetItem::new(format!("item-{i}"));
                item.actual_output = Some(json!("x"));
                item.expected_output = Some(json!("x"));
                item
            })
            .collect(),
    )
}

#[test]
fn single_trace_nests_metrics_and_their_llm_calls() {
    let collector = Arc::new(common::Collector::default());
    let tracer = Tracer::builder(MetadataType::Evaluation)
        .provider(collector.clone())
        .force_new(true)
        .build();
    let results = Evaluation::new("nightly-eval")
        .metric(Arc::new(ExactMatch::default()))
        .metric(Arc::new(Judge {
            tracer: tracer.clone(),
        }))
        .tracer(tracer.clone())
        .progress(false)
        .run(&dataset());
    assert_eq!(results.len(), 3);
    assert!(results
        .iter()
        .all(|r| r.metrics["judge"] == 0.75 && r.metrics["exact_match"] == 1.0));
    let observations = collector.observations();
    let root = observations
        .iter()
        .find(|o| o.name.as_deref() == Some("nightly-eval"))
        .unwrap();
    assert!(root.parent_observation_id.is_none());
    let judges: Vec<_> = observations
        .iter()
        .filter(|o| o.name.as_deref() == Some("judge"))
        .collect();
    assert_eq!(judges.len(), 3);
    for judge in &judges {
        assert_eq!(
            judge.parent_observation_id.as_ref(),
            Some(&root.id),
            "metric is a child of the evaluation"
        );
        assert_eq!(judge.trace_id, root.trace_id);
    }
    let calls: Vec<_> = observations
        .iter()
        .filter(|o| o.name.as_deref() == Some("judge-call"))
        .collect();
    assert_eq!(calls.len(), 3);
    for call in calls {
        assert!(
            judges
                .iter()
                .any(|judge| Some(&judge.id) == call.parent_observation_id.as_ref()),
            "LLM call is a grandchild"
        );
    }
    let traces = collector.traces();
    assert!(traces
        .iter()
        .any(|trace| trace.name.as_deref() == Some("nightly-eval")));
}

#[test]
fn separate_traces_give_each_item_its_own_trace() {
    let collector = Arc::new(common::Collector::default());
    let tracer = Tracer::builder(MetadataType::Evaluation)
        .provider(collector.clone())
        .force_new(true)
        .build();
    Evaluation::new("per-item")
        .metric(Arc::new(ExactMatch::default()))
        .granularity(TraceGranularity::Separate)
        .tracer(tracer)
        .progress(false)
        .run(&dataset());
    let roots: Vec<_> = collector
        .observations()
        .into_iter()
        .filter(|o| o.name.as_deref() == Some("per-item"))
        .collect();
    assert_eq!(roots.len(), 3);
    let mut trace_ids: Vec<_> = roots.iter().map(|o| o.trace_id.clone()).collect();
    trace_ids.dedup();
    assert_eq!(trace_ids.len(), 3);
}
