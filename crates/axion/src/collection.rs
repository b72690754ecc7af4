//! Exploring fetched traces: a [`TraceCollection`] of [`Trace`]s whose observations are grouped
//! into [`TraceStep`]s by name, with path access into inputs, outputs and metadata.
//!
//! ```
//! use axion::collection::{Trace, TraceCollection};
//! use axion::load::LoadedTrace;
//! use axion_model::{Observation, ObservationType};
//! use serde_json::json;
//!
//! let mut generation = Observation::new("o1", "t1");
//! generation.name = Some("playAnalysis".into());
//! generation.r#type = ObservationType::Generation;
//! generation.output = Some(json!({"text": "a ruling"}));
//! let mut loaded = LoadedTrace::new(axion_model::Trace::new("t1"));
//! loaded.observations.push(generation);
//!
//! let collection = TraceCollection::from_loaded(vec![loaded]);
//! let trace = &collection[0];
//! // Names match whatever the separators and case: play_analysis finds playAnalysis.
//! assert_eq!(trace.step("play_analysis").unwrap().count(), 1);
//! assert_eq!(trace.get("play-analysis.generation.output.text"), Some(&json!("a ruling")));
//! ```

use std::collections::HashMap;
use std::path::Path;

use axion_model::{Observation, ObservationType, Score, Timestamp};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::load::LoadedTrace;

/// Step names compare lower-case with separators (`_`, `-`, space, `.`) removed.
pub fn normalize_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// One trace with its observations (by start time) and scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Trace {
    /// Trace id.
    pub id: String,
    /// Trace name.
    pub name: Option<String>,
    /// User id.
    pub user_id: Option<String>,
    /// Session id.
    pub session_id: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Start time.
    pub timestamp: Option<Timestamp>,
    /// Trace input.
    pub input: Option<Value>,
    /// Trace output.
    pub output: Option<Value>,
    /// Trace metadata.
    pub metadata: Option<Value>,
    /// Seconds from first start to last end.
    pub latency: Option<f64>,
    /// Total cost, USD.
    pub total_cost: Option<f64>,
    /// Observations, by start time.
    #[serde(default)]
    pub observations: Vec<Observation>,
    /// Scores.
    #[serde(default)]
    pub scores: Vec<Score>,
}

impl LoadedTrace {
    /// A loaded trace with no observations or scores yet.
    pub fn new(trace: axion_model::Trace) -> Self {
        Self {
            trace,
            observations: Vec::new(),
            scores: Vec::new(),
            latency: None,
            total_cost: None,
        }
    }
}

impl From<LoadedTrace> for Trace {
    fn from(loaded: LoadedTrace) -> Self {
        let mut observations = loaded.observations;
        observations.sort_by_key(|observation| observation.start_time);
        let latency = loaded.latency.or_else(|| {
            let start = observations.iter().filter_map(|o| o.start_time).min()?;
            let end = observations
                .iter()
                .filter_map(|o| o.end_time.or(o.start_time))
                .max()?;
            Some((end - start).num_microseconds()? as f64 / 1e6)
        });
        let trace = loaded.trace;
        Self {
            id: trace.id,
            name: trace.name,
            user_id: trace.user_id,
            session_id: trace.session_id,
            tags: trace.tags,
            timestamp: trace.timestamp,
            input: trace.input,
            output: trace.output,
            metadata: trace.metadata,
            latency,
            total_cost: loaded.total_cost,
            observations,
            scores: loaded.scores,
        }
    }
}

/// The observations of one trace that share a (normalised) name, in start order: a step that
/// ran several times has several iterations.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceStep<'a> {
    name: String,
    index: usize,
    observations: Vec<&'a Observation>,
}

impl<'a> TraceStep<'a> {
    /// The step's name as first recorded.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its position among the trace's steps (order of first appearance).
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many times it ran.
    pub fn count(&self) -> usize {
        self.observations.len()
    }

    /// The first iteration.
    pub fn first(&self) -> &'a Observation {
        self.observations[0]
    }

    /// The last iteration.
    pub fn last(&self) -> &'a Observation {
        self.observations[self.observations.len() - 1]
    }

    /// Iteration `index` (0-based).
    pub fn iteration(&self, index: usize) -> Option<&'a Observation> {
        self.observations.get(index).copied()
    }

    /// All iterations.
    pub fn iter(&self) -> impl Iterator<Item = &'a Observation> + '_ {
        self.observations.iter().copied()
    }

    /// The (last) generation among the iterations.
    pub fn generation(&self) -> Option<&'a Observation> {
        self.observations
            .iter()
            .rev()
            .copied()
            .find(|o| o.r#type == ObservationType::Generation)
    }

    /// The (last) observation that is not a generation.
    pub fn span(&self) -> Option<&'a Observation> {
        self.observations
            .iter()
            .rev()
            .copied()
            .find(|o| o.r#type != ObservationType::Generation)
    }
}

/// Walks `path` (dot-separated keys, numeric segments index arrays) into a JSON value.
pub fn json_path<'v>(value: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(value, |value, segment| match value {
        Value::Object(map) => map.get(*segment),
        Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
        _ => None,
    })
}

fn observation_field<'v>(observation: &'v Observation, path: &[&str]) -> Option<&'v Value> {
    let (field, rest) = path.split_first()?;
    let root = match *field {
        "input" => observation.input.as_ref()?,
        "output" => observation.output.as_ref()?,
        "metadata" => observation.metadata.as_ref()?,
        _ => return None,
    };
    json_path(root, rest)
}

impl Trace {
    /// The steps, in order of first appearance.
    pub fn steps(&self) -> Vec<TraceStep<'_>> {
        let mut order: Vec<TraceStep<'_>> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for observation in &self.observations {
            let name = observation.name.clone().unwrap_or_default();
            let key = normalize_name(&name);
            match index.get(&key) {
                Some(&at) => order[at].observations.push(observation),
                None => {
                    index.insert(key, order.len());
                    order.push(TraceStep {
                        name,
                        index: order.len(),
                        observations: vec![observation],
                    });
                }
            }
        }
        order
    }

    /// The step with this name (case and separators ignored).
    pub fn step(&self, name: &str) -> Option<TraceStep<'_>> {
        let wanted = normalize_name(name);
        self.steps()
            .into_iter()
            .find(|step| normalize_name(&step.name) == wanted)
    }

    /// Path access: `input.question`, `output.answer`, `metadata.k`, or
    /// `<step>[.<iteration>|.first|.last][.generation|.span].<input|output|metadata>.<keys…>`,
    /// e.g. `ruling.generation.output.text` or `retrieve.1.output.0`.
    pub fn get(&self, path: &str) -> Option<&Value> {
        let segments: Vec<&str> = path.split('.').collect();
        let (head, rest) = segments.split_first()?;
        match *head {
            "input" => return json_path(self.input.as_ref()?, rest),
            "output" => return json_path(self.output.as_ref()?, rest),
            "metadata" => return json_path(self.metadata.as_ref()?, rest),
            _ => {}
        }
        let step = self.step(head)?;
        let (mut observation, mut rest) = (step.last(), rest);
        if let Some((selector, tail)) = rest.split_first() {
            let chosen = match *selector {
                "first" => Some(step.first()),
                "last" => Some(step.last()),
                "generation" => Some(step.generation()?),
                "span" => Some(step.span()?),
                index => index.parse::<usize>().ok().and_then(|i| step.iteration(i)),
            };
            if let Some(chosen) = chosen {
                observation = chosen;
                rest = tail;
                if let Some((kind, tail)) = rest.split_first() {
                    let typed = match *kind {
                        "generation" if observation.r#type == ObservationType::Generation => true,
                        "span" if observation.r#type != ObservationType::Generation => true,
                        "generation" | "span" => return None,
                        _ => false,
                    };
                    if typed {
                        rest = tail;
                    }
                }
            }
        }
        observation_field(observation, rest)
    }

    /// The score with this name.
    pub fn score(&self, name: &str) -> Option<&Score> {
        self.scores.iter().find(|score| score.name == name)
    }

    /// Variables pulled out of each generation's prompt (its input rendered as text) by the
    /// named capture groups of the patterns registered for its step.
    pub fn prompt_variables(&self, patterns: &PromptPatterns) -> HashMap<String, String> {
        let mut variables = HashMap::new();
        for observation in &self.observations {
            let Some(regexes) = patterns.by_step.get(&normalize_name(
                observation.name.as_deref().unwrap_or_default(),
            )) else {
                continue;
            };
            let Some(input) = &observation.input else {
                continue;
            };
            let text = prompt_text(input);
            for regex in regexes {
                if let Some(captures) = regex.captures(&text) {
                    for name in regex.capture_names().flatten() {
                        if let Some(value) = captures.name(name) {
                            variables.insert(name.to_owned(), value.as_str().to_owned());
                        }
                    }
                }
            }
        }
        variables
    }
}

/// The text of a prompt: a string as is; chat messages' contents joined by newlines.
fn prompt_text(input: &Value) -> String {
    match input {
        Value::String(text) => text.clone(),
        Value::Array(messages) => messages
            .iter()
            .map(|message| match message.get("content") {
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
                None => message.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Object(map) => match map.get("messages").or_else(|| map.get("prompt")) {
            Some(inner) => prompt_text(inner),
            None => input.to_string(),
        },
        other => other.to_string(),
    }
}

/// Named-group regexes per step, for [`Trace::prompt_variables`].
#[derive(Debug, Clone, Default)]
pub struct PromptPatterns {
    by_step: HashMap<String, Vec<Regex>>,
}

impl PromptPatterns {
    /// No patterns.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pattern (with named groups such as `(?P<question>.+)`) for a step.
    pub fn add(mut self, step: &str, pattern: &str) -> Result<Self> {
        let regex = Regex::new(pattern).map_err(|error| Error::InvalidSetting {
            setting: format!("prompt pattern for {step}"),
            value: pattern.to_owned(),
            reason: error.to_string(),
        })?;
        self.by_step
            .entry(normalize_name(step))
            .or_default()
            .push(regex);
        Ok(self)
    }
}

/// Fields for [`TraceCollection::filter_by`]; unset fields match everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceFilter {
    /// Exact name.
    pub name: Option<String>,
    /// Exact user id.
    pub user_id: Option<String>,
    /// Exact session id.
    pub session_id: Option<String>,
    /// Must carry all of these tags.
    pub tags: Vec<String>,
    /// Must have a step with this name.
    pub has_step: Option<String>,
    /// Must have a score with this name.
    pub has_score: Option<String>,
}

/// A list of traces to explore, filter, save and turn into a dataset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceCollection {
    traces: Vec<Trace>,
}

impl TraceCollection {
    /// From traces as a loader returns them.
    pub fn from_loaded(loaded: Vec<LoadedTrace>) -> Self {
        Self {
            traces: loaded.into_iter().map(Trace::from).collect(),
        }
    }

    /// From traces built some other way.
    pub fn from_traces(traces: Vec<Trace>) -> Self {
        Self { traces }
    }

    /// Fetches with a Langfuse loader.
    pub fn from_langfuse(
        loader: &crate::load::LangfuseTraceLoader,
        query: &crate::load::FetchTraces,
    ) -> Result<Self> {
        Ok(Self::from_loaded(loader.fetch_traces(query)?))
    }

    /// Fetches with an Opik loader.
    pub fn from_opik(
        loader: &crate::load::OpikTraceLoader,
        query: &crate::load::FetchTraces,
    ) -> Result<Self> {
        Ok(Self::from_loaded(loader.fetch_traces(query)?))
    }

    /// Fetches with a Logfire loader.
    pub fn from_logfire(
        loader: &crate::load::LogfireTraceLoader,
        query: &crate::load::FetchTraces,
    ) -> Result<Self> {
        Ok(Self::from_loaded(loader.fetch_traces(query)?))
    }

    /// Fetches the given trace ids with a Langfuse loader.
    pub fn from_ids(loader: &crate::load::LangfuseTraceLoader, ids: &[String]) -> Result<Self> {
        Ok(Self::from_loaded(loader.fetch_many(ids)?))
    }

    /// Fetches a session's traces.
    pub fn from_session(
        loader: &crate::load::LangfuseTraceLoader,
        session_id: &str,
    ) -> Result<Self> {
        Ok(Self::from_loaded(loader.fetch_session(session_id)?))
    }

    /// The traces.
    pub fn traces(&self) -> &[Trace] {
        &self.traces
    }

    /// Number of traces.
    pub fn len(&self) -> usize {
        self.traces.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.traces.is_empty()
    }

    /// Iterates the traces.
    pub fn iter(&self) -> std::slice::Iter<'_, Trace> {
        self.traces.iter()
    }

    /// The traces for which `keep` is true (scores come along).
    pub fn filter(&self, keep: impl Fn(&Trace) -> bool) -> Self {
        Self {
            traces: self
                .traces
                .iter()
                .filter(|trace| keep(trace))
                .cloned()
                .collect(),
        }
    }

    /// The traces matching every set field of `filter`.
    pub fn filter_by(&self, filter: &TraceFilter) -> Self {
        self.filter(|trace| {
            filter
                .name
                .as_ref()
                .map_or(true, |name| trace.name.as_ref() == Some(name))
                && filter
                    .user_id
                    .as_ref()
                    .map_or(true, |user| trace.user_id.as_ref() == Some(user))
                && filter
                    .session_id
                    .as_ref()
                    .map_or(true, |session| trace.session_id.as_ref() == Some(session))
                && filter.tags.iter().all(|tag| trace.tags.contains(tag))
                && filter
                    .has_step
                    .as_ref()
                    .map_or(true, |step| trace.step(step).is_some())
                && filter
                    .has_score
                    .as_ref()
                    .map_or(true, |score| trace.score(score).is_some())
        })
    }

    /// Writes the collection as JSON.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let text = serde_json::to_string_pretty(self)
            .map_err(|error| io_error(path, std::io::Error::other(error)))?;
        std::fs::write(path, text).map_err(|error| io_error(path, error))
    }

    /// Reads a collection written by [`TraceCollection::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| io_error(path, error))?;
        serde_json::from_str(&text).map_err(|error| {
            io_error(
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, error),
            )
        })
    }
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Output {
        target: path.display().to_string(),
        source,
    }
}

impl std::ops::Index<usize> for TraceCollection {
    type Output = Trace;
    fn index(&self, index: usize) -> &Trace {
        &self.traces[index]
    }
}

impl<'a> IntoIterator for &'a TraceCollection {
    type Item = &'a Trace;
    type IntoIter = std::slice::Iter<'a, Trace>;
    fn into_iter(self) -> Self::IntoIter {
        self.traces.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn observation(
        id: &str,
        name: &str,
        kind: ObservationType,
        second: u32,
        output: Value,
    ) -> Observation {
        let mut observation = Observation::new(id, "t");
        observation.name = Some(name.into());
        observation.r#type = kind;
        observation.start_time = Some(format!("2024-01-01T00:00:0{second}Z").parse().unwrap());
        observation.output = Some(output);
        observation
    }

    fn trace() -> Trace {
        let mut loaded = LoadedTrace::new(axion_model::Trace::new("t"));
        loaded.trace.input = Some(json!({"question": "why?"}));
        loaded.trace.tags = vec!["a".into()];
        loaded.observations = vec![
            observation(
                "3",
                "retrieve",
                ObservationType::Retriever,
                3,
                json!(["late"]),
            ),
            observation(
                "1",
                "retrieve",
                ObservationType::Retriever,
                1,
                json!(["doc-1", "doc-2"]),
            ),
            observation(
                "2",
                "Play-Analysis",
                ObservationType::Generation,
                2,
                json!({"text": "ruling"}),
            ),
        ];
        loaded.observations[2].input =
            Some(json!([{"role": "user", "content": "Analyse play 42 for team Lions"}]));
        Trace::from(loaded)
    }

    #[test]
    fn steps_group_by_normalised_name_in_start_order() {
        let trace = trace();
        let names: Vec<String> = trace
            .steps()
            .iter()
            .map(|step| step.name().to_owned())
            .collect();
        assert_eq!(names, ["retrieve", "Play-Analysis"]);
        let retrieve = trace.step("RETRIEVE").unwrap();
        assert_eq!(retrieve.count(), 2);
        assert_eq!(retrieve.first().id, "1");
        assert_eq!(retrieve.last().id, "3");
        assert!(trace.step("play_analysis").unwrap().generation().is_some());
        assert!(trace.step("playanalysis").unwrap().span().is_none());
        assert!(trace.step("missing").is_none());
    }

    #[test]
    fn path_access() {
        let trace = trace();
        assert_eq!(trace.get("input.question"), Some(&json!("why?")));
        assert_eq!(trace.get("retrieve.first.output.1"), Some(&json!("doc-2")));
        assert_eq!(
            trace.get("retrieve.output.0"),
            Some(&json!("late")),
            "the last iteration by default"
        );
        assert_eq!(trace.get("retrieve.0.output.0"), Some(&json!("doc-1")));
        assert_eq!(
            trace.get("play_analysis.generation.output.text"),
            Some(&json!("ruling"))
        );
        assert_eq!(trace.get("play_analysis.span.output.text"), None);
        assert_eq!(trace.get("nothing.output"), None);
    }

    #[test]
    fn filters_keep_scores_and_prompt_variables_are_extracted() {
        let mut with_score = trace();
        with_score.scores.push(Score::numeric("quality", 0.5));
        let mut other = trace();
        other.id = "u".into();
        other.tags.clear();
        let collection = TraceCollection::from_traces(vec![with_score, other]);
        let filtered = collection.filter_by(&TraceFilter {
            tags: vec!["a".into()],
            ..TraceFilter::default()
        });
        assert_eq!(filtered.len(), 1);
        assert_eq!(filtered[0].score("quality").unwrap().value, 0.5);
        assert_eq!(collection.filter(|t| t.id == "u").len(), 1);
        let patterns = PromptPatterns::new()
            .add(
                "play analysis",
                r"play (?P<play>\d+) for team (?P<team>\w+)",
            )
            .unwrap();
        let variables = filtered[0].prompt_variables(&patterns);
        assert_eq!(
            (variables["play"].as_str(), variables["team"].as_str()),
            ("42", "Lions")
        );
        assert!(PromptPatterns::new().add("x", "(").is_err());
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("traces.json");
        let collection = TraceCollection::from_traces(vec![trace()]);
        collection.save(&path).unwrap();
        assert_eq!(TraceCollection::load(&path).unwrap(), collection);
    }
}
