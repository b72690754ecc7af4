//! Evaluation datasets: [`DatasetItem`]s made from traces (by the docs' default extraction or a
//! closure), read and written as JSONL or CSV.
//!
//! ```
//! use axion::dataset::{Dataset, DatasetItem};
//!
//! let mut item = DatasetItem::new("q1");
//! item.query = Some("How long do refunds take?".into());
//! item.expected_output = Some(serde_json::json!("5 days"));
//! let dataset = Dataset::from_items(vec![item]);
//! let text = dataset.to_jsonl();
//! assert_eq!(Dataset::from_jsonl(&text, false).unwrap(), dataset);
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::collection::{Trace, TraceCollection};
use crate::error::{Error, Result};

/// One evaluation case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DatasetItem {
    /// Item id.
    pub id: String,
    /// The question or input text.
    #[serde(default)]
    pub query: Option<String>,
    /// What the system answered.
    #[serde(default)]
    pub actual_output: Option<Value>,
    /// What it should have answered.
    #[serde(default)]
    pub expected_output: Option<Value>,
    /// Retrieved context (documents, chunks).
    #[serde(default)]
    pub retrieved_content: Option<Vec<String>>,
    /// The trace it came from (for publishing scores back).
    #[serde(default)]
    pub trace_id: Option<String>,
    /// The observation it came from.
    #[serde(default)]
    pub observation_id: Option<String>,
    /// Free-form metadata.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Seconds the traced run took.
    #[serde(default)]
    pub latency: Option<f64>,
    /// Any other fields (kept when reading with extra keys allowed).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl DatasetItem {
    /// An empty item with an id.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            query: None,
            actual_output: None,
            expected_output: None,
            retrieved_content: None,
            trace_id: None,
            observation_id: None,
            metadata: Map::new(),
            latency: None,
            extra: BTreeMap::new(),
        }
    }

    /// The docs' default extraction: query from the trace input's `query` or `question` (a plain
    /// string input as it is), output from `response` or `answer` (a plain string as it is),
    /// retrieved content from a retriever step's output.
    pub fn from_trace(trace: &Trace) -> Self {
        let mut item = Self::new(trace.id.clone());
        item.trace_id = Some(trace.id.clone());
        item.latency = trace.latency;
        item.query = trace
            .input
            .as_ref()
            .and_then(|input| pick_text(input, &["query", "question"]));
        item.actual_output = trace.output.as_ref().map(|output| match output {
            Value::Object(map) => ["response", "answer"]
                .iter()
                .find_map(|key| map.get(*key).cloned())
                .unwrap_or_else(|| output.clone()),
            other => other.clone(),
        });
        let retrieved = trace
            .observations
            .iter()
            .filter(|o| o.r#type == axion_model::ObservationType::Retriever)
            .filter_map(|o| o.output.as_ref())
            .flat_map(|output| match output {
                Value::Array(items) => items.iter().map(text_of).collect::<Vec<_>>(),
                other => vec![text_of(other)],
            })
            .collect::<Vec<_>>();
        if !retrieved.is_empty() {
            item.retrieved_content = Some(retrieved);
        }
        if let Some(Value::Object(metadata)) = &trace.metadata {
            item.metadata = metadata.clone();
        }
        item
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Object(map) => ["text", "content", "page_content"]
            .iter()
            .find_map(|key| map.get(*key).and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| value.to_string()),
        other => other.to_string(),
    }
}

fn pick_text(value: &Value, keys: &[&str]) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Object(map) => keys.iter().find_map(|key| map.get(*key)).map(text_of),
        _ => None,
    }
}

/// A list of items.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    items: Vec<DatasetItem>,
}

const KNOWN_FIELDS: &[&str] = &[
    "id",
    "query",
    "actual_output",
    "expected_output",
    "retrieved_content",
    "trace_id",
    "observation_id",
    "metadata",
    "latency",
];

impl Dataset {
    /// From items.
    pub fn from_items(items: Vec<DatasetItem>) -> Self {
        Self { items }
    }

    /// One item per trace with [`DatasetItem::from_trace`].
    pub fn from_traces(collection: &TraceCollection) -> Self {
        Self::from_traces_with(collection, |trace| Some(DatasetItem::from_trace(trace)))
    }

    /// One item per trace for which `extract` returns one.
    pub fn from_traces_with(
        collection: &TraceCollection,
        extract: impl Fn(&Trace) -> Option<DatasetItem>,
    ) -> Self {
        Self {
            items: collection.iter().filter_map(extract).collect(),
        }
    }

    /// The items.
    pub fn items(&self) -> &[DatasetItem] {
        &self.items
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// One JSON object per line.
    pub fn to_jsonl(&self) -> String {
        self.items
            .iter()
            .map(|item| serde_json::to_string(item).unwrap_or_default() + "\n")
            .collect()
    }

    /// Reads JSONL; unknown keys are an error unless `ignore_extra_keys`.
    pub fn from_jsonl(text: &str, ignore_extra_keys: bool) -> Result<Self> {
        let mut items = Vec::new();
        for (number, line) in text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
        {
            let value: Value = serde_json::from_str(line)
                .map_err(|error| bad_input(number + 1, error.to_string()))?;
            items.push(
                item_from_value(value, ignore_extra_keys)
                    .map_err(|reason| bad_input(number + 1, reason))?,
            );
        }
        Ok(Self { items })
    }

    /// CSV with a header row; JSON-valued fields (outputs, lists, metadata) are JSON text.
    pub fn to_csv(&self) -> String {
        let mut extra_columns: Vec<String> = self
            .items
            .iter()
            .flat_map(|item| item.extra.keys().cloned())
            .collect();
        extra_columns.sort();
        extra_columns.dedup();
        let mut out = String::new();
        let header: Vec<&str> = KNOWN_FIELDS
            .iter()
            .copied()
            .chain(extra_columns.iter().map(String::as_str))
            .collect();
        write_row(&mut out, header.iter().map(|h| h.to_string()));
        for item in &self.items {
            let value = serde_json::to_value(item).unwrap_or(Value::Null);
            write_row(
                &mut out,
                header.iter().map(|column| match value.get(*column) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(text))
                        if *column != "actual_output" && *column != "expected_output" =>
                    {
                        text.clone()
                    }
                    Some(other) => other.to_string(),
                }),
            );
        }
        out
    }

    /// Reads CSV written by [`Dataset::to_csv`] (or by hand: plain text outputs are accepted).
    pub fn from_csv(text: &str, ignore_extra_keys: bool) -> Result<Self> {
        let mut rows = parse_csv(text).into_iter();
        let Some(header) = rows.next() else {
            return Ok(Self::default());
        };
        let mut items = Vec::new();
        for (number, row) in rows.enumerate() {
            let mut object = Map::new();
            for (column, cell) in header.iter().zip(row) {
                if cell.is_empty() {
                    continue;
                }
                let value = match column.as_str() {
                    "id" | "query" | "trace_id" | "observation_id" => Value::String(cell),
                    _ => serde_json::from_str(&cell).unwrap_or(Value::String(cell)),
                };
                object.insert(column.clone(), value);
            }
            items.push(
                item_from_value(Value::Object(object), ignore_extra_keys)
                    .map_err(|reason| bad_input(number + 2, reason))?,
            );
        }
        Ok(Self { items })
    }

    /// Writes JSONL or CSV, by the file's extension.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let text = match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => self.to_csv(),
            _ => self.to_jsonl(),
        };
        std::fs::write(path, text).map_err(|source| Error::Output {
            target: path.display().to_string(),
            source,
        })
    }

    /// Reads JSONL or CSV, by the file's extension.
    pub fn load(path: impl AsRef<Path>, ignore_extra_keys: bool) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Output {
            target: path.display().to_string(),
            source,
        })?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => Self::from_csv(&text, ignore_extra_keys),
            _ => Self::from_jsonl(&text, ignore_extra_keys),
        }
    }
}

fn bad_input(line: usize, reason: String) -> Error {
    Error::InvalidSetting {
        setting: format!("dataset line {line}"),
        value: String::new(),
        reason,
    }
}

fn item_from_value(
    value: Value,
    ignore_extra_keys: bool,
) -> std::result::Result<DatasetItem, String> {
    let unknown: Vec<String> = value
        .as_object()
        .ok_or("each item must be a JSON object")?
        .keys()
        .filter(|key| !KNOWN_FIELDS.contains(&key.as_str()))
        .cloned()
        .collect();
    if !unknown.is_empty() && !ignore_extra_keys {
        return Err(format!(
            "unknown fields {unknown:?} (read with ignore_extra_keys to keep them)"
        ));
    }
    serde_json::from_value(value).map_err(|error| error.to_string())
}

fn write_row(out: &mut String, cells: impl Iterator<Item = String>) {
    let cells: Vec<String> = cells
        .map(|cell| {
            if cell.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", cell.replace('"', "\"\""))
            } else {
                cell
            }
        })
        .collect();
    out.push_str(&cells.join(","));
    out.push('\n');
}

/// RFC 4180 CSV: quoted fields may hold commas, quotes (doubled) and newlines.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    if !cell.is_empty() || !row.is_empty() {
        row.push(cell);
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Dataset {
        let mut item = DatasetItem::new("1");
        item.query = Some("a, \"quoted\"\nquestion".into());
        item.actual_output = Some(json!({"text": "x"}));
        item.expected_output = Some(json!("plain"));
        item.retrieved_content = Some(vec!["doc 1".into(), "doc,2".into()]);
        item.trace_id = Some("t1".into());
        item.latency = Some(1.5);
        item.metadata.insert("k".into(), json!(1));
        Dataset::from_items(vec![item, DatasetItem::new("2")])
    }

    #[test]
    fn jsonl_and_csv_round_trip() {
        let dataset = sample();
        assert_eq!(
            Dataset::from_jsonl(&dataset.to_jsonl(), false).unwrap(),
            dataset
        );
        assert_eq!(
            Dataset::from_csv(&dataset.to_csv(), false).unwrap(),
            dataset
        );
    }

    #[test]
    fn extra_keys_need_permission() {
        let text = "{\"id\": \"1\", \"difficulty\": \"hard\"}\n";
        assert!(Dataset::from_jsonl(text, false)
            .unwrap_err()
            .to_string()
            .contains("difficulty"));
        let dataset = Dataset::from_jsonl(text, true).unwrap();
        assert_eq!(dataset.items()[0].extra["difficulty"], "hard");
        let csv = Dataset::from_jsonl(text, true).unwrap().to_csv();
        assert!(Dataset::from_csv(&csv, false).is_err());
        assert_eq!(
            Dataset::from_csv(&csv, true).unwrap().items()[0].extra["difficulty"],
            "hard"
        );
    }

    #[test]
    fn default_extraction_from_a_trace() {
        let mut loaded = crate::load::LoadedTrace::new(axion_model::Trace::new("t9"));
        loaded.trace.input = Some(json!({"question": "refund?"}));
        loaded.trace.output = Some(json!({"answer": "5 days", "confidence": 0.9}));
        let mut retriever = axion_model::Observation::new("o", "t9");
        retriever.r#type = axion_model::ObservationType::Retriever;
        retriever.output = Some(json!([{"text": "Refunds take 5 days"}, "policy.md"]));
        loaded.observations.push(retriever);
        let collection = TraceCollection::from_loaded(vec![loaded]);
        let dataset = Dataset::from_traces(&collection);
        let item = &dataset.items()[0];
        assert_eq!(item.query.as_deref(), Some("refund?"));
        assert_eq!(item.actual_output, Some(json!("5 days")));
        assert_eq!(item.trace_id.as_deref(), Some("t9"));
        assert_eq!(
            item.retrieved_content.as_deref(),
            Some(&["Refunds take 5 days".to_owned(), "policy.md".to_owned()][..])
        );
        let custom = Dataset::from_traces_with(&collection, |trace| {
            let mut item = DatasetItem::new(format!("custom-{}", trace.id));
            item.query = trace
                .get("input.question")
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            Some(item)
        });
        assert_eq!(custom.items()[0].id, "custom-t9");
    }
}
