//! Per-tracer statistics, kept by metadata type, printable as a table.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use axion_model::{ObservationLevel, ObservationType};

use crate::provider::{ExportStats, RawObservation};
use crate::tracer::{LifecycleStatus, MetadataType};

/// LLM calls: every generation observation that ended (including [`log_llm_call`](crate::Tracer::log_llm_call)).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct LlmStats {
    /// Generations recorded.
    pub calls: u64,
    /// Generations that ended at level `ERROR`.
    pub failed_calls: u64,
    /// Input tokens.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub completion_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
    /// Cost in USD, where the calls reported one.
    pub cost_usd: f64,
    /// Summed latency.
    pub total_latency: Duration,
    /// Models seen.
    pub models: BTreeSet<String>,
    /// Providers seen (from `log_llm_call`).
    pub providers: BTreeSet<String>,
}

impl LlmStats {
    /// Mean latency per call.
    pub fn average_latency(&self) -> Duration {
        average(self.total_latency, self.calls)
    }

    /// Share of calls that did not fail, from 0 to 1 (1 when there were none).
    pub fn success_rate(&self) -> f64 {
        success_rate(self.calls, self.failed_calls)
    }
}

/// Retrievals: retriever observations, and documents reported through
/// [`log_retrieval`](crate::Tracer::log_retrieval).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct KnowledgeStats {
    /// Retriever observations recorded.
    pub retrievals: u64,
    /// Documents retrieved.
    pub documents: u64,
    /// Summed retrieval latency.
    pub total_latency: Duration,
}

impl KnowledgeStats {
    /// Mean latency per retrieval.
    pub fn average_latency(&self) -> Duration {
        average(self.total_latency, self.retrievals)
    }
}

/// Evaluations: evaluator observations and [`log_evaluation`](crate::Tracer::log_evaluation) calls.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct EvaluationStats {
    /// Datapoints evaluated.
    pub datapoints: u64,
    /// Evaluations that failed (level `ERROR`).
    pub failures: u64,
    /// Summed evaluation latency.
    pub total_latency: Duration,
}

impl EvaluationStats {
    /// Mean latency per datapoint.
    pub fn average_latency(&self) -> Duration {
        average(self.total_latency, self.datapoints)
    }
}

/// Database queries reported through [`log_database_query`](crate::Tracer::log_database_query).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct DatabaseStats {
    /// Queries recorded.
    pub queries: u64,
    /// Rows affected, summed.
    pub rows: u64,
    /// Summed query latency.
    pub total_latency: Duration,
}

impl DatabaseStats {
    /// Mean latency per query.
    pub fn average_latency(&self) -> Duration {
        average(self.total_latency, self.queries)
    }
}

/// A snapshot of a tracer's statistics. `Display` prints the table for its metadata type.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TracerStats {
    /// The tracer's metadata type, which decides what `Display` shows.
    pub metadata_type: MetadataType,
    /// The tracer's execution id.
    pub execution_id: String,
    /// Lifecycle status (`start` / `complete` / `fail`).
    pub status: LifecycleStatus,
    /// Time from `start` to `complete`/`fail`, once both happened.
    pub latency: Option<Duration>,
    /// Observations recorded.
    pub observations: u64,
    /// Local events added with `add_trace`.
    pub events: u64,
    /// LLM statistics.
    pub llm: LlmStats,
    /// Retrieval statistics.
    pub knowledge: KnowledgeStats,
    /// Evaluation statistics.
    pub evaluation: EvaluationStats,
    /// Database statistics.
    pub database: DatabaseStats,
    /// The provider's export counters.
    pub export: ExportStats,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) llm: LlmStats,
    pub(crate) knowledge: KnowledgeStats,
    pub(crate) evaluation: EvaluationStats,
    pub(crate) database: DatabaseStats,
}

impl Counters {
    pub(crate) fn record(&mut self, observation: &RawObservation) {
        let latency = observation
            .end_time
            .and_then(|end| end.duration_since(observation.start_time).ok())
            .unwrap_or_default();
        let failed = observation.level == ObservationLevel::Error;
        match observation.r#type {
            ObservationType::Generation => {
                let llm = &mut self.llm;
                llm.calls += 1;
                llm.failed_calls += u64::from(failed);
                llm.total_latency += latency;
                if let Some(usage) = &observation.usage_details {
                    let input = usage.get("input").copied().unwrap_or(0);
                    let output = usage.get("output").copied().unwrap_or(0);
                    llm.prompt_tokens += input;
                    llm.completion_tokens += output;
                    llm.total_tokens += usage.get("total").copied().unwrap_or(input + output);
                }
                if let Some(cost) = observation
                    .cost_details
                    .as_ref()
                    .and_then(|cost| cost.get("total"))
                {
                    llm.cost_usd += cost;
                }
                if let Some(model) = &observation.model {
                    if !llm.models.contains(model) {
                        llm.models.insert(model.clone());
                    }
                }
            }
            ObservationType::Retriever => {
                self.knowledge.retrievals += 1;
                self.knowledge.total_latency += latency;
            }
            ObservationType::Evaluator => {
                self.evaluation.datapoints += 1;
                self.evaluation.failures += u64::from(failed);
                self.evaluation.total_latency += latency;
            }
            _ => {}
        }
    }
}

fn average(total: Duration, count: u64) -> Duration {
    if count == 0 {
        Duration::ZERO
    } else {
        total / u32::try_from(count).unwrap_or(u32::MAX)
    }
}

fn success_rate(total: u64, failed: u64) -> f64 {
    if total == 0 {
        1.0
    } else {
        (total - failed.min(total)) as f64 / total as f64
    }
}

struct Table<'a> {
    title: &'a str,
    rows: Vec<(&'static str, String)>,
}

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key_width = self
            .rows
            .iter()
            .map(|(key, _)| key.len())
            .max()
            .unwrap_or(0);
        let value_width = self
            .rows
            .iter()
            .map(|(_, value)| value.chars().count())
            .max()
            .unwrap_or(0);
        let width = (key_width + value_width + 3).max(self.title.len());
        writeln!(f, "{}", self.title)?;
        writeln!(f, "{}", "─".repeat(width))?;
        for (key, value) in &self.rows {
            writeln!(f, "{key:<key_width$} │ {value}")?;
        }
        Ok(())
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.3}s", duration.as_secs_f64())
}

impl fmt::Display for TracerStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short_id: String = self.execution_id.chars().take(8).collect();
        let mut rows = vec![
            ("execution", format!("{short_id}...")),
            ("status", self.status.to_string()),
            (
                "latency",
                self.latency.map(seconds).unwrap_or_else(|| "-".into()),
            ),
            ("observations", self.observations.to_string()),
            ("events", self.events.to_string()),
        ];
        let title = match self.metadata_type {
            MetadataType::Llm => {
                let llm = &self.llm;
                rows.extend([
                    ("llm calls", llm.calls.to_string()),
                    (
                        "success rate",
                        format!("{:.1}%", llm.success_rate() * 100.0),
                    ),
                    ("prompt tokens", llm.prompt_tokens.to_string()),
                    ("completion tokens", llm.completion_tokens.to_string()),
                    ("total tokens", llm.total_tokens.to_string()),
                    ("avg latency", seconds(llm.average_latency())),
                ]);
                if llm.calls > 0 {
                    rows.push((
                        "avg tokens/call",
                        format!("{:.1}", llm.total_tokens as f64 / llm.calls as f64),
                    ));
                }
                if llm.cost_usd > 0.0 {
                    rows.push(("estimated cost", format!("${:.6}", llm.cost_usd)));
                }
                "LLM statistics"
            }
            MetadataType::Knowledge => {
                let knowledge = &self.knowledge;
                rows.extend([
                    ("retrievals", knowledge.retrievals.to_string()),
                    ("documents", knowledge.documents.to_string()),
                    ("avg retrieval", seconds(knowledge.average_latency())),
                    ("llm calls", self.llm.calls.to_string()),
                    ("llm tokens", self.llm.total_tokens.to_string()),
                ]);
                "Knowledge statistics"
            }
            MetadataType::Evaluation => {
                let evaluation = &self.evaluation;
                rows.extend([
                    ("datapoints", evaluation.datapoints.to_string()),
                    ("failures", evaluation.failures.to_string()),
                    (
                        "success rate",
                        format!(
                            "{:.1}%",
                            success_rate(evaluation.datapoints, evaluation.failures) * 100.0
                        ),
                    ),
                    ("avg per datapoint", seconds(evaluation.average_latency())),
                ]);
                if self.llm.total_tokens > 0 {
                    rows.push(("llm tokens", self.llm.total_tokens.to_string()));
                }
                if self.llm.cost_usd > 0.0 {
                    rows.push(("estimated cost", format!("${:.6}", self.llm.cost_usd)));
                }
                "Evaluation statistics"
            }
            MetadataType::Database => {
                let database = &self.database;
                rows.extend([
                    ("queries", database.queries.to_string()),
                    ("rows", database.rows.to_string()),
                    ("avg query", seconds(database.average_latency())),
                ]);
                "Database statistics"
            }
            MetadataType::Base => "Execution statistics",
        };
        if self.export.dropped() > 0 {
            rows.push(("dropped records", self.export.dropped().to_string()));
        }
        Table { title, rows }.fmt(f)
    }
}
