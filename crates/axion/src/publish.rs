//! Publishing evaluation scores back onto the traces (or observations) they came from.
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use axion::dataset::DatasetItem;
//! use axion::publish::{publish_to_observability, EvaluationResult, LangfuseScores, PublishOptions};
//!
//! let mut item = DatasetItem::new("q1");
//! item.trace_id = Some("0af7651916cd43dd8448eb211c80319c".into());
//! let results = vec![EvaluationResult { item, metrics: BTreeMap::from([("exact_match".into(), 1.0)]), comment: None }];
//! let mut target = LangfuseScores::from_env()?;
//! let report = publish_to_observability(&results, &PublishOptions::default(), &mut target);
//! println!("{report:?}");
//! # Ok::<(), axion::Error>(())
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use axion_model::{Score, ScoreSource};
use serde_json::json;

use crate::config::Settings;
use crate::dataset::DatasetItem;
use crate::error::Result;
use crate::export::Exporter;
use crate::provider::RawRecord;

/// One evaluated item and its metric values.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationResult {
    /// The item (its `trace_id`/`observation_id` say where scores go).
    pub item: DatasetItem,
    /// Metric name → value.
    pub metrics: BTreeMap<String, f64>,
    /// Optional comment on every score of this item.
    pub comment: Option<String>,
}

/// Where scores attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScoreLevel {
    /// On the trace (`trace_id`).
    #[default]
    Trace,
    /// On the observation (`observation_id`; items without one are skipped).
    Observation,
}

/// How to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishOptions {
    /// Trace or observation level.
    pub level: ScoreLevel,
    /// Only these metrics (all when `None`).
    pub metric_names: Option<Vec<String>>,
    /// Tags recorded in each score's metadata, merged with `default_tags`.
    pub tags: Vec<String>,
    /// Always-added tags.
    pub default_tags: Vec<String>,
    /// Scores per request.
    pub batch_size: usize,
    /// Pause between requests (pacing for rate-limited backends).
    pub pause: Duration,
}

impl Default for PublishOptions {
    fn default() -> Self {
        Self {
            level: ScoreLevel::Trace,
            metric_names: None,
            tags: Vec::new(),
            default_tags: vec!["axion-evaluation".into()],
            batch_size: 100,
            pause: Duration::from_millis(0),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PublishReport {
    /// Scores the backend accepted.
    pub uploaded: usize,
    /// Scores not sent: NaN values, missing ids, metrics not in the allow-list.
    pub skipped: usize,
    /// Scores in batches the backend refused.
    pub failed: usize,
}

/// A backend that takes scores.
pub trait ScoreTarget {
    /// Sends one batch.
    fn send(&mut self, scores: Vec<Score>) -> Result<()>;
}

/// Builds the scores, sends them in paced batches, and counts.
pub fn publish_to_observability(
    results: &[EvaluationResult],
    options: &PublishOptions,
    target: &mut dyn ScoreTarget,
) -> PublishReport {
    let mut report = PublishReport::default();
    let mut tags = options.default_tags.clone();
    for tag in &options.tags {
        if !tags.contains(tag) {
            tags.push(tag.clone());
        }
    }
    let mut scores = Vec::new();
    for result in results {
        for (name, value) in &result.metrics {
            let allowed = options
                .metric_names
                .as_ref()
                .map_or(true, |names| names.contains(name));
            let trace_id = result.item.trace_id.clone();
            let observation_id = result.item.observation_id.clone();
            let attached = match options.level {
                ScoreLevel::Trace => trace_id.is_some(),
                ScoreLevel::Observation => trace_id.is_some() && observation_id.is_some(),
            };
            if !allowed || !value.is_finite() || !attached {
                report.skipped += 1;
                continue;
            }
            let mut score = Score::numeric(name.clone(), *value);
            score.trace_id = trace_id;
            if options.level == ScoreLevel::Observation {
                score.observation_id = observation_id;
            }
            score.comment = result.comment.clone();
            score.source = ScoreSource::Eval;
            score.metadata = Some(json!({"tags": tags, "dataset_item_id": result.item.id}));
            scores.push(score);
        }
    }
    let batch_size = options.batch_size.max(1);
    let batches = scores.len().div_ceil(batch_size);
    for (index, chunk) in scores.chunks(batch_size).enumerate() {
        match target.send(chunk.to_vec()) {
            Ok(()) => report.uploaded += chunk.len(),
            Err(error) => {
                log::warn!("axion: publishing {} scores failed: {error}", chunk.len());
                report.failed += chunk.len();
            }
        }
        if index + 1 < batches && !options.pause.is_zero() {
            std::thread::sleep(options.pause);
        }
    }
    report
}

/// Sends scores through an exporter (its HTTP retries included).
struct ExporterTarget<E>(E);

impl<E: Exporter> ExporterTarget<E> {
    fn send(&mut self, scores: Vec<Score>) -> Result<()> {
        self.0.export(
            scores
                .into_iter()
                .map(|score| RawRecord::Score(Box::new(score)))
                .collect(),
        )
    }
}

/// Langfuse (or `axion serve`) as a score target: `score-create` events through the ingestion
/// API, which every Langfuse version accepts.
pub struct LangfuseScores(ExporterTarget<crate::export::langfuse::IngestionExporter>);

impl LangfuseScores {
    /// From `LANGFUSE_*` settings.
    pub fn from_settings(settings: &Settings) -> Result<Self> {
        let config = crate::export::langfuse::LangfuseConfig::from_settings(settings)?;
        Ok(Self(ExporterTarget(
            crate::export::langfuse::IngestionExporter::new(config),
        )))
    }

    /// From the environment.
    pub fn from_env() -> Result<Self> {
        Self::from_settings(&Settings::from_env())
    }
}

impl ScoreTarget for LangfuseScores {
    fn send(&mut self, scores: Vec<Score>) -> Result<()> {
        self.0.send(scores)
    }
}

/// Opik as a score target: feedback scores on traces or spans.
pub struct OpikScores(ExporterTarget<crate::export::opik::OpikExporter>);

impl OpikScores {
    /// From `OPIK_*` settings.
    pub fn from_settings(settings: &Settings) -> Result<Self> {
        let config = crate::export::opik::OpikConfig::from_settings(settings)?;
        let sender = crate::export::http::HttpSender::new(
            "opik",
            crate::export::http::RetryPolicy::default(),
        );
        Ok(Self(ExporterTarget(
            crate::export::opik::OpikExporter::new(config, sender),
        )))
    }
}

impl ScoreTarget for OpikScores {
    fn send(&mut self, scores: Vec<Score>) -> Result<()> {
        self.0.send(scores)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        batches: Vec<Vec<Score>>,
        fail_second: bool,
    }

    impl ScoreTarget for Recorder {
        fn send(&mut self, scores: Vec<Score>) -> Result<()> {
            self.batches.push(scores);
            if self.fail_second && self.batches.len() == 2 {
                return Err(crate::Error::Export {
                    backend: "test".into(),
                    reason: "refused".into(),
                });
            }
            Ok(())
        }
    }

    fn result(
        trace: Option<&str>,
        observation: Option<&str>,
        metrics: &[(&str, f64)],
    ) -> EvaluationResult {
        let mut item = DatasetItem::new("i");
        item.trace_id = trace.map(str::to_owned);
        item.observation_id = observation.map(str::to_owned);
        EvaluationResult {
            item,
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            comment: None,
        }
    }

    #[test]
    fn nan_missing_ids_and_filtered_metrics_are_skipped_and_counted() {
        let results = vec![
            result(
                Some("t1"),
                Some("o1"),
                &[("exact", 1.0), ("nan", f64::NAN), ("other", 0.5)],
            ),
            result(None, None, &[("exact", 0.0)]),
            result(Some("t2"), None, &[("exact", 0.0)]),
        ];
        let options = PublishOptions {
            metric_names: Some(vec!["exact".into(), "nan".into()]),
            batch_size: 1,
            tags: vec!["run-1".into()],
            ..PublishOptions::default()
        };
        let mut recorder = Recorder {
            fail_second: true,
            ..Recorder::default()
        };
        let report = publish_to_observability(&results, &options, &mut recorder);
        assert_eq!(
            report,
            PublishReport {
                uploaded: 1,
                skipped: 3,
                failed: 1
            }
        );
        let first = &recorder.batches[0][0];
        assert_eq!(
            (first.trace_id.as_deref(), first.observation_id.as_deref()),
            (Some("t1"), None)
        );
        assert_eq!(
            first.metadata.as_ref().unwrap()["tags"],
            json!(["axion-evaluation", "run-1"])
        );
        let observation_level = PublishOptions {
            level: ScoreLevel::Observation,
            ..PublishOptions::default()
        };
        let mut recorder = Recorder::default();
        let report = publish_to_observability(&results, &observation_level, &mut recorder);
        assert_eq!((report.uploaded, report.skipped), (2, 3));
        assert_eq!(recorder.batches[0][0].observation_id.as_deref(), Some("o1"));
    }
}
