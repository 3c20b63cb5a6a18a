#!/usr/bin/env bash
# Builds every test once (one profile) and runs them in parallel with
# cargo-nextest when it is installed, else with cargo test. Extra arguments go
# to the test runner (e.g. a nextest filter).
set -euo pipefail
cd "$(dirname "$0")/../.."

# The domain crate stays pure (STYLE.md): no I/O runtime, store, broker or web dependency.
impure=$(cargo tree -q -p riskstream-projections -e normal --prefix none | grep -E '^(tokio|rocksdb|librocksdb-sys|rdkafka|sqlx|axum) ' || true)
if [ -n "$impure" ]; then
  echo "error: riskstream-projections depends on: $impure" >&2
  exit 1
fi

# The brokers the Kafka tests start (they are never assumed to be running).
deploy/dev/install-test-brokers.sh

# One PostgreSQL server on 127.0.0.1 for the suite: the notifier's ledger tests run
# on it as on SQLite, each in a database of its own (a test run alone starts its own).
pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/riskstream-pg.XXXXXX")
trap 'deploy/dev/test-postgres.sh stop "$pg_dir"; rm -rf "$pg_dir"' EXIT
RISKSTREAM_TEST_POSTGRES=$(deploy/dev/test-postgres.sh start "$pg_dir")
export RISKSTREAM_TEST_POSTGRES

if cargo nextest --version >/dev/null 2>&1; then
  # nextest does not run doctests; run them first so its summary closes the output.
  cargo test --workspace --doc --quiet >/dev/null
  cargo nextest run --workspace --no-fail-fast "$@"
else
  echo "cargo-nextest not found; running cargo test" >&2
  cargo test --workspace --no-fail-fast "$@"
fi
