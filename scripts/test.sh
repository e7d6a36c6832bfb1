#!/usr/bin/env bash
# Install, then run the whole test suite. As root (CI), the suite runs inside a fresh network
# namespace whose only interface is `lo`, so no test packet (WebRTC media included) can leave
# loopback. Without root it runs in place; tests still bind and announce 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test

run=(.venv/bin/python -m pytest "$@")
if [[ $(id -u) == 0 ]] && command -v ip >/dev/null; then
  ns="jobcast-test-$$"
  ip netns add "$ns"
  trap 'ip netns delete "$ns" 2>/dev/null || true' EXIT
  ip -n "$ns" link set lo up
  ip netns exec "$ns" "${run[@]}"
else
  "${run[@]}"
fi
