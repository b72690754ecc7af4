//! The storage contract: every `Store` implementation must pass these checks. Each check takes a
//! fresh store; `conformance!` instantiates them per implementation (SQLite, and PostgreSQL on
//! the server `scripts/postgres.sh` starts: those run with `-- --ignored`).

mod common;

use std::sync::Arc;

use axion_model::{Io, JsonText};
use axion_server::ingest::{Upsert, WriteBatch};
use axion_server::store::*;
use serde_json::{json, Value};

fn upsert(body: Value) -> Upsert {
    let patch = body.as_object().unwrap().clone();
    Upsert::new(patch["id"].as_str().unwrap().to_owned(), patch)
}

fn traces(items: Vec<Value>) -> WriteBatch {
    WriteBatch {
        traces: items.into_iter().map(upsert).collect(),
        ..WriteBatch::default()
    }
}

const P: &str = "project-a";

fn offset(limit: u32) -> Pagination {
    Pagination::Offset { page: 1, limit }
}

fn ids<T>(items: &[T], body: impl Fn(&T) -> &axion_server::JsonMap) -> Vec<String> {
    items
        .iter()
        .map(|item| body(item)["id"].as_str().unwrap().to_owned())
        .collect()
}

fn writes_merge_and_read_back(store: &dyn Store) {
    store.write(P, traces(vec![json!({"id": "t1", "timestamp": "2024-01-01T00:00:05Z", "tags": ["b"], "name": "first"})])).unwrap();
    store.write(P, traces(vec![json!({"id": "t1", "timestamp": "2024-01-01T00:00:01Z", "tags": ["a"], "userId": "u"})])).unwrap();
    let trace = store.trace(P, "t1").unwrap().unwrap();
    assert_eq!(trace.body["tags"], json!(["a", "b"]));
    assert_eq!(trace.body["name"], "first");
    assert_eq!(trace.body["userId"], "u");
    assert_eq!(
        trace.body["timestamp"], "2024-01-01T00:00:01Z",
        "the earliest timestamp wins"
    );
    assert!(
        store.trace("project-b", "t1").unwrap().is_none(),
        "projects are isolated"
    );
    // The merged tags are the ones filters see.
    for tags in [vec!["a"], vec!["b"], vec!["a", "b"]] {
        let query = TraceQuery {
            tags: tags.iter().map(|tag| tag.to_string()).collect(),
            ..TraceQuery::default()
        };
        let page = store.list_traces(P, &query, &offset(10)).unwrap();
        assert_eq!(ids(&page.items, |t| &t.body), ["t1"], "tags {tags:?}");
    }
}

/// Input and output carried as JSON text beside the patch (as OTLP ingest sends them): stored
/// as they came, folded and merged like any field (later wins), read back as JSON.
fn io_text_is_stored_folded_and_merged(store: &dyn Store) {
    let text = |t: &str| Some(JsonText::parse(t).unwrap());
    let with_io = |body: Value, input: &str, output: Option<&str>| {
        let mut upsert = upsert(body);
        upsert.io = Io {
            input: text(input),
            output: output.and_then(text),
            from_observation: None,
        };
        upsert
    };
    let batch = WriteBatch {
        traces: vec![
            with_io(json!({"id": "t1", "name": "n"}), r#"{"q": "first"}"#, None),
            with_io(json!({"id": "t1"}), r#"{"q": "second"}"#, Some("[1, 2]")),
        ],
        observations: vec![with_io(
            json!({"id": "o1", "traceId": "t1", "startTime": "2024-01-01T00:00:00Z", "input": {"ignored": true}}),
            r#"  {"messages": [{"role": "user", "content": "hi \u00e9"}]} "#,
            Some(r#""done""#),
        )],
        ..WriteBatch::default()
    };
    store.write(P, batch).unwrap();
    let trace = store.trace(P, "t1").unwrap().unwrap();
    assert_eq!(
        trace.body["input"],
        json!({"q": "second"}),
        "folded: later wins"
    );
    assert_eq!(trace.body["output"], json!([1, 2]));
    assert_eq!(trace.body["name"], "n");
    let observation = store.observation(P, "o1").unwrap().unwrap();
    assert_eq!(
        observation.body["input"],
        json!({"messages": [{"role": "user", "content": "hi é"}]}),
        "the carried text wins over a body field"
    );
    assert_eq!(observation.body["output"], "done");

    // An existing record: the stored body is merged, the new text replaces only what it has.
    store
        .write(
            P,
            WriteBatch {
                traces: vec![with_io(json!({"id": "t1", "userId": "u"}), "3", None)],
                ..WriteBatch::default()
            },
        )
        .unwrap();
    let trace = store.trace(P, "t1").unwrap().unwrap();
    assert_eq!(trace.body["input"], 3);
    assert_eq!(
        trace.body["output"],
        json!([1, 2]),
        "kept from the stored body"
    );
    assert_eq!(trace.body["userId"], "u");
}

/// A trace that refers to its root observation for input and output shows the observation's
/// (as it is now) wherever it has none of its own, in every read.
fn trace_io_by_reference(store: &dyn Store) {
    let text = |t: &str| Some(JsonText::parse(t).unwrap());
    let mut trace =
        upsert(json!({"id": "t1", "sessionId": "s1", "timestamp": "2024-01-01T00:00:00Z"}));
    trace.io = Io {
        output: text(r#""own output""#),
        from_observation: Some("root".into()),
        ..Io::default()
    };
    let mut root =
        upsert(json!({"id": "root", "traceId": "t1", "startTime": "2024-01-01T00:00:00Z"}));
    root.io = Io {
        input: text(r#"{"q": "long prompt"}"#),
        output: text(r#""root output""#),
        from_observation: None,
    };
    let batch = WriteBatch {
        traces: vec![trace],
        observations: vec![root],
        ..WriteBatch::default()
    };
    store.write(P, batch).unwrap();
    let check = |trace: &TraceRecord, input: Value| {
        assert_eq!(trace.body["input"], input);
        assert_eq!(trace.body["output"], "own output", "its own output wins");
    };
    check(
        &store.trace(P, "t1").unwrap().unwrap(),
        json!({"q": "long prompt"}),
    );
    let listed = store
        .list_traces(P, &TraceQuery::default(), &offset(10))
        .unwrap();
    check(&listed.items[0], json!({"q": "long prompt"}));
    let lean = TraceQuery {
        skip_borrowed_io: true,
        ..TraceQuery::default()
    };
    let listed = store.list_traces(P, &lean, &offset(10)).unwrap();
    let body = &listed.items[0].body;
    assert!(!body.contains_key("input"), "not looked up: {body:?}");
    assert_eq!(body["output"], "own output");
    check(
        &store.session_traces(P, "s1").unwrap()[0],
        json!({"q": "long prompt"}),
    );

    // The observation changes: the trace shows the change. A later trace write without a
    // reference keeps the one stored.
    let mut update = upsert(json!({"id": "root"}));
    update.io.input = text("[1]");
    let rename = upsert(json!({"id": "t1", "name": "renamed"}));
    store
        .write(
            P,
            WriteBatch {
                traces: vec![rename],
                observations: vec![update],
                ..WriteBatch::default()
            },
        )
        .unwrap();
    let trace = store.trace(P, "t1").unwrap().unwrap();
    check(&trace, json!([1]));
    assert_eq!(trace.body["name"], "renamed");
}

fn trace_filters_sort_and_count(store: &dyn Store) {
    let batch = traces(
        (0..30)
            .map(|i| {
                json!({"id": format!("t{i:02}"), "timestamp": format!("2024-01-01T00:{i:02}:00Z"),
                       "userId": if i % 2 == 0 { "even" } else { "odd" },
                       "tags": if i % 3 == 0 { json!(["x", "y"]) } else { json!(["x"]) },
                       "environment": if i < 10 { "dev" } else { "prod" }, "sessionId": format!("s{}", i % 4)})
            })
            .collect(),
    );
    store.write(P, batch).unwrap();
    let query = TraceQuery {
        user_id: Some("even".into()),
        tags: vec!["x".into(), "y".into()],
        ..TraceQuery::default()
    };
    let page = store.list_traces(P, &query, &offset(100)).unwrap();
    assert_eq!(
        ids(&page.items, |t| &t.body),
        ["t24", "t18", "t12", "t06", "t00"]
    );
    assert_eq!(page.total, Some(5));
    let query = TraceQuery {
        environments: vec!["prod".into()],
        from_timestamp: Some(1_704_067_200_000_000 + 20 * 60_000_000),
        to_timestamp: Some(1_704_067_200_000_000 + 25 * 60_000_000),
        order_by: Some(("timestamp".into(), Direction::Asc)),
        ..TraceQuery::default()
    };
    let page = store
        .list_traces(P, &query, &Pagination::Offset { page: 2, limit: 2 })
        .unwrap();
    assert_eq!(ids(&page.items, |t| &t.body), ["t22", "t23"]);
    assert_eq!(page.total, Some(5));
    let sessions = store
        .list_sessions(P, &SessionQuery::default(), &offset(10))
        .unwrap();
    assert_eq!(sessions.total, Some(4));
    assert_eq!(store.session_traces(P, "s1").unwrap().len(), 8);
}

/// Structured `filter` conditions: text matching ignores case (as Langfuse's does), numbers
/// inside metadata compare as numbers whatever JSON type holds them and never fail the query on
/// a value that is no number, and a NUL in a client's text neither fails a write nor a filter.
fn structured_filter_conditions(store: &dyn Store) {
    let batch = WriteBatch {
        traces: vec![
            upsert(
                json!({"id": "a", "timestamp": "2024-01-01T00:00:00Z", "name": "Chat Bot",
                          "metadata": {"score": 5, "label": "high", "flag": true}, "tags": ["x"]}),
            ),
            upsert(
                json!({"id": "b", "timestamp": "2024-01-01T00:01:00Z", "name": "chat-helper",
                          "metadata": {"score": "7"}}),
            ),
            upsert(
                json!({"id": "c", "timestamp": "2024-01-01T00:02:00Z", "name": "other\u{0}x",
                          "userId": "nul\u{0}user", "metadata": {"score": "abc"}, "tags": ["y"]}),
            ),
        ],
        observations: vec![upsert(
            json!({"id": "a-gen", "traceId": "a", "type": "GENERATION",
            "name": "llm", "level": "ERROR", "startTime": "2024-01-01T00:00:00Z",
            "endTime": "2024-01-01T00:00:02Z", "metadata": {"tokens": 12}}),
        )],
        ..WriteBatch::default()
    };
    store.write(P, batch).unwrap();
    let traces_where = |filter: Value| {
        let query = TraceQuery {
            conditions: filter::parse(&filter.to_string(), filter::TRACE_COLUMNS).unwrap(),
            order_by: Some(("timestamp".into(), Direction::Asc)),
            ..TraceQuery::default()
        };
        let page = store.list_traces(P, &query, &offset(10)).unwrap();
        assert_eq!(page.total, Some(page.items.len() as u64));
        ids(&page.items, |t| &t.body)
    };
    assert_eq!(
        traces_where(
            json!([{"type": "string", "column": "name", "operator": "contains", "value": "CHAT"}])
        ),
        ["a", "b"]
    );
    assert_eq!(
        traces_where(
            json!([{"type": "string", "column": "name", "operator": "starts with", "value": "chat b"}])
        ),
        ["a"]
    );
    assert_eq!(
        traces_where(
            json!([{"type": "numberObject", "column": "metadata", "key": "score", "operator": ">", "value": 4}])
        ),
        ["a", "b"]
    );
    assert_eq!(
        traces_where(
            json!([{"type": "stringObject", "column": "metadata", "key": "label", "operator": "=", "value": "high"}])
        ),
        ["a"]
    );
    assert_eq!(
        traces_where(
            json!([{"type": "booleanObject", "column": "metadata", "key": "flag", "operator": "=", "value": true}])
        ),
        ["a"]
    );
    assert_eq!(
        traces_where(
            json!([{"type": "booleanObject", "column": "metadata", "key": "flag", "operator": "<>", "value": true}])
        ),
        ["b", "c"]
    );
    assert_eq!(
        traces_where(
            json!([{"type": "arrayOptions", "column": "tags", "operator": "none of", "value": ["x"]}])
        ),
        ["b", "c"]
    );
    assert_eq!(
        traces_where(
            json!([{"type": "null", "column": "userId", "operator": "is not null", "value": ""}])
        ),
        ["c"]
    );
    assert_eq!(
        traces_where(
            json!([{"type": "string", "column": "userId", "operator": "=", "value": "nul\u{0}user"}])
        ),
        ["c"]
    );
    assert_eq!(
        traces_where(
            json!([{"type": "stringOptions", "column": "level", "operator": "any of", "value": ["ERROR"]},
                           {"type": "number", "column": "latency", "operator": ">=", "value": 2}])
        ),
        ["a"]
    );
    let observations_where = |filter: Value| {
        let query = ObservationQuery {
            conditions: filter::parse(&filter.to_string(), filter::OBSERVATION_COLUMNS).unwrap(),
            ..ObservationQuery::default()
        };
        let page = store.list_observations(P, &query, &offset(10)).unwrap();
        ids(&page.items, |o| &o.body)
    };
    assert_eq!(
        observations_where(
            json!([{"type": "numberObject", "column": "metadata", "key": "tokens", "operator": "=", "value": 12},
                                 {"type": "arrayOptions", "column": "traceTags", "operator": "any of", "value": ["x"]},
                                 {"type": "string", "column": "traceName", "operator": "ends with", "value": "BOT"}])
        ),
        ["a-gen"]
    );
}

fn observations_cost_metrics_and_cascade(store: &dyn Store) {
    let batch = WriteBatch {
        traces: vec![upsert(
            json!({"id": "t", "timestamp": "2024-01-01T00:00:00Z"}),
        )],
        observations: vec![
            upsert(
                json!({"id": "root", "traceId": "t", "type": "SPAN", "startTime": "2024-01-01T00:00:00Z", "endTime": "2024-01-01T00:00:03Z"}),
            ),
            upsert(
                json!({"id": "gen", "traceId": "t", "parentObservationId": "root", "type": "GENERATION",
                          "startTime": "2024-01-01T00:00:01Z", "endTime": "2024-01-01T00:00:02Z",
                          "model": "gpt-4o", "usageDetails": {"input": 1000, "output": 100}}),
            ),
        ],
        scores: vec![upsert(
            json!({"id": "sc", "traceId": "t", "name": "q", "value": 1.0, "dataType": "NUMERIC",
                                   "source": "API", "timestamp": "2024-01-01T00:00:04Z", "environment": "default"}),
        )],
    };
    store.write(P, batch).unwrap();
    let generation = store.observation(P, "gen").unwrap().unwrap();
    assert_eq!(generation.cost["total"], 0.0035);
    assert_eq!(generation.usage["total"], 1100.0);
    let metrics = store.trace_metrics(P, &["t".into()]).unwrap();
    assert_eq!(metrics["t"].latency, 3.0);
    assert_eq!(metrics["t"].total_cost, 0.0035);
    assert_eq!(metrics["t"].score_ids, ["sc"]);
    let roots = store
        .list_observations(
            P,
            &ObservationQuery {
                is_root: Some(true),
                ..Default::default()
            },
            &offset(10),
        )
        .unwrap();
    assert_eq!(ids(&roots.items, |o| &o.body), ["root"]);
    let after = Pagination::Keyset {
        limit: 10,
        after: Some((1_704_067_201_000_000, "gen".into())),
    };
    let rest = store
        .list_observations(P, &ObservationQuery::default(), &after)
        .unwrap();
    assert_eq!(ids(&rest.items, |o| &o.body), ["root"]);
    assert_eq!(
        store
            .delete_traces(P, &["t".into(), "missing".into()])
            .unwrap(),
        1
    );
    assert!(store.observation(P, "gen").unwrap().is_none());
    assert!(store.score(P, "sc").unwrap().is_none());
    // A deleted observation's id is free again: writing it creates a new observation.
    let again = WriteBatch {
        observations: vec![upsert(
            json!({"id": "gen", "traceId": "t2", "type": "SPAN", "startTime": "2024-01-02T00:00:00Z"}),
        )],
        ..WriteBatch::default()
    };
    store.write(P, again).unwrap();
    let generation = store.observation(P, "gen").unwrap().unwrap();
    assert_eq!(generation.body["traceId"], "t2");
    assert_eq!(generation.body["type"], "SPAN");
    assert!(
        generation.body.get("model").is_none(),
        "nothing of the deleted one"
    );
}

/// Writes of one observation id in one batch, in several batches, and in two projects: one
/// observation per project, the writes merged in order.
fn observation_ids_merge_within_and_across_batches(store: &dyn Store) {
    let batch = WriteBatch {
        observations: vec![
            upsert(
                json!({"id": "o", "traceId": "t", "type": "SPAN", "name": "first", "startTime": "2024-01-01T00:00:00Z"}),
            ),
            upsert(
                json!({"id": "other", "traceId": "a", "type": "SPAN", "startTime": "2024-01-01T00:00:01Z"}),
            ),
            upsert(
                json!({"id": "o", "traceId": "t", "metadata": {"step": 2}, "endTime": "2024-01-01T00:00:05Z"}),
            ),
        ],
        ..WriteBatch::default()
    };
    store.write(P, batch).unwrap();
    let update = WriteBatch {
        observations: vec![upsert(
            json!({"id": "o", "traceId": "t", "name": "renamed", "level": "ERROR"}),
        )],
        ..WriteBatch::default()
    };
    store.write(P, update).unwrap();
    store
        .write(
            "project-b",
            WriteBatch {
                observations: vec![upsert(json!({"id": "o", "traceId": "t", "type": "EVENT", "startTime": "2024-01-01T00:00:00Z"}))],
                ..WriteBatch::default()
            },
        )
        .unwrap();
    let observation = store.observation(P, "o").unwrap().unwrap();
    assert_eq!(observation.body["name"], "renamed");
    assert_eq!(observation.body["level"], "ERROR");
    assert_eq!(observation.body["metadata"], json!({"step": 2}));
    assert_eq!(observation.body["endTime"], "2024-01-01T00:00:05Z");
    assert_eq!(observation.body["type"], "SPAN");
    let of_trace = store.trace_observations(P, "t").unwrap();
    assert_eq!(
        ids(&of_trace, |o| &o.body),
        ["o"],
        "one row for the three writes"
    );
    let other_project = store.observation("project-b", "o").unwrap().unwrap();
    assert_eq!(other_project.body["type"], "EVENT");
    assert!(store.observation(P, "other").unwrap().is_some());
    // The structured filter on ids: one, any of several, none of them, in this project only.
    let by_ids = |project: &str, test: filter::Test| {
        let query = ObservationQuery {
            conditions: vec![filter::Condition {
                column: "id".into(),
                key: None,
                test,
            }],
            ..ObservationQuery::default()
        };
        let page = store
            .list_observations(project, &query, &offset(10))
            .unwrap();
        let mut found = ids(&page.items, |o| &o.body);
        found.sort();
        found
    };
    let text = |id: &str| filter::Test::Text(filter::TextTest::Equals, id.into());
    let set = |test: filter::SetTest, ids: &[&str]| {
        filter::Test::Set(test, ids.iter().map(|id| id.to_string()).collect())
    };
    assert_eq!(by_ids(P, text("o")), ["o"]);
    assert_eq!(
        by_ids(P, set(filter::SetTest::AnyOf, &["o", "other", "missing"])),
        ["o", "other"]
    );
    assert!(by_ids(P, set(filter::SetTest::AnyOf, &[])).is_empty());
    assert_eq!(by_ids(P, set(filter::SetTest::NoneOf, &["o"])), ["other"]);
    assert_eq!(
        by_ids("project-b", set(filter::SetTest::AnyOf, &["o", "other"])),
        ["o"]
    );
}

/// A batch large enough that a store writing several rows per statement does so, with every
/// case of the small tests inside it: ids that exist, ids written twice, ids that share their
/// first bytes, rows of one trace out of order.
fn large_batch_keeps_every_row(store: &dyn Store) {
    store
        .write(
            P,
            WriteBatch {
                traces: vec![upsert(json!({"id": "t-existing", "name": "old", "timestamp": "2024-01-01T00:00:00Z"}))],
                observations: vec![upsert(
                    json!({"id": "o-existing", "traceId": "t-existing", "name": "old", "startTime": "2024-01-01T00:00:00Z"}),
                )],
                ..WriteBatch::default()
            },
        )
        .unwrap();
    let mut trace_ids: Vec<String> = (0..150).map(|i| format!("t{i:03}")).collect();
    trace_ids.extend(["shared-prefix-b".into(), "shared-prefix-a".into()]);
    let mut trace_writes: Vec<Upsert> = trace_ids
        .iter()
        .enumerate()
        .map(|(i, id)| upsert(json!({"id": id, "name": format!("trace-{i}"), "tags": ["x"], "sessionId": format!("s-{}", i / 10),
                                     "timestamp": format!("2024-01-02T00:{:02}:{:02}Z", i / 60, i % 60)})))
        .collect();
    trace_writes.push(upsert(json!({"id": "t005", "tags": ["y"]})));
    trace_writes.push(upsert(json!({"id": "t-existing", "userId": "u"})));
    let mut observation_writes = Vec::new();
    // The rows of a trace arrive last step first.
    for (i, trace_id) in trace_ids.iter().enumerate() {
        for step in (0..3).rev() {
            let mut body = json!({
                "id": format!("o-{trace_id}-{step}"), "traceId": trace_id, "name": format!("step-{step}"),
                "type": if step == 2 { "GENERATION" } else { "SPAN" },
                "startTime": format!("2024-01-02T00:{:02}:{:02}.{step:03}Z", i / 60, i % 60),
            });
            if step > 0 {
                body["parentObservationId"] = json!(format!("o-{trace_id}-0"));
            }
            observation_writes.push(upsert(body));
        }
    }
    observation_writes.push(upsert(
        json!({"id": "o-t010-1", "traceId": "t010", "level": "ERROR", "endTime": "2024-01-02T00:00:11Z"}),
    ));
    observation_writes.push(upsert(
        json!({"id": "o-existing", "traceId": "t-existing", "name": "renamed"}),
    ));
    store
        .write(
            P,
            WriteBatch {
                traces: trace_writes,
                observations: observation_writes,
                ..WriteBatch::default()
            },
        )
        .unwrap();

    for (i, trace_id) in trace_ids.iter().enumerate() {
        let trace = store.trace(P, trace_id).unwrap().unwrap();
        assert_eq!(trace.body["name"], format!("trace-{i}"));
        let tags = if trace_id == "t005" {
            json!(["x", "y"])
        } else {
            json!(["x"])
        };
        assert_eq!(trace.body["tags"], tags, "{trace_id}");
        let observations = store.trace_observations(P, trace_id).unwrap();
        let expected: Vec<String> = (0..3).map(|step| format!("o-{trace_id}-{step}")).collect();
        assert_eq!(ids(&observations, |o| &o.body), expected, "{trace_id}");
        for (step, observation) in observations.iter().enumerate() {
            assert_eq!(observation.body["name"], format!("step-{step}"));
            assert_eq!(observation.body["traceId"], trace_id.as_str());
            let parent = (step > 0).then(|| format!("o-{trace_id}-0"));
            assert_eq!(
                observation
                    .body
                    .get("parentObservationId")
                    .and_then(Value::as_str),
                parent.as_deref()
            );
            let kind = if step == 2 { "GENERATION" } else { "SPAN" };
            assert_eq!(observation.body["type"], kind);
        }
    }
    let existing = store.trace(P, "t-existing").unwrap().unwrap();
    assert_eq!(existing.body["userId"], "u");
    assert_eq!(existing.body["name"], "old");
    let session = store.session_traces(P, "s-3").unwrap();
    assert_eq!(
        ids(&session, |t| &t.body),
        (30..40).map(|i| format!("t{i:03}")).collect::<Vec<_>>()
    );
    let sessions = store
        .list_sessions(P, &SessionQuery::default(), &offset(1))
        .unwrap();
    assert_eq!(sessions.total, Some(16), "a session for every ten traces");
    let twice = store.observation(P, "o-t010-1").unwrap().unwrap();
    assert_eq!(twice.body["level"], "ERROR");
    assert_eq!(twice.body["name"], "step-1");
    assert_eq!(twice.body["endTime"], "2024-01-02T00:00:11Z");
    let renamed = store.observation(P, "o-existing").unwrap().unwrap();
    assert_eq!(renamed.body["name"], "renamed");
    let all = store
        .list_observations(P, &ObservationQuery::default(), &offset(1))
        .unwrap();
    assert_eq!(all.total, Some(3 * 152 + 1), "one row per observation id");
    let tagged = TraceQuery {
        tags: vec!["x".into()],
        ..TraceQuery::default()
    };
    let page = store.list_traces(P, &tagged, &offset(1)).unwrap();
    assert_eq!(page.total, Some(152));
}

fn sessions_start_at_their_earliest_trace(store: &dyn Store) {
    let at = |hour: u32| format!("2024-03-01T{hour:02}:00:00Z");
    let micros = |hour: i64| 1_709_251_200_000_000 + hour * 3_600_000_000;
    // One batch, its traces' starts in no order (the writer takes them by id).
    store
        .write(
            P,
            traces(
                [("a1", 10), ("a2", 9), ("a3", 11), ("a4", 8)]
                    .iter()
                    .map(|(id, hour)| json!({"id": id, "sessionId": "sx", "timestamp": at(*hour)}))
                    .collect(),
            ),
        )
        .unwrap();
    let created = |store: &dyn Store| store.session(P, "sx").unwrap().unwrap().created_at;
    assert_eq!(created(store), micros(8), "the batch's earliest trace");
    store
        .write(
            P,
            traces(vec![
                json!({"id": "b1", "sessionId": "sx", "timestamp": at(7)}),
            ]),
        )
        .unwrap();
    assert_eq!(
        created(store),
        micros(7),
        "an earlier trace moves the start back"
    );
    store
        .write(
            P,
            traces(vec![
                json!({"id": "c1", "sessionId": "sx", "timestamp": at(12)}),
            ]),
        )
        .unwrap();
    assert_eq!(created(store), micros(7), "a later one does not");
    assert_eq!(store.session_traces(P, "sx").unwrap().len(), 6);
}

fn scores_filter(store: &dyn Store) {
    let scores: Vec<Upsert> = (0..6)
        .map(|i| {
            upsert(json!({"id": format!("s{i}"), "traceId": "t", "name": if i < 3 { "a" } else { "b" },
                          "value": i as f64, "dataType": "NUMERIC", "source": "API",
                          "timestamp": format!("2024-01-01T00:00:0{i}Z"), "environment": "default"}))
        })
        .collect();
    store
        .write(
            P,
            WriteBatch {
                scores,
                ..WriteBatch::default()
            },
        )
        .unwrap();
    let query = ScoreQuery {
        names: vec!["b".into()],
        value: Some((">=".into(), 4.0)),
        ..ScoreQuery::default()
    };
    let page = store.list_scores(P, &query, &offset(10)).unwrap();
    assert_eq!(ids(&page.items, |s| &s.body), ["s5", "s4"]);
    assert!(store.delete_score(P, "s5").unwrap());
    assert!(!store.delete_score(P, "s5").unwrap());
}

/// Metrics queries over what was written: groups, sums, percentiles, time buckets, filters on
/// trace fields, tags counted per tag, scores by view; other projects and times left out.
fn metrics_group_filter_and_bucket(store: &dyn Store) {
    let generation = |id: &str, trace: &str, model: &str, start: &str, end: &str, input: u64| {
        upsert(
            json!({"id": id, "traceId": trace, "type": "GENERATION", "name": "answer", "model": model,
                      "startTime": start, "endTime": end, "usageDetails": {"input": input, "output": 10}}),
        )
    };
    let batch = WriteBatch {
        traces: vec![
            upsert(
                json!({"id": "t1", "name": "chat", "timestamp": "2024-01-01T10:00:00Z", "tags": ["a", "b"]}),
            ),
            upsert(
                json!({"id": "t2", "name": "batch", "timestamp": "2024-01-02T10:00:00Z", "tags": ["a"]}),
            ),
        ],
        observations: vec![
            generation(
                "g1",
                "t1",
                "gpt-4o",
                "2024-01-01T10:00:00Z",
                "2024-01-01T10:00:01Z",
                1000,
            ),
            generation(
                "g2",
                "t1",
                "gpt-4o",
                "2024-01-01T11:00:00Z",
                "2024-01-01T11:00:03Z",
                2000,
            ),
            generation(
                "g3",
                "t2",
                "gpt-4o-mini",
                "2024-01-02T10:00:00Z",
                "2024-01-02T10:00:02Z",
                500,
            ),
            upsert(
                json!({"id": "sp", "traceId": "t2", "type": "SPAN", "name": "retrieve",
                          "startTime": "2024-01-02T09:59:00Z", "endTime": "2024-01-02T10:00:00Z"}),
            ),
            // Outside the range.
            generation(
                "g4",
                "t2",
                "gpt-4o",
                "2024-02-01T00:00:00Z",
                "2024-02-01T00:00:01Z",
                9,
            ),
        ]
        .into_iter()
        // More outside it, so that a narrow range is a small share of the table (a store
        // may read such a range differently from one that holds most of it).
        .chain((0..12).map(|i| {
            generation(
                &format!("later-{i}"),
                "t3",
                "gpt-4o",
                "2024-03-01T00:00:00Z",
                "2024-03-01T00:00:01Z",
                1,
            )
        }))
        .collect(),
        scores: vec![
            upsert(
                json!({"id": "s1", "traceId": "t1", "observationId": "g1", "name": "quality", "value": 0.5,
                          "dataType": "NUMERIC", "source": "API", "timestamp": "2024-01-01T12:00:00Z", "environment": "default"}),
            ),
            upsert(
                json!({"id": "s2", "traceId": "t2", "name": "quality", "value": 1.0,
                          "dataType": "NUMERIC", "source": "EVAL", "timestamp": "2024-01-02T12:00:00Z", "environment": "default"}),
            ),
            upsert(
                json!({"id": "s3", "traceId": "t2", "name": "ok", "value": 1.0,
                          "dataType": "BOOLEAN", "source": "EVAL", "timestamp": "2024-01-02T12:00:00Z", "environment": "default"}),
            ),
            upsert(
                json!({"id": "s4", "traceId": "t2", "name": "topic", "stringValue": "billing",
                          "dataType": "CATEGORICAL", "source": "ANNOTATION", "timestamp": "2024-01-02T12:00:00Z", "environment": "default"}),
            ),
        ],
    };
    store.write(P, batch).unwrap();
    store
        .write(
            "project-b",
            WriteBatch {
                observations: vec![generation(
                    "x",
                    "tx",
                    "gpt-4o",
                    "2024-01-01T10:00:00Z",
                    "2024-01-01T10:00:01Z",
                    7,
                )],
                ..WriteBatch::default()
            },
        )
        .unwrap();
    let between = |body: Value, from: &str, to: &str| {
        let mut body = body;
        body["fromTimestamp"] = json!(from);
        body["toTimestamp"] = json!(to);
        let query = metrics::parse(&body.to_string()).unwrap();
        store.metrics(P, &query).unwrap()
    };
    let run = |body: Value| between(body, "2024-01-01T00:00:00Z", "2024-01-31T00:00:00Z");
    let narrow = between(
        json!({"view": "observations", "dimensions": [{"field": "name"}],
               "metrics": [{"measure": "inputTokens", "aggregation": "sum"}]}),
        "2024-01-01T10:30:00Z",
        "2024-01-01T11:30:00Z",
    );
    assert_eq!(narrow.len(), 1, "{narrow:?}");
    assert_eq!(
        (
            narrow[0]["name"].as_str(),
            narrow[0]["sum_inputTokens"].as_f64()
        ),
        (Some("answer"), Some(2000.0))
    );

    let by_model = run(
        json!({"view": "observations", "dimensions": [{"field": "providedModelName"}],
        "metrics": [{"measure": "count", "aggregation": "count"}, {"measure": "inputTokens", "aggregation": "sum"},
                    {"measure": "latency", "aggregation": "max"}, {"measure": "totalCost", "aggregation": "sum"}],
        "filters": [{"column": "type", "operator": "any of", "value": ["GENERATION"], "type": "stringOptions"}]}),
    );
    assert_eq!(by_model.len(), 2, "{by_model:?}");
    assert_eq!(by_model[0]["providedModelName"], "gpt-4o");
    assert_eq!(by_model[0]["count_count"], 2);
    assert_eq!(by_model[0]["sum_inputTokens"], 3000.0);
    assert_eq!(by_model[0]["max_latency"], 3000.0);
    assert!(by_model[0]["sum_totalCost"].as_f64().unwrap() > 0.0);
    assert_eq!(
        (
            by_model[1]["providedModelName"].as_str(),
            by_model[1]["count_count"].as_u64()
        ),
        (Some("gpt-4o-mini"), Some(1))
    );

    let daily = run(
        json!({"view": "observations", "metrics": [{"measure": "count", "aggregation": "count"}],
        "timeDimension": {"granularity": "day"}}),
    );
    let days: Vec<(String, u64)> = daily
        .iter()
        .map(|row| {
            (
                row["time_dimension"].as_str().unwrap().to_owned(),
                row["count_count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        days,
        [
            ("2024-01-01T00:00:00.000Z".into(), 2),
            ("2024-01-02T00:00:00.000Z".into(), 2)
        ]
    );

    let per_tag = run(
        json!({"view": "observations", "dimensions": [{"field": "tags"}],
        "metrics": [{"measure": "count", "aggregation": "count"}],
        "filters": [{"column": "traceName", "operator": "=", "value": "chat", "type": "string"}]}),
    );
    let tags: Vec<(&str, u64)> = per_tag
        .iter()
        .map(|row| {
            (
                row["tags"].as_str().unwrap(),
                row["count_count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(tags, [("a", 2), ("b", 2)]);

    let p50 = run(
        json!({"view": "observations", "dimensions": [{"field": "traceName"}],
        "metrics": [{"measure": "latency", "aggregation": "p50"}], "orderBy": [{"field": "traceName", "direction": "desc"}]}),
    );
    assert_eq!(p50[0]["traceName"], "chat");
    assert_eq!(p50[0]["p50_latency"], 2000.0);

    // The legacy endpoint's traces view: per trace name, with its observations' and scores' aggregates.
    let mut traces_query = json!({"view": "traces", "dimensions": [{"field": "name"}],
        "metrics": [{"measure": "count", "aggregation": "count"}, {"measure": "observationsCount", "aggregation": "sum"},
                    {"measure": "scoresCount", "aggregation": "sum"}, {"measure": "totalTokens", "aggregation": "sum"},
                    {"measure": "latency", "aggregation": "max"}],
        "filters": [{"column": "tags", "operator": "any of", "value": ["a"], "type": "arrayOptions"}]});
    traces_query["fromTimestamp"] = json!("2024-01-01T00:00:00Z");
    traces_query["toTimestamp"] = json!("2024-01-31T00:00:00Z");
    let per_trace = store
        .metrics(
            P,
            &metrics::parse_legacy(&traces_query.to_string()).unwrap(),
        )
        .unwrap();
    let per_trace: Vec<(&str, f64, f64, f64)> = per_trace
        .iter()
        .map(|row| {
            (
                row["name"].as_str().unwrap(),
                row["sum_observationsCount"].as_f64().unwrap(),
                row["sum_scoresCount"].as_f64().unwrap(),
                row["sum_totalTokens"].as_f64().unwrap(),
            )
        })
        .collect();
    // A trace's aggregates take all its observations, g4 (outside the range) included.
    assert_eq!(
        per_trace,
        [("batch", 3.0, 3.0, 529.0), ("chat", 2.0, 1.0, 3020.0)]
    );

    let numeric = run(
        json!({"view": "scores-numeric", "dimensions": [{"field": "name"}, {"field": "observationName"}],
        "metrics": [{"measure": "value", "aggregation": "avg"}, {"measure": "count", "aggregation": "count"}],
        "orderBy": [{"field": "count_count", "direction": "desc"}]}),
    );
    let numeric: Vec<(&str, Value, u64)> = numeric
        .iter()
        .map(|row| {
            (
                row["name"].as_str().unwrap(),
                row["observationName"].clone(),
                row["count_count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(numeric.len(), 3, "{numeric:?}");
    assert!(numeric.contains(&("quality", json!("answer"), 1)));
    assert!(numeric.contains(&("quality", Value::Null, 1)));
    assert!(numeric.contains(&("ok", Value::Null, 1)));
    let boolean = run(
        json!({"view": "scores-boolean", "dimensions": [{"field": "booleanValue"}],
        "metrics": [{"measure": "count", "aggregation": "count"}]}),
    );
    assert_eq!(
        (boolean.len(), boolean[0]["booleanValue"].as_str()),
        (1, Some("true"))
    );
    let categorical = run(
        json!({"view": "scores-categorical", "dimensions": [{"field": "stringValue"}],
        "metrics": [{"measure": "count", "aggregation": "count"}],
        "filters": [{"column": "source", "operator": "any of", "value": ["ANNOTATION"], "type": "stringOptions"}]}),
    );
    assert_eq!(categorical.len(), 1);
    assert_eq!(
        (
            categorical[0]["stringValue"].as_str(),
            categorical[0]["count_count"].as_u64()
        ),
        (Some("billing"), Some(1))
    );
}

fn keys_and_projects(store: &dyn Store) {
    let project = store.create_project("demo").unwrap();
    let key = ApiKey {
        public_key: "pk".into(),
        secret_hash: "hash".into(),
        project_id: project.id.clone(),
    };
    store.put_api_key(&key).unwrap();
    assert_eq!(store.api_key("pk").unwrap(), Some(key));
    assert_eq!(store.api_key_count().unwrap(), 1);
    assert!(store.projects().unwrap().iter().any(|p| p.id == project.id));
}

macro_rules! conformance {
    ($module:ident, $make:expr $(, #[$attr:meta])*) => {
        mod $module {
            use super::*;
            #[test]
            $(#[$attr])*
            fn writes_merge_and_read_back() {
                let (store, _guard) = $make;
                super::writes_merge_and_read_back(&store);
            }
            #[test]
            $(#[$attr])*
            fn io_text_is_stored_folded_and_merged() {
                let (store, _guard) = $make;
                super::io_text_is_stored_folded_and_merged(&store);
            }
            #[test]
            $(#[$attr])*
            fn trace_io_by_reference() {
                let (store, _guard) = $make;
                super::trace_io_by_reference(&store);
            }
            #[test]
            $(#[$attr])*
            fn trace_filters_sort_and_count() {
                let (store, _guard) = $make;
                super::trace_filters_sort_and_count(&store);
            }
            #[test]
            $(#[$attr])*
            fn structured_filter_conditions() {
                let (store, _guard) = $make;
                super::structured_filter_conditions(&store);
            }
            #[test]
            $(#[$attr])*
            fn observations_cost_metrics_and_cascade() {
                let (store, _guard) = $make;
                super::observations_cost_metrics_and_cascade(&store);
            }
            #[test]
            $(#[$attr])*
            fn observation_ids_merge_within_and_across_batches() {
                let (store, _guard) = $make;
                super::observation_ids_merge_within_and_across_batches(&store);
            }
            #[test]
            $(#[$attr])*
            fn large_batch_keeps_every_row() {
                let (store, _guard) = $make;
                super::large_batch_keeps_every_row(&store);
            }
            #[test]
            $(#[$attr])*
            fn sessions_start_at_their_earliest_trace() {
                let (store, _guard) = $make;
                super::sessions_start_at_their_earliest_trace(&store);
            }
            #[test]
            $(#[$attr])*
            fn scores_filter() {
                let (store, _guard) = $make;
                super::scores_filter(&store);
            }
            #[test]
            $(#[$attr])*
            fn metrics_group_filter_and_bucket() {
                let (store, _guard) = $make;
                super::metrics_group_filter_and_bucket(&store);
            }
            #[test]
            $(#[$attr])*
            fn keys_and_projects() {
                let (store, _guard) = $make;
                super::keys_and_projects(&store);
            }
        }
    };
}

fn sqlite() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with_default_prices(dir.path().join("axion.db")).unwrap();
    (store, dir)
}

conformance!(sqlite_store, sqlite());

fn postgres() -> (PostgresStore, common::TestDatabase) {
    let database = common::TestDatabase::create();
    let store = PostgresStore::connect_with_default_prices(&database.url).unwrap();
    (store, database)
}

conformance!(
    postgres_store,
    postgres(),
    #[ignore = "needs PostgreSQL (AXION_TEST_POSTGRES): scripts/test.sh starts one"]
);

#[test]
#[ignore = "needs PostgreSQL (AXION_TEST_POSTGRES): scripts/test.sh starts one"]
fn postgres_schema_is_created_once_and_data_survives_a_reconnect() {
    let (store, database) = postgres();
    write_then_close(&store);
    // Two servers starting at once on one database: the migration runs once.
    let reconnects: Vec<_> = (0..2)
        .map(|_| {
            let url = database.url.clone();
            std::thread::spawn(move || PostgresStore::connect_with_default_prices(&url).unwrap())
        })
        .collect();
    for reconnect in reconnects {
        let store = reconnect.join().unwrap();
        assert!(store.trace(P, "durable").unwrap().is_some());
        assert!(store.trace(P, "late").unwrap().is_none());
    }
}

#[test]
#[ignore = "needs PostgreSQL (AXION_TEST_POSTGRES): scripts/test.sh starts one"]
fn postgres_concurrent_writes_of_the_same_ids_all_merge() {
    // Several servers (threads here) write the same traces and observations at once, each
    // adding a metadata key of its own: every key must end up in every record.
    let (store, _database) = postgres();
    let store = Arc::new(store);
    let writers: Vec<_> = (0..6)
        .map(|writer| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for round in 0..10 {
                    let key = format!("w{writer}r{round}");
                    let mut batch = WriteBatch::default();
                    for trace in 0..5 {
                        batch.traces.push(upsert(json!({
                            "id": format!("t{trace}"),
                            "timestamp": "2024-01-01T00:00:00Z",
                            "sessionId": "s",
                            "metadata": {key.clone(): true},
                        })));
                        batch.observations.push(upsert(json!({
                            "id": format!("o{trace}"),
                            "traceId": format!("t{trace}"),
                            "type": "SPAN",
                            "startTime": "2024-01-01T00:00:00Z",
                            "metadata": {key.clone(): true},
                        })));
                    }
                    store.write(P, batch).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    for trace in 0..5 {
        let record = store.trace(P, &format!("t{trace}")).unwrap().unwrap();
        assert_eq!(
            record.body["metadata"].as_object().unwrap().len(),
            60,
            "t{trace}"
        );
        let observation = store.observation(P, &format!("o{trace}")).unwrap().unwrap();
        assert_eq!(
            observation.body["metadata"].as_object().unwrap().len(),
            60,
            "o{trace}"
        );
    }
    let sessions = store
        .list_sessions(P, &SessionQuery::default(), &offset(10))
        .unwrap();
    assert_eq!(sessions.total, Some(1));
}

#[test]
fn sqlite_acknowledged_writes_survive_a_restart() {
    let (store, dir) = sqlite();
    write_then_close(&store);
    drop(store);
    let reopened = SqliteStore::open_with_default_prices(dir.path().join("axion.db")).unwrap();
    assert!(reopened.trace(P, "durable").unwrap().is_some());
    assert!(reopened.trace(P, "late").unwrap().is_none());
}

/// Writes the trace `durable`, closes the store, and checks that a later write (of `late`) is
/// refused as closed.
fn write_then_close(store: &dyn Store) {
    store
        .write(
            P,
            traces(vec![
                json!({"id": "durable", "timestamp": "2024-01-01T00:00:00Z"}),
            ]),
        )
        .unwrap();
    store.close();
    assert!(matches!(
        store.write(P, traces(vec![json!({"id": "late"})])),
        Err(StoreError::Closed)
    ));
}

#[test]
fn concurrent_writers_are_group_committed_without_loss() {
    let (store, _dir) = sqlite();
    let store = Arc::new(store);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..50 {
                    store.write(P, traces(vec![json!({"id": format!("t{t}-{i}"), "timestamp": "2024-01-01T00:00:00Z"})])).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let page = store
        .list_traces(P, &TraceQuery::default(), &offset(1))
        .unwrap();
    assert_eq!(page.total, Some(400));
}

/// Every record of a store, comparable across stores: each project's traces (as stored, with
/// the observation they show input and output from), observations (with what was derived
/// from them) and scores by id, its sessions and keys. `createdAt`/`updatedAt` are the copy's.
fn contents(store: &dyn Store) -> Value {
    let mut projects = Vec::new();
    for project in store.projects().unwrap() {
        let mut kinds = serde_json::Map::new();
        for (name, kind) in [
            ("traces", RecordKind::Traces),
            ("observations", RecordKind::Observations),
            ("scores", RecordKind::Scores),
        ] {
            let mut records = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = store
                    .export(&project.id, kind, cursor.as_deref(), 700)
                    .unwrap();
                records.extend(page.upserts.into_iter().map(|upsert| {
                    json!({"id": upsert.id, "body": upsert.patch, "io": upsert.io.from_observation})
                }));
                match page.cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            records.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
            kinds.insert(name.into(), Value::Array(records));
        }
        let observation = store.observation(&project.id, "o-0").unwrap();
        let derived = observation.map(|o| json!([o.usage, o.cost, o.model_id]));
        let trace = store.trace(&project.id, "t-0").unwrap().map(|t| t.body);
        let sessions: Vec<Value> = store
            .list_sessions(&project.id, &SessionQuery::default(), &offset(100))
            .unwrap()
            .items
            .into_iter()
            .map(|s| json!([s.id, s.environment, s.created_at]))
            .collect();
        projects.push(
            json!({"project": [project.id, project.name, project.created_at],
                             "records": kinds, "derived": derived, "trace": trace,
                             "sessions": sessions}),
        );
    }
    let keys: Vec<Value> = store
        .api_keys()
        .unwrap()
        .into_iter()
        .map(|k| json!([k.public_key, k.secret_hash, k.project_id]))
        .collect();
    json!({"projects": projects, "keys": keys})
}

#[test]
#[ignore = "needs PostgreSQL (AXION_TEST_POSTGRES): scripts/test.sh starts one"]
fn copy_from_sqlite_to_postgres_and_back_keeps_every_record() {
    let (sqlite_store, _dir) = sqlite();
    sqlite_store
        .put_project(&Project {
            id: P.into(),
            name: "first".into(),
            created_at: 0,
        })
        .unwrap();
    let second = sqlite_store.create_project("second").unwrap();
    for (project, prefix_count) in [(P.to_owned(), 2_100), (second.id.clone(), 3)] {
        sqlite_store
            .put_api_key(&ApiKey {
                public_key: format!("pk-{project}"),
                secret_hash: "hash".into(),
                project_id: project.clone(),
            })
            .unwrap();
        let mut batch = WriteBatch::default();
        for i in 0..prefix_count {
            let mut trace = upsert(json!({"id": format!("t-{i}"), "name": "chat",
                "timestamp": "2024-01-01T00:00:00Z", "sessionId": format!("s-{}", i % 7),
                "tags": ["a", "b"], "metadata": {"i": i}}));
            trace.io.from_observation = Some(format!("o-{i}"));
            batch.traces.push(trace);
            let mut observation =
                upsert(json!({"id": format!("o-{i}"), "traceId": format!("t-{i}"),
                "type": "GENERATION", "model": "gpt-4o-mini", "startTime": "2024-01-01T00:00:00Z",
                "endTime": "2024-01-01T00:00:01Z", "usageDetails": {"input": 10, "output": 5}}));
            observation.io.input = Some(JsonText::parse(r#"{"q": "hi"}"#).unwrap());
            batch.observations.push(observation);
            if i % 2 == 0 {
                batch.scores.push(upsert(
                    json!({"id": format!("sc-{i}"), "traceId": format!("t-{i}"),
                    "name": "quality", "value": 0.5, "dataType": "NUMERIC",
                    "timestamp": "2024-01-01T00:00:02Z"}),
                ));
            }
        }
        sqlite_store.write(&project, batch).unwrap();
    }
    let original = contents(&sqlite_store);
    assert_eq!(
        original["projects"][0]["records"]["traces"]
            .as_array()
            .unwrap()
            .len(),
        2_100
    );
    assert_eq!(
        original["projects"][0]["trace"]["input"],
        json!({"q": "hi"}),
        "the trace shows its observation's input"
    );

    let (postgres_store, _database) = postgres();
    let report = copy(&sqlite_store, &postgres_store, |_| {}).unwrap();
    assert_eq!(
        report,
        CopyReport {
            projects: 2,
            keys: 2,
            traces: 2_103,
            observations: 2_103,
            scores: 1_052,
        }
    );
    assert_eq!(contents(&postgres_store), original, "SQLite → PostgreSQL");
    // Again: nothing changes.
    copy(&sqlite_store, &postgres_store, |_| {}).unwrap();
    assert_eq!(
        contents(&postgres_store),
        original,
        "a second copy merges in nothing new"
    );

    let (back, _back_dir) = sqlite();
    copy(&postgres_store, &back, |_| {}).unwrap();
    assert_eq!(contents(&back), original, "PostgreSQL → SQLite");
}

/// A connection of its own to the test server's admin database, to watch a store's.
fn admin() -> ::postgres::Client {
    let admin = std::env::var(common::POSTGRES_ENV).unwrap();
    ::postgres::Client::connect(&admin, ::postgres::NoTls).unwrap()
}

/// Whether the store's connection named `application` is encrypted (`pg_stat_ssl`).
fn encrypted(application: &str) -> bool {
    let row = admin()
        .query_one(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.application_name = $1",
            &[&application],
        )
        .unwrap();
    row.get(0)
}

#[test]
#[ignore = "needs PostgreSQL with TLS (AXION_TEST_POSTGRES, AXION_TEST_POSTGRES_CA): scripts/test.sh starts one"]
fn postgres_connections_are_encrypted_and_checked_as_sslmode_asks() {
    let database = common::TestDatabase::create();
    let ca = std::env::var("AXION_TEST_POSTGRES_CA").expect("AXION_TEST_POSTGRES_CA");
    let connect = |url: String| PostgresStore::connect_with_default_prices(&url);
    let with = |options: &str| format!("{}?{options}", database.url);
    for (name, options, expect_tls) in [
        ("tls_default", String::new(), true),
        ("tls_disable", "sslmode=disable".to_owned(), false),
        ("tls_require", "sslmode=require".to_owned(), true),
        (
            "tls_verify_full",
            format!("sslmode=verify-full&sslrootcert={ca}"),
            true,
        ),
    ] {
        let store = connect(with(&format!("{options}&application_name={name}"))).unwrap();
        store
            .write(
                P,
                traces(vec![
                    json!({"id": name, "timestamp": "2024-01-01T00:00:00Z"}),
                ]),
            )
            .unwrap();
        assert_eq!(encrypted(name), expect_tls, "{name}");
        assert!(store.trace(P, name).unwrap().is_some());
    }
    // Checked: an unknown CA fails; a CA-checked connection to a name the certificate does not
    // carry passes verify-ca and fails verify-full.
    let error = connect(with("sslmode=verify-full"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("UnknownIssuer"), "{error}");
    let by_name = database.url.replace("127.0.0.1", "localhost");
    let by_name = |options: &str| format!("{by_name}?{options}&sslrootcert={ca}");
    assert!(connect(by_name("sslmode=verify-ca")).is_ok());
    let error = connect(by_name("sslmode=verify-full"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("not valid for name"), "{error}");
}

/// Connections the store named `application` has open.
fn open_connections(application: &str) -> i64 {
    admin()
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&application],
        )
        .unwrap()
        .get(0)
}

#[test]
#[ignore = "needs PostgreSQL (AXION_TEST_POSTGRES): scripts/test.sh starts one"]
fn pool_max_conns_bounds_the_connections_and_every_call_still_runs() {
    let database = common::TestDatabase::create();
    let store = std::sync::Arc::new(
        PostgresStore::connect_with_default_prices(&format!(
            "{}?pool_max_conns=2&application_name=pool_bound",
            database.url
        ))
        .unwrap(),
    );
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(open_connections("pool_bound"));
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            most
        })
    };
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            let store = std::sync::Arc::clone(&store);
            std::thread::spawn(move || {
                for round in 0..10 {
                    let id = format!("t-{worker}-{round}");
                    store
                        .write(
                            P,
                            traces(vec![json!({"id": id, "timestamp": "2024-01-01T00:00:00Z"})]),
                        )
                        .unwrap();
                    assert!(store.trace(P, &id).unwrap().is_some(), "{id}");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let most = watcher.join().unwrap();
    assert!((1..=2).contains(&most), "{most} connections open at once");
    let page = store
        .list_traces(P, &TraceQuery::default(), &offset(100))
        .unwrap();
    assert_eq!(page.items.len(), 80);
}
