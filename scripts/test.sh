#!/usr/bin/env bash
# Every test of the project: formatting, lints, unit/integration/doc/UI tests, benchmarks in
# test mode (each benchmark runs once), the official Python SDKs against `axion serve`, and the
# examples in both tracing modes.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
cargo test -p axion --benches

# The official SDKs (Langfuse 2.x/3.x/5.x, OpenTelemetry) against a real `axion serve`.
./scripts/python-sdks.sh
cargo test -p axion-server --test sdk_compat -- --ignored

for example in quickstart rag_pipeline custom_tracer; do
  out=$(cargo run -q -p axion --example "$example" 2>/dev/null)
  [ -n "$out" ] || { echo "example $example printed nothing"; exit 1; }
  lines=$(TRACING_MODE=console cargo run -q -p axion --example "$example" 2>&1 >/dev/null | grep -c '^{"' || true)
  [ "$lines" -gt 0 ] || { echo "example $example wrote no console records"; exit 1; }
  echo "example $example: ok (noop and console: $lines records)"
done
