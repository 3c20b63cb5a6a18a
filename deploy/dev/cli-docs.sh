#!/usr/bin/env bash
# Regenerates docs/CLI.md from the binary's own --help, so the reference matches the code.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${CARGO_TARGET_DIR:=/var/tmp/riskstream-target}"
cargo build -q -p riskstream-engine --bin riskstream
B="$CARGO_TARGET_DIR/debug/riskstream"
{
  echo '# riskstream CLI reference'
  echo
  echo 'Generated from `riskstream <command> --help` (regenerate with `deploy/dev/cli-docs.sh`).'
  for c in "" run demo import query verify replay produce topics "topics create" audit "audit checkpoint" "audit inclusion" "audit consistency" "audit public-key" snapshot "snapshot create" "snapshot list" "snapshot restore"; do
    echo
    if [ -z "$c" ]; then echo '## riskstream'; else echo "## riskstream $c"; fi
    echo
    echo '```text'
    # shellcheck disable=SC2086
    "$B" $c --help
    echo '```'
  done
} > docs/CLI.md
