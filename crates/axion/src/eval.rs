//! Running metrics over a [`Dataset`], traced: the evaluation is the root trace (or one trace
//! per item), each metric's execution a child span, and anything the metric traces (an LLM
//! judge's call) a grandchild. Results publish with [`crate::publish`].
//!
//! ```
//! use std::sync::Arc;
//! use axion::dataset::{Dataset, DatasetItem};
//! use axion::eval::{Evaluation, ExactMatch, LevenshteinRatio};
//!
//! let mut item = DatasetItem::new("1");
//! item.actual_output = Some(serde_json::json!("Paris"));
//! item.expected_output = Some(serde_json::json!("paris"));
//! let results = Evaluation::new("capital-quiz")
//!     .metric(Arc::new(ExactMatch::case_insensitive()))
//!     .metric(Arc::new(LevenshteinRatio))
//!     .run(&Dataset::from_items(vec![item]));
//! assert_eq!(results[0].metrics["exact_match"], 1.0);
//! ```

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::dataset::{Dataset, DatasetItem};
use crate::publish::EvaluationResult;
use crate::{MetadataType, ObservationType, Tracer};

/// A metric: a number for one item (`NaN` when it does not apply).
pub trait Metric: Send + Sync {
    /// The score name.
    fn name(&self) -> &str;
    /// Scores an item.
    fn score(&self, item: &DatasetItem) -> f64;
}

fn text(value: &Option<Value>) -> Option<String> {
    match value.as_ref()? {
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// 1 when the actual output equals the expected one (as text), else 0.
#[derive(Debug, Clone, Default)]
pub struct ExactMatch {
    ignore_case: bool,
}

impl ExactMatch {
    /// Compares after trimming and lower-casing.
    pub fn case_insensitive() -> Self {
        Self { ignore_case: true }
    }
}

impl Metric for ExactMatch {
    fn name(&self) -> &str {
        "exact_match"
    }
    fn score(&self, item: &DatasetItem) -> f64 {
        let (Some(actual), Some(expected)) =
            (text(&item.actual_output), text(&item.expected_output))
        else {
            return f64::NAN;
        };
        let same = if self.ignore_case {
            actual.trim().to_lowercase() == expected.trim().to_lowercase()
        } else {
            actual == expected
        };
        f64::from(u8::from(same))
    }
}

/// 1 when the actual output contains the expected text (case-insensitive), else 0.
#[derive(Debug, Clone, Default)]
pub struct Contains;

impl Metric for Contains {
    fn name(&self) -> &str {
        "contains"
    }
    fn score(&self, item: &DatasetItem) -> f64 {
        let (Some(actual), Some(expected)) =
            (text(&item.actual_output), text(&item.expected_output))
        else {
            return f64::NAN;
        };
        f64::from(u8::from(
            actual
                .to_lowercase()
                .contains(&expected.trim().to_lowercase()),
        ))
    }
}

/// `1 - distance / max(len)`, the Levenshtein similarity of actual and expected text.
#[derive(Debug, Clone, Default)]
pub struct LevenshteinRatio;

/// Levenshtein distance between two strings, by characters.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

impl Metric for LevenshteinRatio {
    fn name(&self) -> &str {
        "levenshtein_ratio"
    }
    fn score(&self, item: &DatasetItem) -> f64 {
        let (Some(actual), Some(expected)) =
            (text(&item.actual_output), text(&item.expected_output))
        else {
            return f64::NAN;
        };
        let longest = actual.chars().count().max(expected.chars().count());
        if longest == 0 {
            return 1.0;
        }
        1.0 - levenshtein(&actual, &expected) as f64 / longest as f64
    }
}

/// The traced run's latency in seconds (`NaN` when unknown).
#[derive(Debug, Clone, Default)]
pub struct Latency;

impl Metric for Latency {
    fn name(&self) -> &str {
        "latency"
    }
    fn score(&self, item: &DatasetItem) -> f64 {
        item.latency.unwrap_or(f64::NAN)
    }
}

/// How an evaluation run is traced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TraceGranularity {
    /// One trace named after the evaluation; items and metrics are its children.
    #[default]
    SingleTrace,
    /// One trace per item.
    Separate,
}

/// A named set of metrics to run over a dataset.
pub struct Evaluation {
    name: String,
    metrics: Vec<Arc<dyn Metric>>,
    granularity: TraceGranularity,
    concurrency: usize,
    tracer: Option<Tracer>,
    progress: bool,
}

impl std::fmt::Debug for Evaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let metrics: Vec<&str> = self.metrics.iter().map(|metric| metric.name()).collect();
        f.debug_struct("Evaluation")
            .field("name", &self.name)
            .field("metrics", &metrics)
            .finish_non_exhaustive()
    }
}

impl Evaluation {
    /// An evaluation called `name` (the root trace's name).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            metrics: Vec::new(),
            granularity: TraceGranularity::SingleTrace,
            concurrency: 4,
            tracer: None,
            progress: std::io::stderr().is_terminal(),
        }
    }

    /// Adds a metric.
    pub fn metric(mut self, metric: Arc<dyn Metric>) -> Self {
        self.metrics.push(metric);
        self
    }

    /// One trace for the run (default) or one per item.
    pub fn granularity(mut self, granularity: TraceGranularity) -> Self {
        self.granularity = granularity;
        self
    }

    /// Items evaluated in parallel (default 4).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// The tracer to record the run with (default: an evaluation tracer from the configured
    /// provider).
    pub fn tracer(mut self, tracer: Tracer) -> Self {
        self.tracer = Some(tracer);
        self
    }

    /// Shows `evaluated n/N` on stderr (default: when stderr is a terminal).
    pub fn progress(mut self, show: bool) -> Self {
        self.progress = show;
        self
    }

    /// Runs every metric on every item; results are in dataset order.
    pub fn run(&self, dataset: &Dataset) -> Vec<EvaluationResult> {
        let tracer = self
            .tracer
            .clone()
            .unwrap_or_else(|| crate::init_tracer(MetadataType::Evaluation));
        let root = match self.granularity {
            TraceGranularity::SingleTrace => {
                let root = tracer
                    .span_builder(self.name.clone())
                    .kind(ObservationType::Evaluator)
                    .new_trace()
                    .start();
                root.update_trace(
                    crate::TraceUpdate::new()
                        .name(self.name.clone())
                        .tags(["evaluation"]),
                );
                Some(root)
            }
            TraceGranularity::Separate => None,
        };
        let items = dataset.items();
        let results: Vec<Mutex<Option<EvaluationResult>>> =
            items.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..self.concurrency.min(items.len().max(1)) {
                scope.spawn(|| loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(index) else { break };
                    let result = self.evaluate(&tracer, root.as_ref(), item);
                    *results[index].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                    let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if self.progress && (finished % 10 == 0 || finished == items.len()) {
                        eprint!("\r{}: evaluated {finished}/{}", self.name, items.len());
                        if finished == items.len() {
                            eprintln!();
                        }
                    }
                });
            }
        });
        if let Some(root) = root {
            root.set_output(serde_json::json!({"items": items.len()}));
            root.end();
        }
        results
            .into_iter()
            .filter_map(|slot| slot.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect()
    }

    fn evaluate(
        &self,
        tracer: &Tracer,
        root: Option<&crate::Span>,
        item: &DatasetItem,
    ) -> EvaluationResult {
        // Separate traces: one root per item, named after the evaluation.
        let item_root = match root {
            Some(_) => None,
            None => {
                let span = tracer
                    .span_builder(self.name.clone())
                    .kind(ObservationType::Evaluator)
                    .new_trace()
                    .start();
                span.update_trace(
                    crate::TraceUpdate::new()
                        .name(self.name.clone())
                        .tags(["evaluation"]),
                );
                span.set_input(serde_json::json!({"item_id": item.id, "query": item.query}));
                Some(span)
            }
        };
        let parent = root.or(item_root.as_ref()).expect("a root span exists");
        let mut metrics = BTreeMap::new();
        for metric in &self.metrics {
            // The metric runs with its span current, so whatever it traces (an LLM judge) nests
            // below it: evaluation › metric › LLM call.
            let span = tracer
                .span_builder(metric.name().to_owned())
                .kind(ObservationType::Evaluator)
                .child_of(parent)
                .enter();
            span.set_input(serde_json::json!({"item_id": item.id, "query": item.query, "expected_output": item.expected_output}));
            let value = metric.score(item);
            span.set_output(serde_json::json!({ "value": if value.is_finite() { Value::from(value) } else { Value::Null } }));
            drop(span);
            metrics.insert(metric.name().to_owned(), value);
        }
        if let Some(span) = item_root {
            span.set_output(serde_json::to_value(&metrics).unwrap_or(Value::Null));
            span.end();
        }
        EvaluationResult {
            item: item.clone(),
            metrics,
            comment: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(actual: &str, expected: &str) -> DatasetItem {
        let mut item = DatasetItem::new(actual);
        item.actual_output = Some(json!(actual));
        item.expected_output = Some(json!(expected));
        item
    }

    #[test]
    fn built_in_metrics() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert!(
            (LevenshteinRatio.score(&item("kitten", "sitting")) - (1.0 - 3.0 / 7.0)).abs() < 1e-12
        );
        assert_eq!(ExactMatch::default().score(&item("Paris", "paris")), 0.0);
        assert_eq!(
            ExactMatch::case_insensitive().score(&item("Paris ", "paris")),
            1.0
        );
        assert_eq!(Contains.score(&item("It is Paris.", "paris")), 1.0);
        assert!(ExactMatch::default().score(&DatasetItem::new("x")).is_nan());
        assert!(Latency.score(&DatasetItem::new("x")).is_nan());
    }

    #[test]
    fn results_keep_dataset_order_under_concurrency() {
        let dataset = Dataset::from_items(
            (0..40)
                .map(|i| item(&format!("a{i}"), &format!("a{}", i % 2 * i)))
                .collect(),
        );
        let results = Evaluation::new("order")
            .metric(Arc::new(ExactMatch::default()))
            .concurrency(8)
            .progress(false)
            .run(&dataset);
        assert_eq!(results.len(), 40);
        for (i, result) in results.iter().enumerate() {
            assert_eq!(result.item.id, format!("a{i}"));
            assert_eq!(
                result.metrics["exact_match"],
                f64::from(u8::from(i % 2 == 1 || i == 0))
            );
        }
    }
}
