#!/usr/bin/env bash
# Installs the system packages a fresh machine lacks for building and testing
# riskstream: libclang (RocksDB's bindings are generated at build time), and
# PostgreSQL's server for the notifier's ledger tests.
set -euo pipefail

missing=()
# bindgen needs libclang.so itself; the fresh image ships only libclang-cpp.
if [ -z "${LIBCLANG_PATH:-}" ] && ! dpkg -s libclang-dev >/dev/null 2>&1; then
  missing+=(libclang-dev)
fi
command -v make >/dev/null || missing+=(make)
command -v g++ >/dev/null || missing+=(g++)
# The README's walkthroughs use curl and jq; engine/tests/docs.rs runs them.
command -v curl >/dev/null || missing+=(curl)
command -v jq >/dev/null || missing+=(jq)
# The notifier's STARTTLS test makes its certificates with the openssl CLI.
command -v openssl >/dev/null || missing+=(openssl)
# The notifier's ledger tests run on PostgreSQL too (deploy/dev/test-postgres.sh starts it).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: need root to apt-get install ${missing[*]} (run as root or install them yourself)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
