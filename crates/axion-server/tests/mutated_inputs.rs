//! No input panics the server: the captured SDK requests, mutated thousands of ways (values
//! swapped for other types, keys dropped, bytes flipped, bodies cut short), must each get a
//! 2xx or a 4xx, and the server must keep answering. Deterministic (seeded) so failures replay.

mod common;

use std::path::Path;

use axum::body::Body;
use axum::http::Request;
use base64::Engine;
use serde_json::{json, Value};
use tower::ServiceExt;

const AUTH: &str = "Basic cGstbGYtdGVzdDpzay1sZi10ZXN0";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn random_value(rng: &mut Rng) -> Value {
    match rng.below(12) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(-1),
        3 => json!(1e308),
        4 => json!(""),
        5 => json!("2024-13-45T99:99:99"),
        6 => json!("x".repeat(2000)),
        7 => json!([1, "two", null]),
        8 => json!({"nested": {"deeper": [{}]}}),
        9 => json!(u64::MAX),
        10 => json!("NaN"),
        _ => json!({"stringValue": 5}),
    }
}

/// Replaces, drops or duplicates one randomly chosen node of the JSON tree.
fn mutate(value: &mut Value, rng: &mut Rng, depth: usize) {
    let descend = depth < 12 && rng.below(4) != 0;
    match value {
        Value::Object(map) if !map.is_empty() => {
            let key = map.keys().nth(rng.below(map.len())).unwrap().clone();
            if descend {
                mutate(map.get_mut(&key).unwrap(), rng, depth + 1);
            } else if rng.below(2) == 0 {
                map.remove(&key);
            } else {
                map.insert(key, random_value(rng));
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let index = rng.below(items.len());
            if descend {
                mutate(&mut items[index], rng, depth + 1);
            } else if rng.below(2) == 0 {
                items.remove(index);
            } else {
                let copy = items[index].clone();
                items.push(copy);
            }
        }
        _ => *value = random_value(rng),
    }
}

fn flip_bytes(bytes: &mut Vec<u8>, rng: &mut Rng) {
    if bytes.is_empty() {
        return;
    }
    match rng.below(3) {
        0 => bytes.truncate(rng.below(bytes.len())),
        _ => {
            for _ in 0..1 + rng.below(4) {
                let index = rng.below(bytes.len());
                bytes[index] ^= 1 << rng.below(8);
            }
        }
    }
}

fn fixture(relative: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/langfuse")
        .join(relative);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test]
async fn mutated_captures_never_crash_the_server() {
    let (app, _store, _dir) = common::test_router();
    mutated_captures_never_crash(app).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (AXION_TEST_POSTGRES): scripts/test.sh starts one"]
async fn mutated_captures_never_crash_the_server_on_postgres() {
    let (app, database) = common::postgres_router().await;
    mutated_captures_never_crash(app).await;
    tokio::task::spawn_blocking(move || drop(database))
        .await
        .unwrap();
}

async fn mutated_captures_never_crash(app: axum::Router) {
    let send = |uri: &'static str,
                content_type: &'static str,
                encoding: Option<&'static str>,
                body: Vec<u8>| {
        let app = app.clone();
        async move {
            let mut request = Request::post(uri)
                .header("authorization", AUTH)
                .header("content-type", content_type);
            if let Some(encoding) = encoding {
                request = request.header("content-encoding", encoding);
            }
            app.oneshot(request.body(Body::from(body)).unwrap())
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let json_cases = [
        (
            "/api/public/ingestion",
            fixture("2.60.10/001-POST-ingestion.json")["body"].clone(),
        ),
        (
            "/api/public/ingestion",
            fixture("3.15.0/002-POST-ingestion.json")["body"].clone(),
        ),
        (
            "/api/public/otel/v1/traces",
            fixture("5.0.4/001-POST-otel-v1-traces.json")["body"].clone(),
        ),
        (
            "/api/public/scores",
            fixture("5.0.4/002-POST-scores.json")["body"].clone(),
        ),
    ];
    let wire = |relative: &str| {
        let capture = fixture(relative);
        base64::engine::general_purpose::STANDARD
            .decode(capture["body_wire_base64"].as_str().unwrap())
            .unwrap()
    };
    let protobuf = wire("3.15.0/001-POST-otel-v1-traces.json");
    let gzipped = wire("5.0.4/001-POST-otel-v1-traces.json");

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut answered = [0usize; 6];
    for round in 0..300 {
        for (uri, original) in &json_cases {
            let mut body = original.clone();
            for _ in 0..1 + rng.below(3) {
                mutate(&mut body, &mut rng, 0);
            }
            let mut bytes = serde_json::to_vec(&body).unwrap();
            if round % 5 == 0 {
                flip_bytes(&mut bytes, &mut rng);
            }
            let status = send(uri, "application/json", None, bytes.clone()).await;
            assert!(
                matches!(status, 200 | 202 | 207 | 400 | 413),
                "{uri} answered {status} to {}",
                String::from_utf8_lossy(&bytes)
            );
            answered[(status / 100) as usize] += 1;
        }
        let mut bytes = protobuf.clone();
        flip_bytes(&mut bytes, &mut rng);
        let status = send(
            "/api/public/otel/v1/traces",
            "application/x-protobuf",
            None,
            bytes,
        )
        .await;
        assert!(matches!(status, 200 | 400), "protobuf answered {status}");
        let mut bytes = gzipped.clone();
        flip_bytes(&mut bytes, &mut rng);
        let status = send(
            "/api/public/otel/v1/traces",
            "application/x-protobuf",
            Some("gzip"),
            bytes,
        )
        .await;
        assert!(matches!(status, 200 | 400), "gzip answered {status}");
    }
    assert!(
        answered[2] > 100 && answered[4] > 100,
        "both accepted and rejected inputs were exercised: {answered:?}"
    );
    let status = send(
        "/api/public/otel/v1/traces",
        "application/x-protobuf",
        None,
        protobuf,
    )
    .await;
    assert_eq!(status, 200, "the server still takes valid data");
}
