//! Langfuse's metrics query (`GET /api/public/v2/metrics?query=…`, and the legacy
//! `/api/public/metrics`): a view, dimensions to group by, measures with aggregations,
//! filters, an optional time dimension, an order and a row limit. Parsed and checked here;
//! a store feeds the matching rows to an [`Aggregator`], which groups them and computes every
//! aggregation (percentiles and histograms included) the same way for any store.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use serde_json::{json, Map, Value};

use super::filter::{self, Condition};
use super::Direction;

/// What a metrics query counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsView {
    /// Traces, with their observations' and scores' aggregates (the legacy endpoint only).
    Traces,
    /// Spans, generations, events…
    Observations,
    /// Numeric and boolean scores (`value`).
    ScoresNumeric,
    /// Boolean scores only (`value` is 0 or 1, `booleanValue` a dimension).
    ScoresBoolean,
    /// Categorical scores (`stringValue`).
    ScoresCategorical,
}

impl MetricsView {
    fn parse(name: &str, legacy: bool) -> Result<Self, String> {
        Ok(match name {
            "traces" if legacy => Self::Traces,
            "observations" => Self::Observations,
            "scores-numeric" => Self::ScoresNumeric,
            "scores-boolean" => Self::ScoresBoolean,
            "scores-categorical" => Self::ScoresCategorical,
            "traces" => {
                return Err(
                    "view \"traces\" is not supported by /v2/metrics: query the \"observations\" view (traceName, tags and release are its dimensions), or the legacy /api/public/metrics"
                        .into(),
                )
            }
            other => return Err(format!("view {other:?}: expected observations, scores-numeric, scores-boolean or scores-categorical")),
        })
    }

    /// The dimensions a query may group by.
    pub fn dimensions(self) -> &'static [&'static str] {
        match self {
            Self::Traces => &[
                "name",
                "userId",
                "sessionId",
                "release",
                "version",
                "environment",
                "tags",
                "timestampMonth",
                "timestampDay",
            ],
            Self::Observations => &[
                "environment",
                "type",
                "name",
                "level",
                "version",
                "tags",
                "release",
                "traceName",
                "traceRelease",
                "traceVersion",
                "providedModelName",
                "promptName",
                "promptVersion",
                "isRootObservation",
                "startTimeMonth",
            ],
            Self::ScoresNumeric | Self::ScoresBoolean | Self::ScoresCategorical => &[
                "environment",
                "name",
                "source",
                "dataType",
                "configId",
                "timestampMonth",
                "timestampDay",
                "value",
                "stringValue",
                "booleanValue",
                "traceName",
                "tags",
                "traceRelease",
                "traceVersion",
                "observationName",
                "observationModelName",
                "observationPromptName",
                "observationPromptVersion",
            ],
        }
    }

    /// The measures a query may aggregate.
    pub fn measures(self) -> &'static [&'static str] {
        match self {
            Self::Traces => &[
                "count",
                "observationsCount",
                "scoresCount",
                "latency",
                "totalTokens",
                "totalCost",
            ],
            Self::Observations => &[
                "count",
                "latency",
                "streamingLatency",
                "inputTokens",
                "outputTokens",
                "totalTokens",
                "outputTokensPerSecond",
                "tokensPerSecond",
                "inputCost",
                "outputCost",
                "totalCost",
                "timeToFirstToken",
                "countScores",
            ],
            Self::ScoresNumeric | Self::ScoresBoolean => &["count", "value"],
            Self::ScoresCategorical => &["count"],
        }
    }

    /// Columns that filters may test: the dimensions (but those derived from the time, which
    /// the range filters already), the ids that are too many to group by, and the measures.
    fn filter_columns(self) -> Vec<&'static str> {
        let (derived, extra): (&[&str], &[&str]) = match self {
            // The trace list's filter columns, aggregates over observations and scores included.
            Self::Traces => return filter::TRACE_COLUMNS.to_vec(),
            Self::Observations => (
                &["startTimeMonth"],
                &[
                    "startTime",
                    "id",
                    "traceId",
                    "userId",
                    "sessionId",
                    "parentObservationId",
                    "metadata",
                    "latency",
                    "timeToFirstToken",
                    "inputTokens",
                    "outputTokens",
                    "totalTokens",
                    "inputCost",
                    "outputCost",
                    "totalCost",
                    "statusMessage",
                ],
            ),
            Self::ScoresNumeric | Self::ScoresBoolean | Self::ScoresCategorical => (
                &[
                    "timestampMonth",
                    "timestampDay",
                    "booleanValue",
                    "observationPromptName",
                    "observationPromptVersion",
                ],
                &[
                    "timestamp",
                    "id",
                    "traceId",
                    "userId",
                    "sessionId",
                    "observationId",
                ],
            ),
        };
        self.dimensions()
            .iter()
            .filter(|name| !derived.contains(name))
            .chain(extra)
            .copied()
            .collect()
    }
}

/// Dimensions with a value per row or nearly so: filters only, as in Langfuse.
const HIGH_CARDINALITY: &[&str] = &[
    "id",
    "traceId",
    "userId",
    "sessionId",
    "parentObservationId",
    "observationId",
];

/// How a measure's values are combined.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aggregation {
    /// How many values.
    Count,
    /// Their sum.
    Sum,
    /// Their mean.
    Avg,
    /// The smallest.
    Min,
    /// The largest.
    Max,
    /// The value below which this fraction of them lies (p50 … p99).
    Percentile(f64),
    /// `[lower, upper, count]` for each of `bins` equal-width bins.
    Histogram,
}

impl Aggregation {
    fn parse(name: &str) -> Result<Self, String> {
        Ok(match name {
            "count" => Self::Count,
            "sum" => Self::Sum,
            "avg" => Self::Avg,
            "min" => Self::Min,
            "max" => Self::Max,
            "p50" => Self::Percentile(0.50),
            "p75" => Self::Percentile(0.75),
            "p90" => Self::Percentile(0.90),
            "p95" => Self::Percentile(0.95),
            "p99" => Self::Percentile(0.99),
            "histogram" => Self::Histogram,
            other => return Err(format!(
                "aggregation {other:?}: expected sum, avg, count, max, min, p50, p75, p90, p95, p99 or histogram"
            )),
        })
    }

    fn keeps_values(self) -> bool {
        matches!(self, Self::Percentile(_) | Self::Histogram)
    }
}

/// One requested metric; its column in the answer is `{aggregation}_{measure}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The measure (`count`, `latency`, `totalCost`, …).
    pub measure: String,
    /// How its values are combined.
    pub aggregation: Aggregation,
    /// `{aggregation}_{measure}`, the answer's key.
    pub alias: String,
}

/// Time buckets of the time dimension (UTC; weeks start on Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// Minutes.
    Minute,
    /// Hours.
    Hour,
    /// Days.
    Day,
    /// Weeks from Monday.
    Week,
    /// Calendar months.
    Month,
}

impl Granularity {
    fn parse(name: &str, from: i64, to: i64) -> Result<Self, String> {
        Ok(match name {
            "minute" => Self::Minute,
            "hour" => Self::Hour,
            "day" => Self::Day,
            "week" => Self::Week,
            "month" => Self::Month,
            // About 50 buckets over the range, as Langfuse's `auto`.
            "auto" => {
                let range = to.saturating_sub(from);
                let minute = 60_000_000i64;
                [
                    (Self::Minute, minute),
                    (Self::Hour, 60 * minute),
                    (Self::Day, 1440 * minute),
                    (Self::Week, 7 * 1440 * minute),
                ]
                .into_iter()
                .find(|(_, size)| range / size <= 50)
                .map_or(Self::Month, |(granularity, _)| granularity)
            }
            other => {
                return Err(format!(
                    "timeDimension.granularity {other:?}: expected auto, minute, hour, day, week or month"
                ))
            }
        })
    }

    /// The start of the bucket holding `micros`.
    pub fn bucket(self, micros: i64) -> DateTime<Utc> {
        let time = DateTime::from_timestamp_micros(micros).unwrap_or_default();
        let day = time.date_naive();
        let midnight =
            |date: chrono::NaiveDate| Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN));
        match self {
            Self::Minute => {
                DateTime::from_timestamp(micros.div_euclid(60_000_000) * 60, 0).unwrap_or_default()
            }
            Self::Hour => DateTime::from_timestamp(micros.div_euclid(3_600_000_000) * 3600, 0)
                .unwrap_or_default(),
            Self::Day => midnight(day),
            Self::Week => {
                midnight(day - Duration::days(i64::from(day.weekday().num_days_from_monday())))
            }
            Self::Month => midnight(day.with_day(1).unwrap_or(day)),
        }
    }
}

/// A checked metrics query.
#[derive(Debug, Clone)]
pub struct MetricsQuery {
    /// What is counted.
    pub view: MetricsView,
    /// Dimensions to group by, in the answer's order.
    pub dimensions: Vec<String>,
    /// Metrics to compute per group.
    pub metrics: Vec<Metric>,
    /// Filters, all of which must hold (columns as the view names them).
    pub conditions: Vec<Condition>,
    /// Groups by time too when set.
    pub granularity: Option<Granularity>,
    /// Start of the range (µs, inclusive).
    pub from: i64,
    /// End of the range (µs, exclusive).
    pub to: i64,
    /// The answer's order: dimension names, metric aliases or `time_dimension`.
    pub order_by: Vec<(String, Direction)>,
    /// Rows at most (1–1000, 100 by default).
    pub row_limit: usize,
    /// Bins of a histogram (1–100, 10 by default).
    pub bins: usize,
}

/// Parses the `query` parameter of `/v2/metrics`; errors name the field and the problem (→ 400).
pub fn parse(text: &str) -> Result<MetricsQuery, String> {
    parse_for(text, false)
}

/// Parses the `query` parameter of the legacy `/metrics`, which also has the traces view.
pub fn parse_legacy(text: &str) -> Result<MetricsQuery, String> {
    parse_for(text, true)
}

fn parse_for(text: &str, legacy: bool) -> Result<MetricsQuery, String> {
    let query: Value =
        serde_json::from_str(text).map_err(|error| format!("query: not JSON ({error})"))?;
    let Value::Object(query) = query else {
        return Err("query: expected a JSON object".into());
    };
    let text_field = |key: &str| query.get(key).and_then(Value::as_str);
    let view = MetricsView::parse(text_field("view").ok_or("query.view is required")?, legacy)?;
    let time = |key: &str| -> Result<i64, String> {
        let text = text_field(key).ok_or_else(|| format!("query.{key} is required"))?;
        crate::ingest::parse_time_text(text, &format!("query.{key}"))
            .map(|time| time.timestamp_micros())
            .map_err(|error| error.error)
    };
    let (from, to) = (time("fromTimestamp")?, time("toTimestamp")?);
    if to <= from {
        return Err("query.toTimestamp must be after fromTimestamp".into());
    }
    let list = |key: &str| -> Result<Vec<Map<String, Value>>, String> {
        match query.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| match item {
                    Value::Object(object) => Ok(object.clone()),
                    _ => Err(format!("query.{key}[{index}]: expected an object")),
                })
                .collect(),
            Some(_) => Err(format!("query.{key}: expected an array")),
        }
    };
    let field = |object: &Map<String, Value>, key: &str, at: String| {
        object
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("{at}.{key}: expected a string"))
    };

    let mut dimensions = Vec::new();
    for (index, dimension) in list("dimensions")?.iter().enumerate() {
        let name = field(dimension, "field", format!("query.dimensions[{index}]"))?;
        if HIGH_CARDINALITY.contains(&name.as_str()) && !view.dimensions().contains(&name.as_str())
        {
            return Err(format!(
                "query.dimensions[{index}]: {name:?} has too many values to group by; filter on it instead"
            ));
        }
        if !view.dimensions().contains(&name.as_str()) {
            return Err(format!(
                "query.dimensions[{index}]: {name:?} is not a dimension of this view (one of: {})",
                view.dimensions().join(", ")
            ));
        }
        dimensions.push(name);
    }

    let mut metrics = Vec::new();
    for (index, metric) in list("metrics")?.iter().enumerate() {
        let at = format!("query.metrics[{index}]");
        let measure = field(metric, "measure", at.clone())?;
        if !view.measures().contains(&measure.as_str()) {
            return Err(format!(
                "{at}: {measure:?} is not a measure of this view (one of: {})",
                view.measures().join(", ")
            ));
        }
        let aggregation_name = field(metric, "aggregation", at.clone())?;
        let aggregation =
            Aggregation::parse(&aggregation_name).map_err(|error| format!("{at}: {error}"))?;
        metrics.push(Metric {
            alias: format!("{aggregation_name}_{measure}"),
            measure,
            aggregation,
        });
    }
    if metrics.is_empty() {
        return Err("query.metrics: at least one metric is required".into());
    }

    let conditions = match query.get("filters") {
        None | Some(Value::Null) => Vec::new(),
        Some(filters) => filter::parse_value(filters, &view.filter_columns())
            .map_err(|error| format!("query.{error}"))?,
    };

    let granularity = match query.get("timeDimension") {
        None | Some(Value::Null) => None,
        Some(Value::Object(time)) => Some(Granularity::parse(
            time.get("granularity")
                .and_then(Value::as_str)
                .unwrap_or("auto"),
            from,
            to,
        )?),
        Some(_) => return Err("query.timeDimension: expected an object".into()),
    };

    let mut order_by = Vec::new();
    for (index, order) in list("orderBy")?.iter().enumerate() {
        let at = format!("query.orderBy[{index}]");
        let name = field(order, "field", at.clone())?;
        let known = dimensions.contains(&name)
            || metrics
                .iter()
                .any(|metric| metric.alias == name || metric.measure == name)
            || (name == "time_dimension" && granularity.is_some());
        if !known {
            return Err(format!(
                "{at}.field: {name:?} is neither a requested dimension nor a metric"
            ));
        }
        let direction = match order
            .get("direction")
            .and_then(Value::as_str)
            .unwrap_or("asc")
        {
            "asc" | "ASC" => Direction::Asc,
            "desc" | "DESC" => Direction::Desc,
            other => {
                return Err(format!(
                    "{at}.direction: expected asc or desc, got {other:?}"
                ))
            }
        };
        order_by.push((name, direction));
    }

    let config = query.get("config").and_then(Value::as_object);
    let bounded = |key: &str, default: usize, max: usize| -> Result<usize, String> {
        match config.and_then(|config| config.get(key)) {
            None | Some(Value::Null) => Ok(default),
            Some(value) => value
                .as_u64()
                .filter(|n| (1..=max as u64).contains(n))
                .map(|n| n as usize)
                .ok_or_else(|| {
                    format!("query.config.{key}: expected a whole number from 1 to {max}")
                }),
        }
    };
    Ok(MetricsQuery {
        view,
        dimensions,
        metrics,
        conditions,
        granularity,
        from,
        to,
        order_by,
        row_limit: bounded("row_limit", 100, 1000)?,
        bins: bounded("bins", 10, 100)?,
    })
}

/// One matching row as a store reads it: its dimensions' values (a `tags` dimension as the
/// list of the trace's tags: the row counts once under each), its time, and its measures' values.
#[derive(Debug, Clone, Default)]
pub struct MetricRow {
    /// In the order of [`MetricsQuery::dimensions`].
    pub dimensions: Vec<Value>,
    /// µs since the epoch (start time, or the score's timestamp).
    pub time: i64,
    /// In the order of [`MetricsQuery::metrics`]; `None` where the row has no value (an
    /// unfinished span's latency).
    pub measures: Vec<Option<f64>>,
}

#[derive(Default)]
struct Accumulator {
    count: u64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
    values: Vec<f64>,
}

/// A group's key: its dimensions' values (as JSON text) and its time bucket.
type GroupKey = (Vec<String>, Option<i64>);

/// A group's dimension values, and an accumulator per metric.
type Group = (Vec<Value>, Vec<Accumulator>);

/// Groups rows and computes each group's metrics.
pub struct Aggregator<'q> {
    query: &'q MetricsQuery,
    keep_values: Vec<bool>,
    groups: HashMap<GroupKey, Group>,
}

impl<'q> Aggregator<'q> {
    /// An empty aggregation for `query`.
    pub fn new(query: &'q MetricsQuery) -> Self {
        Self {
            query,
            keep_values: query
                .metrics
                .iter()
                .map(|metric| metric.aggregation.keeps_values())
                .collect(),
            groups: HashMap::new(),
        }
    }

    /// Adds one row (several groups when it has several tags).
    pub fn add(&mut self, row: MetricRow) {
        let bucket = self
            .query
            .granularity
            .map(|granularity| granularity.bucket(row.time).timestamp_micros());
        let tags_at = self.query.dimensions.iter().position(|name| name == "tags");
        let mut dimension_sets = vec![row.dimensions];
        if let Some(at) = tags_at {
            let values = std::mem::take(&mut dimension_sets);
            for dimensions in values {
                let tags = match &dimensions[at] {
                    Value::Array(tags) if !tags.is_empty() => tags.clone(),
                    _ => vec![Value::Null],
                };
                for tag in tags {
                    let mut one = dimensions.clone();
                    one[at] = tag;
                    dimension_sets.push(one);
                }
            }
        }
        for dimensions in dimension_sets {
            let key = (dimensions.iter().map(Value::to_string).collect(), bucket);
            let metric_count = self.query.metrics.len();
            let (_, accumulators) = self.groups.entry(key).or_insert_with(|| {
                (
                    dimensions,
                    (0..metric_count).map(|_| Accumulator::default()).collect(),
                )
            });
            for ((accumulator, value), keep) in accumulators
                .iter_mut()
                .zip(&row.measures)
                .zip(&self.keep_values)
            {
                let Some(value) = *value else { continue };
                if !value.is_finite() {
                    continue;
                }
                accumulator.count += 1;
                accumulator.sum += value;
                accumulator.min = Some(accumulator.min.map_or(value, |min| min.min(value)));
                accumulator.max = Some(accumulator.max.map_or(value, |max| max.max(value)));
                if *keep {
                    accumulator.values.push(value);
                }
            }
        }
    }

    /// The answer's rows: dimensions by name, `time_dimension` (ISO) when grouped by time, and
    /// each metric under its alias; ordered and cut to the row limit.
    pub fn finish(self) -> Vec<Map<String, Value>> {
        let query = self.query;
        let mut rows: Vec<(Map<String, Value>, Option<i64>)> = self
            .groups
            .into_iter()
            .map(|((_, bucket), (dimensions, accumulators))| {
                let mut row = Map::new();
                for (name, value) in query.dimensions.iter().zip(dimensions) {
                    row.insert(name.clone(), value);
                }
                if let Some(bucket) = bucket {
                    row.insert("time_dimension".into(), json!(crate::api::iso(bucket)));
                }
                for (metric, accumulator) in query.metrics.iter().zip(accumulators) {
                    row.insert(
                        metric.alias.clone(),
                        value_of(metric, accumulator, query.bins),
                    );
                }
                (row, bucket)
            })
            .collect();
        let order: Vec<(String, Direction)> = if query.order_by.is_empty() {
            // By time, then by the dimensions: a stable answer for charts and tests.
            std::iter::once(("time_dimension".to_owned(), Direction::Asc))
                .chain(
                    query
                        .dimensions
                        .iter()
                        .map(|name| (name.clone(), Direction::Asc)),
                )
                .collect()
        } else {
            query
                .order_by
                .iter()
                .map(|(name, direction)| {
                    let alias = query
                        .metrics
                        .iter()
                        .find(|metric| metric.measure == *name)
                        .map_or_else(|| name.clone(), |metric| metric.alias.clone());
                    (alias, *direction)
                })
                .collect()
        };
        rows.sort_by(|(a, a_time), (b, b_time)| {
            for (name, direction) in &order {
                let ordering = if name == "time_dimension" {
                    a_time.cmp(b_time)
                } else {
                    compare_values(a.get(name), b.get(name))
                };
                let ordering = match direction {
                    Direction::Asc => ordering,
                    Direction::Desc => ordering.reverse(),
                };
                if ordering.is_ne() {
                    return ordering;
                }
            }
            std::cmp::Ordering::Equal
        });
        rows.truncate(query.row_limit);
        rows.into_iter().map(|(row, _)| row).collect()
    }
}

fn value_of(metric: &Metric, mut accumulator: Accumulator, bins: usize) -> Value {
    let count = accumulator.count;
    match metric.aggregation {
        Aggregation::Count => json!(count),
        Aggregation::Sum => json!(accumulator.sum),
        Aggregation::Avg if count > 0 => json!(accumulator.sum / count as f64),
        Aggregation::Min => json!(accumulator.min),
        Aggregation::Max => json!(accumulator.max),
        Aggregation::Percentile(fraction) if count > 0 => {
            accumulator.values.sort_by(f64::total_cmp);
            // Linear interpolation between the closest ranks.
            let rank = fraction * (accumulator.values.len() - 1) as f64;
            let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
            let (a, b) = (accumulator.values[low], accumulator.values[high]);
            json!(a + (b - a) * (rank - low as f64))
        }
        Aggregation::Histogram if count > 0 => {
            let (min, max) = (
                accumulator.min.unwrap_or(0.0),
                accumulator.max.unwrap_or(0.0),
            );
            let width = (max - min) / bins as f64;
            let mut heights = vec![0u64; bins];
            for value in &accumulator.values {
                let index = if width > 0.0 {
                    ((value - min) / width) as usize
                } else {
                    0
                };
                heights[index.min(bins - 1)] += 1;
            }
            json!(heights
                .iter()
                .enumerate()
                .map(|(index, height)| json!([
                    min + width * index as f64,
                    min + width * (index + 1) as f64,
                    height
                ]))
                .collect::<Vec<_>>())
        }
        Aggregation::Avg | Aggregation::Percentile(_) => Value::Null,
        Aggregation::Histogram => json!([]),
    }
}

/// Numbers by value, everything else by its text; nulls first.
fn compare_values(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    let key = |value: Option<&Value>| match value {
        None | Some(Value::Null) => (0, 0.0, String::new()),
        Some(Value::Number(number)) => (1, number.as_f64().unwrap_or(0.0), String::new()),
        Some(Value::String(text)) => (2, 0.0, text.clone()),
        Some(other) => (2, 0.0, other.to_string()),
    };
    let (a, b) = (key(a), key(b));
    a.0.cmp(&b.0)
        .then(a.1.total_cmp(&b.1))
        .then_with(|| a.2.cmp(&b.2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql;

    fn query(text: &str) -> MetricsQuery {
        parse(text).unwrap()
    }

    const RANGE: &str =
        r#""fromTimestamp": "2026-01-01T00:00:00Z", "toTimestamp": "2026-02-01T00:00:00Z""#;

    #[test]
    fn errors_name_the_field_and_the_problem() {
        let error = |body: &str| parse(&format!("{{{body}, {RANGE}}}")).unwrap_err();
        assert!(error(
            r#""view": "traces", "metrics": [{"measure": "count", "aggregation": "count"}]"#
        )
        .contains("observations"));
        assert!(error(r#""view": "observations", "metrics": []"#).contains("at least one metric"));
        assert!(error(
            r#""view": "observations", "metrics": [{"measure": "value", "aggregation": "avg"}]"#
        )
        .contains("not a measure of this view"));
        assert!(error(
            r#""view": "observations", "metrics": [{"measure": "count", "aggregation": "median"}]"#
        )
        .contains("metrics[0]: aggregation \"median\""));
        assert!(error(r#""view": "observations", "dimensions": [{"field": "userId"}], "metrics": [{"measure": "count", "aggregation": "count"}]"#)
            .contains("filter on it instead"));
        assert!(error(r#""view": "observations", "metrics": [{"measure": "count", "aggregation": "count"}], "filters": [{"column": "nope", "operator": "=", "value": "x", "type": "string"}]"#)
            .contains("query.filter[0]: column \"nope\""));
        assert!(parse(
            r#"{"view": "observations", "metrics": [{"measure": "count", "aggregation": "count"}]}"#
        )
        .unwrap_err()
        .contains("fromTimestamp is required"));
    }

    #[test]
    fn the_traces_view_is_the_legacy_endpoint_s_alone() {
        let text = format!(
            r#"{{"view": "traces", "dimensions": [{{"field": "userId"}}], "metrics": [{{"measure": "totalCost", "aggregation": "sum"}}], {RANGE}}}"#
        );
        assert!(parse(&text).unwrap_err().contains("/api/public/metrics"));
        let query = parse_legacy(&text).unwrap();
        assert_eq!(
            (query.view, query.dimensions.as_slice()),
            (MetricsView::Traces, ["userId".to_owned()].as_slice())
        );
    }

    #[test]
    fn groups_percentiles_histograms_and_time_buckets() {
        let q = query(&format!(
            r#"{{"view": "observations", "dimensions": [{{"field": "name"}}],
                "metrics": [{{"measure": "count", "aggregation": "count"}}, {{"measure": "latency", "aggregation": "p50"}},
                            {{"measure": "latency", "aggregation": "histogram"}}, {{"measure": "totalCost", "aggregation": "sum"}}],
                "timeDimension": {{"granularity": "day"}}, "config": {{"bins": 2}}, {RANGE}}}"#
        ));
        let day = 86_400_000_000i64;
        let start = DateTime::parse_from_rfc3339("2026-01-05T10:00:00Z")
            .unwrap()
            .timestamp_micros();
        let mut aggregator = Aggregator::new(&q);
        for (name, offset, latency, cost) in [
            ("a", 0, Some(10.0), Some(1.0)),
            ("a", 1, Some(20.0), Some(2.0)),
            ("a", 2, Some(40.0), None),
            ("a", day, None, Some(5.0)),
            ("b", 3, Some(7.0), Some(0.5)),
        ] {
            aggregator.add(MetricRow {
                dimensions: vec![json!(name)],
                time: start + offset,
                measures: vec![Some(1.0), latency, latency, cost],
            });
        }
        let rows = aggregator.finish();
        assert_eq!(rows.len(), 3, "{rows:?}");
        let first = &rows[0];
        assert_eq!(first["time_dimension"], "2026-01-05T00:00:00.000Z");
        assert_eq!(
            (first["name"].as_str(), first["count_count"].as_u64()),
            (Some("a"), Some(3))
        );
        assert_eq!(first["p50_latency"], json!(20.0));
        assert_eq!(
            first["histogram_latency"],
            json!([[10.0, 25.0, 2], [25.0, 40.0, 1]])
        );
        assert_eq!(first["sum_totalCost"], json!(3.0));
        assert_eq!(rows[1]["name"], "b");
        assert_eq!(
            (rows[2]["name"].as_str(), rows[2]["time_dimension"].as_str()),
            (Some("a"), Some("2026-01-06T00:00:00.000Z"))
        );
        assert_eq!(rows[2]["p50_latency"], Value::Null, "no latency that day");
    }

    #[test]
    fn tags_count_a_row_under_each_tag_and_order_and_limit_apply() {
        let q = query(&format!(
            r#"{{"view": "observations", "dimensions": [{{"field": "tags"}}],
                "metrics": [{{"measure": "count", "aggregation": "count"}}],
                "orderBy": [{{"field": "count_count", "direction": "desc"}}], "config": {{"row_limit": 2}}, {RANGE}}}"#
        ));
        let mut aggregator = Aggregator::new(&q);
        for tags in [
            json!(["x", "y"]),
            json!(["x"]),
            json!([]),
            json!(["z", "x"]),
        ] {
            aggregator.add(MetricRow {
                dimensions: vec![tags],
                time: 0,
                measures: vec![Some(1.0)],
            });
        }
        let rows = aggregator.finish();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0]["tags"].as_str(), rows[0]["count_count"].as_u64()),
            (Some("x"), Some(3))
        );
        assert_eq!(rows[1]["count_count"], 1);
    }

    #[test]
    fn every_filter_column_of_every_view_translates() {
        for view in [
            MetricsView::Traces,
            MetricsView::Observations,
            MetricsView::ScoresNumeric,
            MetricsView::ScoresBoolean,
            MetricsView::ScoresCategorical,
        ] {
            for column in view.filter_columns() {
                let conditions = filter::parse_value(
                    &json!([{"column": column, "type": "null", "operator": "is not null", "key": "k"}]),
                    &view.filter_columns(),
                )
                .unwrap();
                for dialect in [sql::Dialect::Sqlite, sql::Dialect::Postgres] {
                    let translated = sql::metrics_conditions(dialect, view, &conditions);
                    assert_eq!(translated.len(), 1, "{view:?} {column}");
                }
            }
        }
    }

    #[test]
    fn week_and_month_buckets_and_auto_granularity() {
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .timestamp_micros()
        };
        assert_eq!(
            Granularity::Week
                .bucket(at("2026-01-08T12:00:00Z"))
                .to_rfc3339(),
            "2026-01-05T00:00:00+00:00"
        );
        assert_eq!(
            Granularity::Month
                .bucket(at("2026-03-31T23:59:59Z"))
                .to_rfc3339(),
            "2026-03-01T00:00:00+00:00"
        );
        assert_eq!(
            Granularity::Hour
                .bucket(at("2026-03-31T23:59:59Z"))
                .to_rfc3339(),
            "2026-03-31T23:00:00+00:00"
        );
        let auto = |from: &str, to: &str| Granularity::parse("auto", at(from), at(to)).unwrap();
        assert_eq!(
            auto("2026-01-01T00:00:00Z", "2026-01-01T00:30:00Z"),
            Granularity::Minute
        );
        assert_eq!(
            auto("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
            Granularity::Hour
        );
        assert_eq!(
            auto("2026-01-01T00:00:00Z", "2026-01-31T00:00:00Z"),
            Granularity::Day
        );
        assert_eq!(
            auto("2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z"),
            Granularity::Week
        );
        assert_eq!(
            auto("2020-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
            Granularity::Month
        );
    }
}
