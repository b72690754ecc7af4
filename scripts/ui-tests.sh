#!/usr/bin/env bash
# The web UI in a real browser: installs Debian's Chromium when it is missing and
# playwright-core (pinned in crates/axion-server/tests/ui/package-lock.json; it downloads no
# browser), then drives `axion serve` on 127.0.0.1:0 through the page: on SQLite, and again on
# a fresh PostgreSQL database when `AXION_TEST_POSTGRES` names a server (scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! [ -x /usr/bin/chromium ]; then
  as_root=""
  [ "$(id -u)" = 0 ] || as_root=sudo
  $as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends chromium > /dev/null
fi
(cd crates/axion-server/tests/ui && npm ci --no-audit --no-fund --loglevel=error)
cargo build -q -p axion-cli
cd crates/axion-server/tests/ui
AXION_BIN="$PWD/../../../../target/debug/axion" node --test ui.test.mjs
if [ -n "${AXION_TEST_POSTGRES:-}" ]; then
  database=axion_ui_$$
  psql -q "$AXION_TEST_POSTGRES" -c "CREATE DATABASE $database"
  AXION_UI_DATABASE_URL="${AXION_TEST_POSTGRES%/*}/$database" \
    AXION_BIN="$PWD/../../../../target/debug/axion" node --test ui.test.mjs
  psql -q "$AXION_TEST_POSTGRES" -c "DROP DATABASE $database WITH (FORCE)"
fi
