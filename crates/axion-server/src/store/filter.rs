//! Langfuse's structured `filter` query parameter: a JSON array of
//! `{type, column, operator, value, key?}` conditions, all of which must hold. Parsed and
//! checked here (type, operator and value shape; the column against the endpoint's list), so a
//! store only translates valid conditions.

use chrono::DateTime;
use serde_json::Value;

/// A comparison of numbers or times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `=`
    Equal,
    /// `>`
    Greater,
    /// `<`
    Less,
    /// `>=`
    GreaterOrEqual,
    /// `<=`
    LessOrEqual,
}

impl Comparison {
    /// The SQL operator.
    pub fn sql(self) -> &'static str {
        match self {
            Self::Equal => "=",
            Self::Greater => ">",
            Self::Less => "<",
            Self::GreaterOrEqual => ">=",
            Self::LessOrEqual => "<=",
        }
    }

    fn parse(operator: &str, allow_equal: bool) -> Option<Self> {
        Some(match operator {
            "=" if allow_equal => Self::Equal,
            ">" => Self::Greater,
            "<" => Self::Less,
            ">=" => Self::GreaterOrEqual,
            "<=" => Self::LessOrEqual,
            _ => return None,
        })
    }
}

/// A test of a text value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextTest {
    /// `=`
    Equals,
    /// `contains`
    Contains,
    /// `does not contain`
    DoesNotContain,
    /// `starts with`
    StartsWith,
    /// `ends with`
    EndsWith,
}

impl TextTest {
    fn parse(operator: &str) -> Option<Self> {
        Some(match operator {
            "=" => Self::Equals,
            "contains" => Self::Contains,
            "does not contain" => Self::DoesNotContain,
            "starts with" => Self::StartsWith,
            "ends with" => Self::EndsWith,
            _ => return None,
        })
    }
}

/// How a set of options must meet a value (or a list of values, for arrays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTest {
    /// `any of`
    AnyOf,
    /// `none of`
    NoneOf,
    /// `all of` (arrays only)
    AllOf,
}

/// What a condition tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// `datetime`: microseconds since the epoch.
    Time(Comparison, i64),
    /// `string`, or `stringObject` with a key.
    Text(TextTest, String),
    /// `number`, or `numberObject` with a key.
    Number(Comparison, f64),
    /// `stringOptions`/`categoryOptions`, or `arrayOptions` for list columns.
    Set(SetTest, Vec<String>),
    /// `boolean` or `booleanObject`: equal (`=`) or not (`<>`) to the value.
    Boolean(bool, bool),
    /// `null`: `is null` (true) or `is not null` (false).
    Null(bool),
}

/// One valid condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The column, as Langfuse names it (`userId`, `tags`, `metadata`, `totalCost`, …).
    pub column: String,
    /// The key inside an object column (`metadata`, score names).
    pub key: Option<String>,
    /// The test.
    pub test: Test,
}

/// Parses the `filter` parameter. `columns` lists the columns the endpoint knows; anything else
/// is an error naming the problem (→ 400).
pub fn parse(text: &str, columns: &[&str]) -> Result<Vec<Condition>, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|error| format!("filter: not JSON ({error})"))?;
    parse_value(&value, columns)
}

/// [`parse`] for conditions already read as JSON (a metrics query's `filters`).
pub fn parse_value(value: &Value, columns: &[&str]) -> Result<Vec<Condition>, String> {
    let Value::Array(items) = value else {
        return Err("filter: expected a JSON array of conditions".into());
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            condition(item, columns).map_err(|error| format!("filter[{index}]: {error}"))
        })
        .collect()
}

fn condition(item: &Value, columns: &[&str]) -> Result<Condition, String> {
    let text_field = |name: &str| -> Result<&str, String> {
        item.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{name}: expected a string"))
    };
    let kind = text_field("type")?;
    let column = text_field("column")?;
    let operator = text_field("operator")?;
    if !columns.contains(&column) {
        return Err(format!(
            "column {column:?} is not filterable here; use one of {}",
            columns.join(", ")
        ));
    }
    let key = match item.get("key") {
        None | Some(Value::Null) => None,
        Some(Value::String(key)) => Some(key.clone()),
        Some(_) => return Err("key: expected a string".into()),
    };
    let value = item.get("value").unwrap_or(&Value::Null);
    let bad_operator = || format!("operator {operator:?} does not apply to type {kind:?}");
    let needs_key = matches!(kind, "stringObject" | "numberObject" | "booleanObject");
    if needs_key && key.is_none() {
        return Err(format!("type {kind:?} needs a key"));
    }
    let test = match kind {
        "datetime" => {
            let comparison = Comparison::parse(operator, false).ok_or_else(bad_operator)?;
            let text = value
                .as_str()
                .ok_or("value: expected an ISO-8601 datetime string")?;
            let time = DateTime::parse_from_rfc3339(text)
                .map_err(|error| format!("value: {text:?} is not an ISO-8601 datetime ({error})"))?;
            Test::Time(comparison, time.timestamp_micros())
        }
        "string" | "stringObject" => {
            let test = TextTest::parse(operator).ok_or_else(bad_operator)?;
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                _ => return Err("value: expected a string".into()),
            };
            Test::Text(test, text)
        }
        "number" | "numberObject" => {
            let comparison = Comparison::parse(operator, true).ok_or_else(bad_operator)?;
            let number = match value {
                Value::Number(number) => number.as_f64(),
                Value::String(text) => text.trim().parse().ok(),
                _ => None,
            }
            .ok_or("value: expected a number")?;
            Test::Number(comparison, number)
        }
        "stringOptions" | "categoryOptions" | "arrayOptions" => {
            let test = match operator {
                "any of" => SetTest::AnyOf,
                "none of" => SetTest::NoneOf,
                "all of" if kind == "arrayOptions" => SetTest::AllOf,
                _ => return Err(bad_operator()),
            };
            let options = value
                .as_array()
                .and_then(|items| {
                    items
                        .iter()
                        .map(|item| item.as_str().map(str::to_owned))
                        .collect::<Option<Vec<String>>>()
                })
                .ok_or("value: expected an array of strings")?;
            Test::Set(test, options)
        }
        "boolean" | "booleanObject" => {
            let equal = match operator {
                "=" => true,
                "<>" => false,
                _ => return Err(bad_operator()),
            };
            let flag = match value {
                Value::Bool(flag) => *flag,
                Value::String(text) if text == "true" || text == "false" => text == "true",
                _ => return Err("value: expected a boolean".into()),
            };
            Test::Boolean(equal, flag)
        }
        "null" => match operator {
            "is null" => Test::Null(true),
            "is not null" => Test::Null(false),
            _ => return Err(bad_operator()),
        },
        other => {
            return Err(format!(
                "type {other:?} is unknown; expected datetime, string, number, stringOptions, \
                 categoryOptions, arrayOptions, stringObject, numberObject, booleanObject, boolean or null"
            ))
        }
    };
    Ok(Condition {
        column: column.to_owned(),
        key,
        test,
    })
}

/// The columns of `GET /traces?filter=…`.
pub const TRACE_COLUMNS: &[&str] = &[
    "id",
    "name",
    "timestamp",
    "userId",
    "sessionId",
    "environment",
    "version",
    "release",
    "tags",
    "bookmarked",
    "public",
    "metadata",
    "latency",
    "inputTokens",
    "outputTokens",
    "totalTokens",
    "tokens",
    "inputCost",
    "outputCost",
    "totalCost",
    "level",
    "warningCount",
    "errorCount",
    "defaultCount",
    "debugCount",
    "scores_avg",
    "scores",
    "score_categories",
];

/// The columns of `GET /observations?filter=…` and `/v2/observations`.
pub const OBSERVATION_COLUMNS: &[&str] = &[
    "id",
    "type",
    "name",
    "traceId",
    "parentObservationId",
    "startTime",
    "endTime",
    "environment",
    "level",
    "statusMessage",
    "version",
    "latency",
    "timeToFirstToken",
    "tokensPerSecond",
    "inputTokens",
    "outputTokens",
    "totalTokens",
    "tokens",
    "inputCost",
    "outputCost",
    "totalCost",
    "model",
    "promptName",
    "promptVersion",
    "metadata",
    "userId",
    "sessionId",
    "traceName",
    "traceEnvironment",
    "traceTags",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_with_their_types() {
        let parsed = parse(
            r#"[{"type": "datetime", "column": "timestamp", "operator": ">=", "value": "2024-01-01T00:00:00Z"},
                {"type": "arrayOptions", "column": "tags", "operator": "all of", "value": ["a", "b"]},
                {"type": "stringObject", "column": "metadata", "key": "team", "operator": "contains", "value": "ml"},
                {"type": "number", "column": "totalCost", "operator": ">", "value": 0.5},
                {"type": "null", "column": "release", "operator": "is null"}]"#,
            TRACE_COLUMNS,
        )
        .unwrap();
        assert_eq!(
            parsed[0].test,
            Test::Time(Comparison::GreaterOrEqual, 1_704_067_200_000_000)
        );
        assert_eq!(
            parsed[1].test,
            Test::Set(SetTest::AllOf, vec!["a".into(), "b".into()])
        );
        assert_eq!(parsed[2].key.as_deref(), Some("team"));
        assert_eq!(parsed[3].test, Test::Number(Comparison::Greater, 0.5));
        assert_eq!(parsed[4].test, Test::Null(true));
    }

    #[test]
    fn errors_name_the_condition_and_the_problem() {
        let error = |text: &str| parse(text, TRACE_COLUMNS).unwrap_err();
        assert!(error("{}").contains("array"));
        assert!(
            error(r#"[{"type": "string", "column": "nope", "operator": "=", "value": "x"}]"#)
                .contains("filter[0]: column \"nope\"")
        );
        assert!(
            error(r#"[{"type": "string", "column": "name", "operator": ">", "value": "x"}]"#)
                .contains("operator \">\"")
        );
        assert!(error(
            r#"[{"type": "stringObject", "column": "metadata", "operator": "=", "value": "x"}]"#
        )
        .contains("needs a key"));
        assert!(error(r#"[{"type": "datetime", "column": "timestamp", "operator": ">", "value": "yesterday"}]"#)
            .contains("ISO-8601"));
    }
}
