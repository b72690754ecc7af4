//! The SQL both stores share: Langfuse `filter` conditions (plain columns, JSON paths into the
//! stored body such as `metadata.<key>`, usage and cost, and aggregates over a trace's
//! observations and scores as correlated subqueries), the list endpoints' WHERE clauses and the
//! metrics query. One column-to-SQL mapping per table, written once; where SQLite and
//! PostgreSQL spell a thing differently, [`Dialect`] says how.
//!
//! Statements use `?` placeholders and carry their values as [`SqlValue`]s in order;
//! [`numbered`] turns them into PostgreSQL's typed `$n`.

use rusqlite::types::Value as SqlValue;

use super::filter::{Condition, SetTest, Test, TextTest};
use super::metrics::{self, MetricsQuery, MetricsView};
use super::{Direction, ObservationQuery, Pagination, ScoreQuery, SessionQuery, TraceQuery};

/// Which database a statement is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// Bodies are JSON text read with `json_extract`; tags a JSON array.
    Sqlite,
    /// Bodies are `json` read with `#>>`; tags a `text[]`.
    Postgres,
}

/// A number in a JSON text that PostgreSQL may cast without failing the statement (SQLite's
/// `CAST` never fails).
const NUMBER_PATTERN: &str = r"'^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$'";

impl Dialect {
    /// A field of a JSON column at `path` (top-level key first), as text (SQLite: as stored).
    fn json(self, column: &str, path: &[&str]) -> String {
        match self {
            Self::Sqlite => format!("json_extract({column}, '$.{}')", path.join(".")),
            Self::Postgres => format!("({column} #>> '{{{}}}')", path.join(",")),
        }
    }

    /// A number the server itself wrote into a JSON column (usage, cost).
    fn json_number(self, column: &str, path: &[&str]) -> String {
        match self {
            Self::Sqlite => self.json(column, path),
            Self::Postgres => format!("CAST({} AS DOUBLE PRECISION)", self.json(column, path)),
        }
    }

    /// `expr` as a number; `from_json` when it comes out of a client's JSON (may be any text).
    fn number(self, expr: &str, from_json: bool) -> String {
        match (self, from_json) {
            // The expression once (its placeholders are bound once), tested then cast.
            (Self::Postgres, true) => format!(
                "(SELECT CASE WHEN v ~ {NUMBER_PATTERN} THEN CAST(v AS DOUBLE PRECISION) END \
                 FROM (SELECT CAST({expr} AS TEXT) AS v) AS n)"
            ),
            _ => format!("CAST({expr} AS DOUBLE PRECISION)"),
        }
    }

    /// `expr` as a 0/1 flag; `from_json` when it comes out of a client's JSON (SQLite's
    /// `json_extract` gives JSON booleans as 1 and 0 already; PostgreSQL gives their text).
    fn flag(self, expr: &str, from_json: bool) -> String {
        match (self, from_json) {
            (Self::Postgres, true) => {
                format!("(CASE CAST({expr} AS TEXT) WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)")
            }
            _ => expr.to_owned(),
        }
    }

    /// Sum that is 0 over no rows.
    fn sum(self, expr: &str) -> String {
        match self {
            Self::Sqlite => format!("total({expr})"),
            Self::Postgres => format!("coalesce(sum({expr}), 0)"),
        }
    }

    /// The pattern match of text filters: case-insensitive, as SQLite's `LIKE` is.
    fn like(self) -> &'static str {
        match self {
            Self::Sqlite => "LIKE",
            Self::Postgres => "ILIKE",
        }
    }

    /// Seconds since the epoch of a canonical time text.
    fn epoch_seconds(self, text: &str) -> String {
        match self {
            Self::Sqlite => format!("unixepoch({text}, 'subsec')"),
            Self::Postgres => {
                format!("CAST(extract(epoch FROM CAST({text} AS TIMESTAMPTZ)) AS DOUBLE PRECISION)")
            }
        }
    }

    /// A time in µs as a UTC calendar text: `month` `YYYY-MM`, else `YYYY-MM-DD`.
    fn calendar(self, micros: &str, month: bool) -> String {
        match self {
            Self::Sqlite => format!(
                "strftime('{}', {micros} / 1000000, 'unixepoch')",
                if month { "%Y-%m" } else { "%Y-%m-%d" }
            ),
            Self::Postgres => format!(
                "to_char(to_timestamp({micros} / 1000000.0) AT TIME ZONE 'UTC', '{}')",
                if month { "YYYY-MM" } else { "YYYY-MM-DD" }
            ),
        }
    }

    /// A trace's tags (table alias `alias`) as a JSON list text, NULL when it has none.
    fn tags_json(self, alias: &str) -> String {
        match self {
            Self::Sqlite => format!("{alias}.tags"),
            Self::Postgres => format!("CAST(array_to_json({alias}.tags) AS TEXT)"),
        }
    }

    /// A sort key: both stores put NULLs first ascending and last descending (SQLite's order).
    pub(super) fn order(self, column: &str, direction: Direction) -> String {
        match (self, direction) {
            (Self::Sqlite, Direction::Asc) => format!("{column} ASC"),
            (Self::Sqlite, Direction::Desc) => format!("{column} DESC"),
            (Self::Postgres, Direction::Asc) => format!("{column} ASC NULLS FIRST"),
            (Self::Postgres, Direction::Desc) => format!("{column} DESC NULLS LAST"),
        }
    }
}

/// An SQL expression and the parameters its placeholders take, in order.
struct Expr {
    sql: String,
    params: Vec<SqlValue>,
    /// Read out of a client's JSON: any text may come out of it.
    from_json: bool,
}

impl Expr {
    fn plain(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            params: Vec::new(),
            from_json: false,
        }
    }

    fn json(sql: impl Into<String>) -> Self {
        Self {
            from_json: true,
            ..Self::plain(sql)
        }
    }
}

/// A WHERE clause and its parameters.
pub(super) type Clause = (String, Vec<SqlValue>);

/// Microseconds in a second, as a float (stored times are µs; latencies are seconds).
const MICROS_PER_SECOND: &str = "CAST(1000000 AS DOUBLE PRECISION)";

const TRUE: &str = "(1 = 1)";
const FALSE: &str = "(1 = 0)";

fn like_pattern(prefix: &str, text: &str, suffix: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("{prefix}{escaped}{suffix}")
}

/// `(clause, params)` testing `expr`.
fn clause(dialect: Dialect, expr: &Expr, test: &Test) -> Clause {
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
    let like = dialect.like();
    match test {
        Test::Time(comparison, micros) => (
            format!("{e} {} ?", comparison.sql()),
            with(vec![(*micros).into()]),
        ),
        Test::Number(comparison, number) => (
            format!(
                "{} {} ?",
                dialect.number(e, expr.from_json),
                comparison.sql()
            ),
            with(vec![(*number).into()]),
        ),
        Test::Text(test, text) => {
            let text_expr = format!("CAST({e} AS TEXT)");
            let matching = |pattern: String| {
                (
                    format!("{text_expr} {like} ? ESCAPE '\\'"),
                    with(vec![pattern.into()]),
                )
            };
            match test {
                TextTest::Equals => (format!("{text_expr} = ?"), with(vec![text.clone().into()])),
                TextTest::Contains => matching(like_pattern("%", text, "%")),
                TextTest::StartsWith => matching(like_pattern("", text, "%")),
                TextTest::EndsWith => matching(like_pattern("%", text, "")),
                TextTest::DoesNotContain => (
                    format!("({e} IS NULL OR {text_expr} NOT {like} ? ESCAPE '\\')"),
                    twice(vec![like_pattern("%", text, "%").into()]),
                ),
            }
        }
        Test::Set(test, options) => {
            let marks = marks(options.len());
            let values: Vec<SqlValue> = options.iter().cloned().map(SqlValue::from).collect();
            match (test, options.is_empty()) {
                (SetTest::NoneOf, true) => (TRUE.into(), Vec::new()),
                (_, true) => (FALSE.into(), Vec::new()),
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
            format!(
                "coalesce({}, 0) {} ?",
                dialect.flag(e, expr.from_json),
                if *equal { "=" } else { "<>" }
            ),
            with(vec![i64::from(*flag).into()]),
        ),
        Test::Null(true) => (format!("{e} IS NULL"), with(Vec::new())),
        Test::Null(false) => (format!("{e} IS NOT NULL"), with(Vec::new())),
    }
}

/// `?, ?, …` for `count` values.
pub(super) fn marks(count: usize) -> String {
    vec!["?"; count].join(", ")
}

/// Whose tags a tag test reads: the traces row itself (alias `t`), or the trace a row of
/// another table (alias `alias`: observations `o`, scores `s`) belongs to.
#[derive(Clone, Copy)]
enum TagsOf<'a> {
    OwnRow,
    TraceOf(&'a str),
}

impl TagsOf<'_> {
    /// The trace's `tags` column, as [`Self::trace_where`]'s conditions name it.
    fn tags(self) -> &'static str {
        match self {
            Self::OwnRow => "t.tags",
            Self::TraceOf(_) => "tt.tags",
        }
    }

    /// `condition` (on [`Self::tags`]) tested on the trace.
    fn trace_where(self, condition: &str) -> String {
        match self {
            Self::OwnRow => condition.to_owned(),
            Self::TraceOf(alias) => format!(
                "EXISTS (SELECT 1 FROM traces tt WHERE tt.project_id = {alias}.project_id \
                 AND tt.id = {alias}.trace_id AND {condition})"
            ),
        }
    }
}

/// Whether the trace has one of the tags bound to `marks` (`?, ?`): the one place that knows
/// how each store keeps tags (SQLite: a JSON array in the trace's row; PostgreSQL: a
/// `text[]`). On the traces table itself the row's own tags are tested, without looking the
/// trace up again.
fn has_tag(dialect: Dialect, of: TagsOf<'_>, marks: &str) -> String {
    let tags = of.tags();
    of.trace_where(&match dialect {
        Dialect::Sqlite => {
            format!("EXISTS (SELECT 1 FROM json_each({tags}) g WHERE g.value IN ({marks}))")
        }
        // A trace without tags has none of them (not an unknown).
        Dialect::Postgres => format!("coalesce({tags} && ARRAY[{marks}], FALSE)"),
    })
}

/// A test of a trace's tags (`arrayOptions`).
fn tags_clause(dialect: Dialect, of: TagsOf<'_>, test: &Test) -> Clause {
    let has = |marks: &str| has_tag(dialect, of, marks);
    match test {
        Test::Set(test, options) => {
            let values: Vec<SqlValue> = options.iter().cloned().map(SqlValue::from).collect();
            if options.is_empty() {
                return (
                    if *test == SetTest::NoneOf {
                        TRUE
                    } else {
                        FALSE
                    }
                    .into(),
                    Vec::new(),
                );
            }
            match test {
                SetTest::AnyOf => (has(&marks(options.len())), values),
                SetTest::NoneOf => (format!("NOT {}", has(&marks(options.len()))), values),
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
            let any = of.trace_where(&format!("{} IS NOT NULL", of.tags()));
            (
                if *empty { format!("NOT ({any})") } else { any },
                Vec::new(),
            )
        }
        Test::Text(TextTest::Equals, tag) | Test::Text(TextTest::Contains, tag) => {
            (has("?"), vec![tag.clone().into()])
        }
        _ => (FALSE.into(), Vec::new()),
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

/// The conditions on traces (table alias `t`).
fn trace_conditions(dialect: Dialect, conditions: &[Condition]) -> Vec<Clause> {
    conditions
        .iter()
        .map(|condition| {
            let key = condition.key.as_deref();
            match condition.column.as_str() {
                "tags" => tags_clause(dialect, TagsOf::OwnRow, &condition.test),
                "score_categories" => score_categories(dialect, key, &condition.test),
                column => clause(dialect, &trace_expr(dialect, column, key), &condition.test),
            }
        })
        .collect()
}

/// A trace column (alias `t`) as SQL: what filters test and metrics read. Latency is in
/// seconds.
fn trace_expr(dialect: Dialect, column: &str, key: Option<&str>) -> Expr {
    let usage_sum = |path: &[&str]| {
        observation_aggregate(&dialect.sum(&dialect.json_number("o.derived", path)))
    };
    match column {
        "id" => Expr::plain("t.id"),
        "name" => Expr::plain("t.name"),
        "timestamp" => Expr::plain("t.timestamp"),
        "userId" => Expr::plain("t.user_id"),
        "sessionId" => Expr::plain("t.session_id"),
        "environment" => Expr::plain("t.environment"),
        "version" => Expr::plain("t.version"),
        "release" => Expr::plain("t.release"),
        "tags" => Expr::plain(dialect.tags_json("t")),
        "public" => Expr::plain("t.public"),
        "bookmarked" => Expr::plain("0"),
        "metadata" => metadata(dialect, "t", key),
        "latency" => observation_aggregate(&format!(
            "(max(coalesce(o.end_time, o.start_time)) - min(o.start_time)) / {MICROS_PER_SECOND}"
        )),
        "inputTokens" => usage_sum(&["usage", "input"]),
        "outputTokens" => usage_sum(&["usage", "output"]),
        "totalTokens" | "tokens" => usage_sum(&["usage", "total"]),
        "inputCost" => usage_sum(&["cost", "input"]),
        "outputCost" => usage_sum(&["cost", "output"]),
        "totalCost" => observation_aggregate(&dialect.sum("o.total_cost")),
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

/// The metadata (table alias `alias`), or the value under `key` in it.
fn metadata(dialect: Dialect, alias: &str, key: Option<&str>) -> Expr {
    match (dialect, key) {
        (Dialect::Sqlite, Some(key)) => Expr {
            sql: format!("json_extract({alias}.body, ?)"),
            // Quoted, so any key works.
            params: vec![format!(
                "$.metadata.\"{}\"",
                key.replace('\\', "\\\\").replace('"', "\\\"")
            )
            .into()],
            from_json: true,
        },
        (Dialect::Postgres, Some(key)) => Expr {
            sql: format!("({alias}.body -> 'metadata' ->> ?)"),
            params: vec![key.to_owned().into()],
            from_json: true,
        },
        (_, None) => Expr::json(dialect.json(&format!("{alias}.body"), &["metadata"])),
    }
}

fn score_categories(dialect: Dialect, name: Option<&str>, test: &Test) -> Clause {
    let Test::Set(set, options) = test else {
        return (FALSE.into(), Vec::new());
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
            " AND {} IN ({})",
            dialect.json("s.body", &["stringValue"]),
            marks(options.len())
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
fn metrics_observation_conditions(dialect: Dialect, conditions: &[Condition]) -> Vec<Clause> {
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
    observation_conditions(dialect, &renamed)
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
fn metrics_score_conditions(dialect: Dialect, conditions: &[Condition]) -> Vec<Clause> {
    conditions
        .iter()
        .map(|condition| match condition.column.as_str() {
            "tags" => tags_clause(dialect, TagsOf::TraceOf("s"), &condition.test),
            column => clause(dialect, &score_expr(dialect, column), &condition.test),
        })
        .collect()
}

/// A score column (alias `s`) as SQL, for metrics' filters, dimensions and measures.
fn score_expr(dialect: Dialect, column: &str) -> Expr {
    // The scored observation, found among its trace's observations (through their index);
    // a score without a trace looks the observation up by id alone.
    let hint = match dialect {
        Dialect::Sqlite => " INDEXED BY observations_by_trace",
        Dialect::Postgres => "",
    };
    let observation = |select: &str| {
        Expr::plain(format!(
            "(CASE WHEN s.trace_id IS NULL \
             THEN (SELECT {select} FROM observations o WHERE o.project_id = s.project_id AND o.id = s.observation_id) \
             ELSE (SELECT {select} FROM observations o{hint} \
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
        "stringValue" => Expr::json(dialect.json("s.body", &["stringValue"])),
        "booleanValue" => Expr::plain("CASE s.value WHEN 1 THEN 'true' WHEN 0 THEN 'false' END"),
        "timestamp" => Expr::plain("s.timestamp"),
        "id" => Expr::plain("s.id"),
        "traceId" => Expr::plain("s.trace_id"),
        "observationId" => Expr::plain("s.observation_id"),
        "sessionId" => Expr::plain("s.session_id"),
        "userId" => trace_field("s", "t.user_id"),
        "traceName" => trace_field("s", "t.name"),
        "traceRelease" => trace_field("s", "t.release"),
        "traceVersion" => trace_field("s", "t.version"),
        "tags" => trace_field("s", &dialect.tags_json("t")),
        "observationName" => observation("o.name"),
        "observationModelName" => observation("o.model"),
        "observationPromptName" => observation(&dialect.json("o.body", &["promptName"])),
        "observationPromptVersion" => observation(&dialect.json("o.body", &["promptVersion"])),
        other => unreachable!("score column {other} passed validation"),
    }
}

/// A field (`select`, over alias `t`) of the trace of the row under `alias` (observations `o`,
/// scores `s`).
fn trace_field(alias: &str, select: &str) -> Expr {
    Expr::plain(format!(
        "(SELECT {select} FROM traces t WHERE t.project_id = {alias}.project_id AND t.id = {alias}.trace_id)"
    ))
}

/// The conditions on observations (table alias `o`).
fn observation_conditions(dialect: Dialect, conditions: &[Condition]) -> Vec<Clause> {
    conditions
        .iter()
        .map(|condition| match condition.column.as_str() {
            "traceTags" => tags_clause(dialect, TagsOf::TraceOf("o"), &condition.test),
            column => clause(
                dialect,
                &observation_expr(dialect, column, condition.key.as_deref()),
                &condition.test,
            ),
        })
        .collect()
}

/// An observation column (alias `o`) as SQL: what filters test and metrics read. Latencies
/// are in seconds.
fn observation_expr(dialect: Dialect, column: &str, key: Option<&str>) -> Expr {
    let body = |field: &str| Expr::json(dialect.json("o.body", &[field]));
    let derived = |path: &[&str]| Expr::plain(dialect.json_number("o.derived", path));
    let completion = dialect.epoch_seconds(&dialect.json("o.body", &["completionStartTime"]));
    let seconds = MICROS_PER_SECOND;
    let per_second = |tokens: &str| {
        Expr::plain(format!(
            "({} / nullif((o.end_time - o.start_time) / {seconds}, 0))",
            dialect.json_number("o.derived", &["usage", tokens])
        ))
    };
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
        "latency" => Expr::plain(format!("((o.end_time - o.start_time) / {seconds})")),
        "timeToFirstToken" => Expr::plain(format!("({completion} - o.start_time / {seconds})")),
        "streamingLatency" => Expr::plain(format!("(o.end_time / {seconds} - {completion})")),
        // Output tokens per second, the filter's `tokensPerSecond` (Langfuse's column).
        "tokensPerSecond" | "outputTokensPerSecond" => per_second("output"),
        "totalTokensPerSecond" => per_second("total"),
        "inputTokens" => derived(&["usage", "input"]),
        "outputTokens" => derived(&["usage", "output"]),
        "totalTokens" | "tokens" => derived(&["usage", "total"]),
        "inputCost" => derived(&["cost", "input"]),
        "outputCost" => derived(&["cost", "output"]),
        "totalCost" => Expr::plain("o.total_cost"),
        "countScores" => Expr::plain(
            "(SELECT count(*) FROM scores s WHERE s.observation_id = o.id AND s.project_id = o.project_id)",
        ),
        "metadata" => metadata(dialect, "o", key),
        "userId" => trace_field("o", "t.user_id"),
        "sessionId" => trace_field("o", "t.session_id"),
        "traceName" => trace_field("o", "t.name"),
        "traceEnvironment" => trace_field("o", "t.environment"),
        "traceRelease" => trace_field("o", "t.release"),
        "traceVersion" => trace_field("o", "t.version"),
        "traceTagsList" => trace_field("o", &dialect.tags_json("t")),
        "isRootObservation" => {
            Expr::plain("(CASE WHEN o.parent_observation_id IS NULL THEN 1 ELSE 0 END)")
        }
        other => unreachable!("observation column {other} passed validation"),
    }
}

/// A WHERE clause under construction, with its parameters in order.
#[derive(Default)]
pub(super) struct Filter {
    pub(super) clauses: Vec<String>,
    pub(super) values: Vec<SqlValue>,
}

impl Filter {
    pub(super) fn new(project_column: &str, project_id: &str) -> Self {
        let mut filter = Self::default();
        filter.push(format!("{project_column} = ?"), project_id.to_owned());
        filter
    }

    pub(super) fn push(&mut self, clause: String, value: impl Into<SqlValue>) {
        self.clauses.push(clause);
        self.values.push(value.into());
    }

    fn eq(&mut self, column: &str, value: &Option<String>) {
        if let Some(value) = value {
            self.push(format!("{column} = ?"), value.clone());
        }
    }

    fn any(&mut self, column: &str, values: &[String]) {
        if values.is_empty() {
            return;
        }
        self.clauses
            .push(format!("{column} IN ({})", marks(values.len())));
        self.values
            .extend(values.iter().cloned().map(SqlValue::from));
    }

    fn range(&mut self, column: &str, from: Option<i64>, to: Option<i64>) {
        if let Some(from) = from {
            self.push(format!("{column} >= ?"), from);
        }
        if let Some(to) = to {
            self.push(format!("{column} < ?"), to);
        }
    }

    fn extend(&mut self, clauses: Vec<Clause>) {
        for (clause, values) in clauses {
            self.clauses.push(clause);
            self.values.extend(values);
        }
    }

    fn tags(&mut self, dialect: Dialect, of: TagsOf<'_>, tags: &[String]) {
        for tag in tags {
            self.push(has_tag(dialect, of, "?"), tag.clone());
        }
    }

    /// Rows strictly after the page's last item, in descending `(time, id)` order.
    fn keyset(&mut self, time_column: &str, id_column: &str, page: &Pagination) {
        if let Pagination::Keyset {
            after: Some((time, id)),
            ..
        } = page
        {
            self.clauses.push(format!(
                "({time_column} < ? OR ({time_column} = ? AND {id_column} < ?))"
            ));
            self.values.extend([
                SqlValue::from(*time),
                SqlValue::from(*time),
                SqlValue::from(id.clone()),
            ]);
        }
    }

    pub(super) fn sql(&self) -> String {
        self.clauses.join(" AND ")
    }

    /// `SELECT {columns} FROM {table} WHERE … ORDER BY {order}` and the page's limit.
    pub(super) fn select(
        &self,
        columns: &str,
        table: &str,
        order: &str,
        page: &Pagination,
    ) -> String {
        format!(
            "SELECT {columns} FROM {table} WHERE {} ORDER BY {order} {}",
            self.sql(),
            page_clause(page)
        )
    }

    /// `SELECT count(*) FROM {table} WHERE …`: an offset page's total.
    pub(super) fn count(&self, table: &str) -> String {
        format!("SELECT count(*) FROM {table} WHERE {}", self.sql())
    }
}

/// The columns of a session, in [`super::SessionRecord`]'s order.
pub(super) const SESSION_COLUMNS: &str = "s.id, s.project_id, s.environment, s.created_at";
/// Newest session first.
pub(super) const SESSION_ORDER: &str = "s.created_at DESC, s.id DESC";
/// Newest score first.
pub(super) const SCORE_ORDER: &str = "s.timestamp DESC, s.id DESC";

/// `LIMIT … [OFFSET …]` of a page.
fn page_clause(page: &Pagination) -> String {
    match page {
        Pagination::Offset { page, limit } => {
            format!(
                "LIMIT {limit} OFFSET {}",
                u64::from(page.saturating_sub(1)) * u64::from(*limit)
            )
        }
        Pagination::Keyset { limit, .. } => format!("LIMIT {limit}"),
    }
}

/// The WHERE of `GET /traces` (alias `t`) and its ORDER BY.
pub(super) fn trace_list(
    dialect: Dialect,
    project_id: &str,
    query: &TraceQuery,
) -> (Filter, String) {
    let mut filter = Filter::new("t.project_id", project_id);
    filter.eq("t.user_id", &query.user_id);
    filter.eq("t.name", &query.name);
    filter.eq("t.session_id", &query.session_id);
    filter.eq("t.version", &query.version);
    filter.eq("t.release", &query.release);
    filter.any("t.environment", &query.environments);
    filter.range("t.timestamp", query.from_timestamp, query.to_timestamp);
    filter.tags(dialect, TagsOf::OwnRow, &query.tags);
    filter.extend(trace_conditions(dialect, &query.conditions));
    let (column, direction) = match &query.order_by {
        Some((field, direction)) => (
            match field.as_str() {
                "id" => "t.id",
                "name" => "t.name",
                "userId" => "t.user_id",
                "release" => "t.release",
                "version" => "t.version",
                "public" => "t.public",
                "sessionId" => "t.session_id",
                _ => "t.timestamp",
            },
            *direction,
        ),
        None => ("t.timestamp", Direction::Desc),
    };
    let order = format!(
        "{}, {}",
        dialect.order(column, direction),
        dialect.order("t.id", direction)
    );
    (filter, order)
}

/// The WHERE of the observation lists (alias `o`).
pub(super) fn observation_list(
    dialect: Dialect,
    project_id: &str,
    query: &ObservationQuery,
    page: &Pagination,
) -> Filter {
    let mut filter = Filter::new("o.project_id", project_id);
    filter.eq("o.name", &query.name);
    filter.eq("o.type", &query.observation_type);
    filter.eq("o.trace_id", &query.trace_id);
    filter.eq("o.level", &query.level);
    filter.eq("o.parent_observation_id", &query.parent_observation_id);
    filter.eq("o.version", &query.version);
    filter.any("o.environment", &query.environments);
    filter.range("o.start_time", query.from_start_time, query.to_start_time);
    match query.is_root {
        Some(true) => filter
            .clauses
            .push("o.parent_observation_id IS NULL".into()),
        Some(false) => filter
            .clauses
            .push("o.parent_observation_id IS NOT NULL".into()),
        None => {}
    }
    for (column, value) in [
        ("user_id", &query.user_id),
        ("session_id", &query.session_id),
    ] {
        if let Some(value) = value {
            filter.push(
                format!(
                    "EXISTS (SELECT 1 FROM traces t WHERE t.project_id = o.project_id AND t.id = o.trace_id \
                     AND t.{column} = ?)"
                ),
                value.clone(),
            );
        }
    }
    filter.extend(observation_conditions(dialect, &query.conditions));
    filter.keyset("o.start_time", "o.id", page);
    filter
}

/// Newest observation first (ties by id).
pub(super) fn observation_order(dialect: Dialect) -> String {
    format!(
        "{}, {}",
        dialect.order("o.start_time", Direction::Desc),
        dialect.order("o.id", Direction::Desc)
    )
}

/// The WHERE of `GET /sessions` (alias `s`).
pub(super) fn session_list(project_id: &str, query: &SessionQuery) -> Filter {
    let mut filter = Filter::new("s.project_id", project_id);
    filter.range("s.created_at", query.from_timestamp, query.to_timestamp);
    filter.any("s.environment", &query.environments);
    filter
}

/// The WHERE of the score lists (alias `s`).
pub(super) fn score_list(
    dialect: Dialect,
    project_id: &str,
    query: &ScoreQuery,
    page: &Pagination,
) -> Filter {
    let mut filter = Filter::new("s.project_id", project_id);
    filter.any("s.id", &query.ids);
    filter.any("s.name", &query.names);
    filter.any("s.data_type", &query.data_types);
    filter.any("s.source", &query.sources);
    filter.eq("s.config_id", &query.config_id);
    filter.eq("s.queue_id", &query.queue_id);
    filter.any("s.environment", &query.environments);
    filter.any("s.trace_id", &query.trace_ids);
    filter.any("s.observation_id", &query.observation_ids);
    filter.any("s.session_id", &query.session_ids);
    filter.eq("s.dataset_run_id", &query.dataset_run_id);
    filter.range("s.timestamp", query.from_timestamp, query.to_timestamp);
    if let Some((operator, value)) = &query.value {
        let operator = match operator.as_str() {
            "<" | ">" | "<=" | ">=" | "=" | "!=" => operator.as_str(),
            _ => "=",
        };
        filter.push(format!("s.value {operator} ?"), *value);
    }
    if let Some(min) = query.value_min {
        filter.push("s.value >= ?".into(), min);
    }
    if let Some(max) = query.value_max {
        filter.push("s.value <= ?".into(), max);
    }
    if let Some(user_id) = &query.user_id {
        filter.push(
            "EXISTS (SELECT 1 FROM traces t WHERE t.project_id = s.project_id AND t.id = s.trace_id AND t.user_id = ?)"
                .into(),
            user_id.clone(),
        );
    }
    filter.tags(dialect, TagsOf::TraceOf("s"), &query.trace_tags);
    filter.keyset("s.timestamp", "s.id", page);
    filter
}

/// The rows of a metrics query: its dimensions, the row's time, then its measures (numbers).
/// `observations` names the observations table as the FROM clause reads it (SQLite adds a
/// hint). Columns are the filters' SQL, latencies turned from seconds to milliseconds.
pub(super) fn metrics_rows(
    dialect: Dialect,
    project_id: &str,
    query: &MetricsQuery,
    observations: &str,
) -> (String, Vec<SqlValue>) {
    let (alias, time) = match query.view {
        MetricsView::Traces => ("t", "t.timestamp"),
        MetricsView::Observations => ("o", "o.start_time"),
        _ => ("s", "s.timestamp"),
    };
    let column = |name: &str| match query.view {
        MetricsView::Traces => trace_expr(dialect, name, None).sql,
        MetricsView::Observations => {
            let column = match name {
                "tags" => "traceTagsList",
                other => metrics_observation_column(other),
            };
            observation_expr(dialect, column, None).sql
        }
        _ => score_expr(dialect, name).sql,
    };
    let dimension = |name: &str| match name {
        "startTimeMonth" | "timestampMonth" => dialect.calendar(time, true),
        "timestampDay" => dialect.calendar(time, false),
        other => column(other),
    };
    let measure = |name: &str| {
        let sql = match name {
            "count" => "1".to_owned(),
            "latency" | "timeToFirstToken" | "streamingLatency" => {
                format!("({} * 1000)", column(name))
            }
            "tokensPerSecond" => column("totalTokensPerSecond"),
            other => column(other),
        };
        match dialect {
            // SQLite hands back whatever type the expression has; the reader converts it.
            Dialect::Sqlite => sql,
            Dialect::Postgres => dialect.number(&sql, false),
        }
    };
    let mut columns: Vec<String> = query
        .dimensions
        .iter()
        .map(|name| dimension(name))
        .collect();
    columns.push(time.into());
    columns.extend(query.metrics.iter().map(|metric| measure(&metric.measure)));
    let mut filter = Filter::new(&format!("{alias}.project_id"), project_id);
    filter.range(time, Some(query.from), Some(query.to));
    match query.view {
        MetricsView::Traces | MetricsView::Observations => {}
        MetricsView::ScoresNumeric => filter
            .clauses
            .push("s.data_type IN ('NUMERIC', 'BOOLEAN')".into()),
        MetricsView::ScoresBoolean => filter.clauses.push("s.data_type = 'BOOLEAN'".into()),
        MetricsView::ScoresCategorical => filter.clauses.push("s.data_type = 'CATEGORICAL'".into()),
    }
    filter.extend(metrics_conditions(dialect, query.view, &query.conditions));
    let table = match query.view {
        MetricsView::Traces => "traces t",
        MetricsView::Observations => observations,
        _ => "scores s",
    };
    (
        format!(
            "SELECT {} FROM {table} WHERE {}",
            columns.join(", "),
            filter.sql()
        ),
        filter.values,
    )
}

/// A metrics query's filters on its view.
pub(super) fn metrics_conditions(
    dialect: Dialect,
    view: MetricsView,
    conditions: &[Condition],
) -> Vec<Clause> {
    match view {
        MetricsView::Traces => trace_conditions(dialect, conditions),
        MetricsView::Observations => metrics_observation_conditions(dialect, conditions),
        _ => metrics_score_conditions(dialect, conditions),
    }
}

/// A metrics dimension's value as the answer shows it: tags as a list (the aggregator counts
/// the row under each), the root flag as a boolean.
fn metric_dimension(name: &str, value: SqlValue) -> serde_json::Value {
    use serde_json::Value;
    match (name, value) {
        (_, SqlValue::Null) => Value::Null,
        ("tags", SqlValue::Text(text)) => serde_json::from_str(&text).unwrap_or(Value::Null),
        ("isRootObservation", SqlValue::Integer(flag)) => Value::Bool(flag != 0),
        (_, SqlValue::Integer(number)) => Value::from(number),
        (_, SqlValue::Real(number)) => Value::from(number),
        (_, SqlValue::Text(text)) => Value::String(text),
        (_, SqlValue::Blob(_)) => Value::Null,
    }
}

/// A measure's value as a number.
fn metric_measure(value: SqlValue) -> Option<f64> {
    match value {
        SqlValue::Integer(number) => Some(number as f64),
        SqlValue::Real(number) => Some(number),
        SqlValue::Text(text) => text.trim().parse().ok(),
        SqlValue::Null | SqlValue::Blob(_) => None,
    }
}

/// Feeds a metrics query's rows (as [`metrics_rows`] selects them) to an aggregator: the one
/// loop both stores run.
pub(super) fn aggregate<E>(
    query: &MetricsQuery,
    rows: impl IntoIterator<Item = Result<Vec<SqlValue>, E>>,
) -> Result<Vec<crate::JsonMap>, E> {
    let mut aggregator = metrics::Aggregator::new(query);
    for row in rows {
        let mut row = row?.into_iter();
        let dimensions = query
            .dimensions
            .iter()
            .map(|name| metric_dimension(name, row.next().unwrap_or(SqlValue::Null)))
            .collect();
        let time = match row.next() {
            Some(SqlValue::Integer(time)) => time,
            _ => continue,
        };
        let measures = row.map(metric_measure).collect();
        aggregator.add(metrics::MetricRow {
            dimensions,
            time,
            measures,
        });
    }
    Ok(aggregator.finish())
}

/// `sql` with its `?` placeholders numbered for PostgreSQL (`$1`, `$2`, …), each cast to its
/// value's type so the server infers exactly the type the value is bound as. Placeholders
/// inside quoted literals are left alone.
pub(super) fn numbered(sql: &str, values: &[SqlValue]) -> String {
    let mut out = String::with_capacity(sql.len() + values.len() * 8);
    let mut in_literal = false;
    let mut next = 0;
    for character in sql.chars() {
        match character {
            '\'' => {
                in_literal = !in_literal;
                out.push(character);
            }
            '?' if !in_literal => {
                let cast = match values.get(next) {
                    Some(SqlValue::Integer(_)) => "BIGINT",
                    Some(SqlValue::Real(_)) => "DOUBLE PRECISION",
                    Some(SqlValue::Blob(_)) => "BYTEA",
                    _ => "TEXT",
                };
                next += 1;
                out.push_str(&format!("(${next}::{cast})"));
            }
            _ => out.push(character),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_and_typed_outside_literals() {
        let values = [
            SqlValue::Text("p".into()),
            SqlValue::Integer(3),
            SqlValue::Real(0.5),
        ];
        assert_eq!(
            numbered("a = ? AND b LIKE '?%' AND c > ? AND d < ?", &values),
            "a = ($1::TEXT) AND b LIKE '?%' AND c > ($2::BIGINT) AND d < ($3::DOUBLE PRECISION)"
        );
    }

    #[test]
    fn json_numbers_are_cast_safely_on_postgres_only() {
        let metadata = metadata(Dialect::Postgres, "t", Some("k"));
        let (sql, params) = clause(
            Dialect::Postgres,
            &metadata,
            &Test::Number(super::super::filter::Comparison::Greater, 1.0),
        );
        // The key is bound once: two placeholders outside literals.
        let numbered = numbered(&sql, &params);
        assert!(
            numbered.contains("$2") && !numbered.contains("$3"),
            "{numbered}"
        );
        assert!(sql.contains("CASE WHEN"), "{sql}");
        assert_eq!(
            params,
            vec![SqlValue::Text("k".into()), SqlValue::Real(1.0)]
        );
        let (sql, _) = clause(
            Dialect::Sqlite,
            &metadata,
            &Test::Number(super::super::filter::Comparison::Greater, 1.0),
        );
        assert!(!sql.contains("CASE WHEN"), "{sql}");
    }
}
