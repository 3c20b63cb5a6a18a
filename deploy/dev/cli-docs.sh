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
  echo
  echo '## Exit status'
  echo
  echo 'Every command follows one convention, so a script can tell a failed check from a typo:'
  echo
  echo '| status | meaning |'
  echo '|---|---|'
  echo '| 0 | done: everything imported, the check holds, the answer printed |'
  echo '| 1 | the command ran and what it checked did not hold: `import` rejected lines (the others are applied; the rejected ones are dead letters), `verify` found a broken log, an `audit` proof or signature does not verify, `replay --check` differs, `query` got an HTTP error |'
  echo '| 2 | the command could not run: a bad flag, a missing file or data dir, a file changed since its import, an I/O error |'
  echo
  echo 'Every failure prints one line on stderr starting with `error:`, saying what is wrong and what to do.'
  echo 'Only `run`, `import`, `demo` and `notifier run` create a data dir (and say so on stderr); every other command'
  echo 'refuses a path that holds none.'
  for c in "" run demo import query verify replay produce topics "topics create" audit "audit checkpoint" "audit inclusion" "audit consistency" "audit public-key" snapshot "snapshot create" "snapshot list" "snapshot restore" notifier "notifier run" "notifier dead-letters" "notifier redrive" "notifier endpoints" "notifier enable"; do
    echo
    if [ -z "$c" ]; then echo '## riskstream'; else echo "## riskstream $c"; fi
    echo
    echo '```text'
    # shellcheck disable=SC2086
    "$B" $c --help
    echo '```'
  done
} > docs/CLI.md
