#!/usr/bin/env bash
# Usage: deploy/dev/soak-crash.sh [ITERATIONS] [RUNNER ARGS...]
#        deploy/dev/soak-crash.sh --help
#
# Soaks the crash test (engine/tests/crash.rs): ITERATIONS SIGKILLs of
# `riskstream run` mid-load (default 500; `make test` runs 50), in series of 5
# kills on one data dir, each followed by the full reopen checks (chain, signed
# checkpoints, replay, acknowledged batches, alert ids). Sets RISKSTREAM_SOAK to
# ITERATIONS and builds into the shared target dir (CARGO_TARGET_DIR, default
# /var/tmp/riskstream-target as in the Makefile). Runs with cargo-nextest when it
# is installed (its 5 tests in parallel), else with cargo test. RUNNER ARGS go to
# the runner, e.g. `deploy/dev/soak-crash.sh 60 --test-threads 1`.
#
# Each round prints its iteration number, kill delay and data dir first; delays
# derive from the iteration number, so `RISKSTREAM_SOAK=N` reruns the same kills
# (up to scheduling).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi

iterations="${1:-500}"
if ! [[ "$iterations" =~ ^[0-9]+$ ]] || (( iterations < 2 )); then
  echo "error: ITERATIONS must be a number of at least 2, got \`$iterations\` (see --help)" >&2
  exit 2
fi
shift $(( $# > 0 ? 1 : 0 ))

if [[ -z "${CARGO_TARGET_DIR:-}" ]]; then
  if [[ -w /var/tmp ]]; then CARGO_TARGET_DIR=/var/tmp/riskstream-target; else CARGO_TARGET_DIR="$PWD/target"; fi
fi
export CARGO_TARGET_DIR
export RISKSTREAM_SOAK="$iterations"
echo "crash soak: $iterations kill iterations, target dir $CARGO_TARGET_DIR" >&2

if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run -p riskstream-engine --test crash --no-fail-fast "$@"
else
  echo "cargo-nextest not found; running cargo test" >&2
  exec cargo test -p riskstream-engine --test crash -- "$@"
fi
