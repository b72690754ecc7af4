#!/usr/bin/env bash
# Every test of the project: formatting, lints, unit/integration/doc/UI tests, the API docs
# building cleanly, benchmarks in test mode (each benchmark runs once), the official Python SDKs
# against `axion serve`, the web UI in headless Chromium, and the examples in both tracing modes.
set -euo pipefail
cd "$(dirname "$0")/.."

# A throwaway PostgreSQL cluster on 127.0.0.1 for the PostgreSQL store's tests, stopped on exit.
pg_dir=$(mktemp -d)
cleanup() { ./scripts/postgres.sh stop "$pg_dir"; }
trap cleanup EXIT
AXION_TEST_POSTGRES=$(./scripts/postgres.sh start "$pg_dir")
export AXION_TEST_POSTGRES AXION_TEST_POSTGRES_CA="$pg_dir/ca.crt"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# The PostgreSQL store: the conformance suite (with copying to and from SQLite), every fixture
# replayed into it, mutated inputs, and `axion store copy` moving a server's data into it.
cargo test -p axion-server --test store_conformance --test fixtures_replay --test mutated_inputs -- --ignored
cargo test -p axion-cli --test serve -- --ignored
# The API docs build without broken or private links.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
# The optional `tracing` bridge: lints, its tests and its doc example.
cargo clippy -p axion --all-targets --features tracing -- -D warnings
cargo test -p axion --features tracing --test tracing_bridge
cargo test -p axion --features tracing --doc tracing_bridge
cargo test -p axion --benches
cargo test -p axion-server --benches

# The official SDKs (Langfuse 2.x/3.x/5.x, OpenTelemetry) against a real `axion serve`, on
# SQLite and on PostgreSQL.
./scripts/python-sdks.sh
cargo test -p axion-server --test sdk_compat -- --ignored

# The web UI in headless Chromium against a real `axion serve`.
./scripts/ui-tests.sh

for example in quickstart rag_pipeline custom_tracer; do
  out=$(cargo run -q -p axion --example "$example" 2>/dev/null)
  [ -n "$out" ] || { echo "example $example printed nothing"; exit 1; }
  lines=$(TRACING_MODE=console cargo run -q -p axion --example "$example" 2>&1 >/dev/null | grep -c '^{"' || true)
  [ "$lines" -gt 0 ] || { echo "example $example wrote no console records"; exit 1; }
  echo "example $example: ok (noop and console: $lines records)"
done

# The main example, traced into a real `axion serve` through the langfuse provider: the
# tutorial's tree must arrive with its usage, computed cost and score. Once on the SQLite file,
# once on a PostgreSQL database.
cargo build -q -p axion-cli
example_into_serve() {
  # Globals, not locals: the EXIT trap may run after a failed step reads them.
  data=$(mktemp -d)
  target/debug/axion serve --listen 127.0.0.1:0 --data-dir "$data" --public-key pk-lf-ci --secret-key sk-lf-ci "$@" > "$data/serve.log" &
  serve_pid=$!
  trap 'kill $serve_pid 2>/dev/null || true; rm -rf "$data"; cleanup' EXIT
  for _ in $(seq 100); do grep -q "listening on" "$data/serve.log" && break; sleep 0.1; done
  host=$(grep -o 'http://[0-9.:]*' "$data/serve.log" | head -1)
  TRACING_MODE=langfuse LANGFUSE_HOST="$host" LANGFUSE_PUBLIC_KEY=pk-lf-ci LANGFUSE_SECRET_KEY=sk-lf-ci \
    cargo run -q -p axion --example rag_pipeline > /dev/null
  trace_id=$(curl -sf -u pk-lf-ci:sk-lf-ci "$host/api/public/traces?name=rag_pipeline" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
  curl -sf -u pk-lf-ci:sk-lf-ci "$host/api/public/traces/$trace_id" | python3 -c '
import json, sys
trace = json.load(sys.stdin)
names = sorted(o["name"] for o in trace["observations"])
assert names == ["embed_query", "generate_response", "rag_pipeline", "rerank_documents", "vector_search"], names
generation = next(o for o in trace["observations"] if o["name"] == "generate_response")
assert generation["type"] == "GENERATION" and generation["model"] == "gpt-4o-mini", generation
assert generation["usageDetails"]["input"] > 0 and generation["calculatedTotalCost"] > 0, generation
assert trace["userId"] == "user-123" and sorted(trace["tags"]) == ["production", "rag", "support"], trace
assert [s["name"] for s in trace["scores"]] == ["context_relevance"], trace["scores"]
print("example rag_pipeline -> axion serve: ok (%d observations, cost %.2e USD)" % (len(names), trace["totalCost"]))
'
  grep -o "data in [^,]*" "$data/serve.log"
  kill -TERM $serve_pid
  wait $serve_pid
  rm -rf "$data"
  trap cleanup EXIT
}
example_into_serve
psql -q "$AXION_TEST_POSTGRES" -c "CREATE DATABASE axion_example"
example_into_serve --database-url "${AXION_TEST_POSTGRES%/*}/axion_example"

# The README's main command: the whole loop must run and end with scores on the trace.
demo=$(target/debug/axion demo)
echo "$demo" | grep -q "published scores: 9 uploaded, 0 skipped, 0 failed" || { echo "$demo"; echo "axion demo failed"; exit 1; }
echo "$demo" | grep -q "score levenshtein_ratio" || { echo "$demo"; echo "axion demo printed no scores"; exit 1; }
echo "axion demo: ok"

