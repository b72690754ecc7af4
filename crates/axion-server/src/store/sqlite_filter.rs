//! SQL for Langfuse `filter` conditions on the SQLite schema: plain columns, JSON paths into
//! the stored body (`metadata.<key>`, usage, cost), and aggregates over a trace's
//! observations and scores as correlated subqueries.

use rusqlite::types::Value as SqlValue;

use super::filter::{Condition, SetTest, Test, TextTest};

/// An SQL expression and the parameters its placeholders take, in order.
struct Expr {
    sql: String,
    params: Vec<SqlValue>,
}

impl Expr {
    fn plain(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            params: Vec::new(),
        }
    }
}

/// A JSON path to `key` inside `object` (quoted, so any key works).
fn json_path(object: &str, key: &str) -> String {
    format!(
        "$.{object}.\"{}\"",
        key.replace('\\', "\\\\").replace('"', "\\\"")
    )
}

fn like_pattern(prefix: &str, text: &str, suffix: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("{prefix}{escaped}{suffix}")
}

/// `(clause, params)` testing `expr`.
fn clause(expr: &Expr, test: &Test) -> (String, Vec<SqlValue>) {
    let e = &expr.sql;
    let with = |extra: Vec<SqlValue>| {
        let mut params = expr.params.clone();
        params.extend(extra);
        params
    };
    // Tests that mention the expression twice need its parameters twice.
    let twice = |extra: Vec<SqlValue>| {
        let mut params = expr.params.clone();
        params.extend(expr.params.clone());
        params.extend(extra);
        params
    };
    match test {
        Test::Time(comparison, micros) => (
            format!("{e} {} ?", comparison.sql()),
            with(vec![(*micros).into()]),
        ),
        Test::Number(comparison, number) => (
            format!("CAST({e} AS REAL) {} ?", comparison.sql()),
            with(vec![(*number).into()]),
        ),
        Test::Text(test, text) => {
            let text_expr = format!("CAST({e} AS TEXT)");
            match test {
                TextTest::Equals => (format!("{text_expr} = ?"), with(vec![text.clone().into()])),
                TextTest::Contains => (
                    format!("{text_expr} LIKE ? ESCAPE '\\'"),
                    with(vec![like_pattern("%", text, "%").into()]),
                ),
                TextTest::StartsWith => (
                    format!("{text_expr} LIKE ? ESCAPE '\\'"),
                    with(vec![like_pattern("", text, "%").into()]),
                ),
                TextTest::EndsWith => (
                    format!("{text_expr} LIKE ? ESCAPE '\\'"),
                    with(vec![like_pattern("%", text, "").into()]),
                ),
                TextTest::DoesNotContain => (
                    format!("({e} IS NULL OR {text_expr} NOT LIKE ? ESCAPE '\\')"),
                    twice(vec![like_pattern("%", text, "%").into()]),
                ),
            }
        }
        Test::Set(test, options) => {
            let marks = vec!["?"; options.len()].join(", ");
            let values: Vec<SqlValue> = options.iter().cloned().map(SqlValue::from).collect();
            match (test, options.is_empty()) {
                (SetTest::NoneOf, true) => ("1".into(), Vec::new()),
                (_, true) => ("0".into(), Vec::new()),
                (SetTest::NoneOf, false) => (
                    format!("({e} IS NULL OR CAST({e} AS TEXT) NOT IN ({marks}))"),
                    twice(values),
                ),
                (SetTest::AnyOf | SetTest::AllOf, false) => {
                    (format!("CAST({e} AS TEXT) IN ({marks})"), with(values))
                }
            }
        }
        Test::Boolean(equal, flag) => (
            format!("coalesce({e}, 0) {} ?", if *equal { "=" } else { "<>" }),
            with(vec![i64::from(*flag).into()]),
        ),
        Test::Null(true) => (format!("{e} IS NULL"), with(Vec::new())),
        Test::Null(false) => (format!("{e} IS NOT NULL"), with(Vec::new())),
    }
}

/// Whether the trace in `trace_id` (of the project in `project`) has one of the tags bound to
/// `marks` (`?, ?`): the one place that knows how tags are stored (a JSON array in the
/// trace's row).
pub(super) fn has_tag(project: &str, trace_id: &str, marks: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM traces tt, json_each(tt.tags) g WHERE tt.project_id = {project} \
         AND tt.id = {trace_id} AND g.value IN ({marks}))"
    )
}

/// A test of a trace's tags (`arrayOptions`) for the trace id in `trace_id`.
fn tags_clause(trace_id: &str, project: &str, test: &Test) -> (String, Vec<SqlValue>) {
    let has = |marks: &str| has_tag(project, trace_id, marks);
    match test {
        Test::Set(test, options) => {
            let values: Vec<SqlValue> = options.iter().cloned().map(SqlValue::from).collect();
            if options.is_empty() {
                return (
                    if *test == SetTest::NoneOf { "1" } else { "0" }.into(),
                    Vec::new(),
                );
            }
            match test {
                SetTest::AnyOf => (has(&vec!["?"; options.len()].join(", ")), values),
                SetTest::NoneOf => (
                    format!("NOT {}", has(&vec!["?"; options.len()].join(", "))),
                    values,
                ),
                SetTest::AllOf => (
                    options
                        .iter()
                        .map(|_| has("?"))
                        .collect::<Vec<_>>()
                        .join(" AND "),
                    values,
                ),
            }
        }
        Test::Null(empty) => {
            let any = format!(
                "EXISTS (SELECT 1 FROM traces tt WHERE tt.project_id = {project} AND tt.id = {trace_id} AND tt.tags IS NOT NULL)"
            );
            (if *empty { format!("NOT {any}") } else { any }, Vec::new())
        }
        Test::Text(TextTest::Equals, tag) | Test::Text(TextTest::Contains, tag) => {
            (has("?"), vec![tag.clone().into()])
        }
        _ => ("0".into(), Vec::new()),
    }
}

const OBSERVATIONS_OF_TRACE: &str =
    "FROM observations o WHERE o.project_id = t.project_id AND o.trace_id = t.id";

fn observation_aggregate(select: &str) -> Expr {
    Expr::plain(format!("(SELECT {select} {OBSERVATIONS_OF_TRACE})"))
}

fn level_count(level: &str) -> Expr {
    Expr::plain(format!(
        "(SELECT count(*) {OBSERVATIONS_OF_TRACE} AND o.level = '{level}')"
    ))
}

/// Adds the conditions on traces (table alias `t`).
pub(super) fn trace_conditions(conditions: &[Condition]) -> Vec<(String, Vec<SqlValue>)> {
    conditions
        .iter()
        .map(|condition| {
            let key = condition.key.as_deref();
            match condition.column.as_str() {
                "tags" => tags_clause("t.id", "t.project_id", &condition.test),
                "score_categories" => score_categories(key, &condition.test),
                column => clause(&trace_expr(column, key), &condition.test),
            }
        })
        .collect()
}

/// A trace column (alias `t`) as SQL: what filters test and metrics read. Latency is in
/// seconds.
fn trace_expr(column: &str, key: Option<&str>) -> Expr {
    match column {
        "id" => Expr::plain("t.id"),
        "name" => Expr::plain("t.name"),
        "timestamp" => Expr::plain("t.timestamp"),
        "userId" => Expr::plain("t.user_id"),
        "sessionId" => Expr::plain("t.session_id"),
        "environment" => Expr::plain("t.environment"),
        "version" => Expr::plain("t.version"),
        "release" => Expr::plain("t.release"),
        "tags" => Expr::plain("t.tags"),
        "public" => Expr::plain("t.public"),
        "bookmarked" => Expr::plain("0"),
        "metadata" => metadata("t", key),
        "latency" => observation_aggregate(
            "(max(coalesce(o.end_time, o.start_time)) - min(o.start_time)) / 1e6",
        ),
        "inputTokens" => observation_aggregate("total(json_extract(o.derived, '$.usage.input'))"),
        "outputTokens" => observation_aggregate("total(json_extract(o.derived, '$.usage.output'))"),
        "totalTokens" | "tokens" => {
            observation_aggregate("total(json_extract(o.derived, '$.usage.total'))")
        }
        "inputCost" => observation_aggregate("total(json_extract(o.derived, '$.cost.input'))"),
        "outputCost" => observation_aggregate("total(json_extract(o.derived, '$.cost.output'))"),
        "totalCost" => observation_aggregate("total(o.total_cost)"),
        "observationsCount" => observation_aggregate("count(*)"),
        "scoresCount" => Expr::plain(
            "(SELECT count(*) FROM scores s WHERE s.project_id = t.project_id AND s.trace_id = t.id)",
        ),
        "level" => observation_aggregate(
            "CASE max(CASE o.level WHEN 'ERROR' THEN 3 WHEN 'WARNING' THEN 2 WHEN 'DEFAULT' THEN 1 ELSE 0 END) \
             WHEN 3 THEN 'ERROR' WHEN 2 THEN 'WARNING' WHEN 1 THEN 'DEFAULT' WHEN 0 THEN 'DEBUG' END",
        ),
        "warningCount" => level_count("WARNING"),
        "errorCount" => level_count("ERROR"),
        "defaultCount" => level_count("DEFAULT"),
        "debugCount" => level_count("DEBUG"),
        "scores_avg" | "scores" => {
            let mut expr = Expr::plain(
                "(SELECT avg(s.value) FROM scores s WHERE s.project_id = t.project_id AND s.trace_id = t.id \
                 AND s.data_type IN ('NUMERIC', 'BOOLEAN')",
            );
            if let Some(name) = key {
                expr.sql.push_str(" AND s.name = ?");
                expr.params.push(name.to_owned().into());
            }
            expr.sql.push(')');
            expr
        }
        other => unreachable!("trace column {other} passed validation"),
    }
}

/// [`trace_expr`] of a column that takes no parameters, for metrics.
pub(super) fn trace_sql(column: &str) -> String {
    trace_expr(column, None).sql
}

fn metadata(alias: &str, key: Option<&str>) -> Expr {
    match key {
        Some(key) => Expr {
            sql: format!("json_extract({alias}.body, ?)"),
            params: vec![json_path("metadata", key).into()],
        },
        None => Expr::plain(format!("json_extract({alias}.body, '$.metadata')")),
    }
}

fn score_categories(name: Option<&str>, test: &Test) -> (String, Vec<SqlValue>) {
    let Test::Set(set, options) = test else {
        return ("0".into(), Vec::new());
    };
    let mut sql = String::from(
        "EXISTS (SELECT 1 FROM scores s WHERE s.project_id = t.project_id AND s.trace_id = t.id",
    );
    let mut params: Vec<SqlValue> = Vec::new();
    if let Some(name) = name {
        sql.push_str(" AND s.name = ?");
        params.push(name.to_owned().into());
    }
    if !options.is_empty() {
        sql.push_str(&format!(
            " AND json_extract(s.body, '$.stringValue') IN ({})",
            vec!["?"; options.len()].join(", ")
        ));
        params.extend(options.iter().cloned().map(SqlValue::from));
    }
    sql.push(')');
    if *set == SetTest::NoneOf {
        sql = format!("NOT {sql}");
    }
    (sql, params)
}

/// The conditions of a metrics query on the observations view (alias `o`): its column names
/// are the observation filter's, but for the few the metrics API names its own way.
pub(super) fn metrics_observation_conditions(
    conditions: &[Condition],
) -> Vec<(String, Vec<SqlValue>)> {
    let renamed: Vec<Condition> = conditions
        .iter()
        .map(|condition| Condition {
            column: match condition.column.as_str() {
                "tags" => "traceTags".to_owned(),
                other => metrics_observation_column(other).to_owned(),
            },
            ..condition.clone()
        })
        .collect();
    observation_conditions(&renamed)
}

/// The observation column a metrics query's name stands for.
fn metrics_observation_column(name: &str) -> &str {
    match name {
        "providedModelName" => "model",
        "release" => "traceRelease",
        other => other,
    }
}

/// The conditions of a metrics query on a scores view (alias `s`).
pub(super) fn metrics_score_conditions(conditions: &[Condition]) -> Vec<(String, Vec<SqlValue>)> {
    conditions
        .iter()
        .map(|condition| match condition.column.as_str() {
            "tags" => tags_clause("s.trace_id", "s.project_id", &condition.test),
            column => clause(&score_expr(column), &condition.test),
        })
        .collect()
}

/// A score column (alias `s`) as SQL, for metrics' filters, dimensions and measures.
fn score_expr(column: &str) -> Expr {
    // The scored observation, found among its trace's observations (through their index);
    // a score without a trace looks the observation up by id alone.
    let observation = |select: &str| {
        Expr::plain(format!(
            "(CASE WHEN s.trace_id IS NULL \
             THEN (SELECT {select} FROM observations o WHERE o.project_id = s.project_id AND o.id = s.observation_id) \
             ELSE (SELECT {select} FROM observations o INDEXED BY observations_by_trace \
                   WHERE o.trace_id = s.trace_id AND o.project_id = s.project_id AND o.id = s.observation_id) END)"
        ))
    };
    match column {
        "environment" => Expr::plain("s.environment"),
        "name" => Expr::plain("s.name"),
        "source" => Expr::plain("s.source"),
        "dataType" => Expr::plain("s.data_type"),
        "configId" => Expr::plain("s.config_id"),
        "value" => Expr::plain("s.value"),
        "stringValue" => Expr::plain("json_extract(s.body, '$.stringValue')"),
        "booleanValue" => Expr::plain("CASE s.value WHEN 1 THEN 'true' WHEN 0 THEN 'false' END"),
        "timestamp" => Expr::plain("s.timestamp"),
        "id" => Expr::plain("s.id"),
        "traceId" => Expr::plain("s.trace_id"),
        "observationId" => Expr::plain("s.observation_id"),
        "sessionId" => Expr::plain("s.session_id"),
        "userId" => trace_field("s", "user_id"),
        "traceName" => trace_field("s", "name"),
        "traceRelease" => trace_field("s", "release"),
        "traceVersion" => trace_field("s", "version"),
        "tags" => trace_field("s", "tags"),
        "observationName" => observation("o.name"),
        "observationModelName" => observation("o.model"),
        "observationPromptName" => observation("json_extract(o.body, '$.promptName')"),
        "observationPromptVersion" => observation("json_extract(o.body, '$.promptVersion')"),
        other => unreachable!("score column {other} passed validation"),
    }
}

/// [`score_expr`], for metrics.
pub(super) fn score_sql(column: &str) -> String {
    score_expr(column).sql
}

/// A field of the trace of the row under `alias` (observations `o`, scores `s`).
fn trace_field(alias: &str, column: &str) -> Expr {
    Expr::plain(format!(
        "(SELECT t.{column} FROM traces t WHERE t.project_id = {alias}.project_id AND t.id = {alias}.trace_id)"
    ))
}

/// Adds the conditions on observations (table alias `o`).
pub(super) fn observation_conditions(conditions: &[Condition]) -> Vec<(String, Vec<SqlValue>)> {
    conditions
        .iter()
        .map(|condition| match condition.column.as_str() {
            "traceTags" => tags_clause("o.trace_id", "o.project_id", &condition.test),
            column => clause(
                &observation_expr(column, condition.key.as_deref()),
                &condition.test,
            ),
        })
        .collect()
}

/// An observation column (alias `o`) as SQL: what filters test and metrics read. Latencies
/// are in seconds.
fn observation_expr(column: &str, key: Option<&str>) -> Expr {
    let body = |field: &str| Expr::plain(format!("json_extract(o.body, '$.{field}')"));
    let derived = |path: &str| Expr::plain(format!("json_extract(o.derived, '$.{path}')"));
    let completion = "unixepoch(json_extract(o.body, '$.completionStartTime'), 'subsec')";
    match column {
        "id" => Expr::plain("o.id"),
        "type" => Expr::plain("o.type"),
        "name" => Expr::plain("o.name"),
        "traceId" => Expr::plain("o.trace_id"),
        "parentObservationId" => Expr::plain("o.parent_observation_id"),
        "startTime" => Expr::plain("o.start_time"),
        "endTime" => Expr::plain("o.end_time"),
        "environment" => Expr::plain("o.environment"),
        "level" => Expr::plain("o.level"),
        "version" => Expr::plain("o.version"),
        "model" => Expr::plain("o.model"),
        "statusMessage" => body("statusMessage"),
        "promptName" => body("promptName"),
        "promptVersion" => body("promptVersion"),
        "latency" => Expr::plain("((o.end_time - o.start_time) / 1e6)"),
        "timeToFirstToken" => Expr::plain(format!("({completion} - o.start_time / 1e6)")),
        "streamingLatency" => Expr::plain(format!("(o.end_time / 1e6 - {completion})")),
        // Output tokens per second, the filter's `tokensPerSecond` (Langfuse's column).
        "tokensPerSecond" | "outputTokensPerSecond" => Expr::plain(
            "(json_extract(o.derived, '$.usage.output') / nullif((o.end_time - o.start_time) / 1e6, 0))",
        ),
        "totalTokensPerSecond" => Expr::plain(
            "(json_extract(o.derived, '$.usage.total') / nullif((o.end_time - o.start_time) / 1e6, 0))",
        ),
        "inputTokens" => derived("usage.input"),
        "outputTokens" => derived("usage.output"),
        "totalTokens" | "tokens" => derived("usage.total"),
        "inputCost" => derived("cost.input"),
        "outputCost" => derived("cost.output"),
        "totalCost" => Expr::plain("o.total_cost"),
        "countScores" => Expr::plain(
            "(SELECT count(*) FROM scores s WHERE s.observation_id = o.id AND s.project_id = o.project_id)",
        ),
        "metadata" => metadata("o", key),
        "userId" => trace_field("o", "user_id"),
        "sessionId" => trace_field("o", "session_id"),
        "traceName" => trace_field("o", "name"),
        "traceEnvironment" => trace_field("o", "environment"),
        "traceRelease" => trace_field("o", "release"),
        "traceVersion" => trace_field("o", "version"),
        "traceTagsList" => trace_field("o", "tags"),
        "isRootObservation" => Expr::plain("(o.parent_observation_id IS NULL)"),
        other => unreachable!("observation column {other} passed validation"),
    }
}

/// [`observation_expr`] of a metrics query's name for a column, for metrics (`tags`: the
/// trace's tags as its JSON list).
pub(super) fn observation_sql(name: &str) -> String {
    let column = match name {
        "tags" => "traceTagsList",
        other => metrics_observation_column(other),
    };
    observation_expr(column, None).sql
}
