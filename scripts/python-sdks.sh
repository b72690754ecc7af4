#!/usr/bin/env bash
# Makes the Python virtualenvs with the official SDKs that the compatibility tests drive:
#   target/py/langfuse2  langfuse 2.60.10 (ingestion batches)
#   target/py/langfuse3  langfuse 3.15.0  (OTLP protobuf + ingestion scores)
#   target/py/langfuse5  newest langfuse 5.x (gzip OTLP + score arrays)
#   target/py/otel       opentelemetry-sdk + opentelemetry-exporter-otlp-proto-http
# Idempotent: a venv whose marker file matches its requirement is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
root=target/py
mkdir -p "$root"
python=${PYTHON:-python3}

make_venv() {
  local name=$1; shift
  local want="$*"
  local dir="$root/$name"
  if [ -f "$dir/.requirements" ] && [ "$(cat "$dir/.requirements")" = "$want" ]; then
    return
  fi
  rm -rf "$dir"
  "$python" -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
  echo "$want" > "$dir/.requirements"
  echo "python-sdks: $name ready ($("$dir/bin/pip" freeze --disable-pip-version-check | grep -iE '^(langfuse|opentelemetry-sdk)==' | tr '\n' ' '))"
}

make_venv langfuse2 'langfuse==2.60.10' &
make_venv langfuse3 'langfuse==3.15.0' &
make_venv langfuse5 'langfuse>=5,<6' &
make_venv otel 'opentelemetry-sdk>=1.30' 'opentelemetry-exporter-otlp-proto-http>=1.30' &
for job in $(jobs -p); do wait "$job"; done
