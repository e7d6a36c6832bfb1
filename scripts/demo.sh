#!/usr/bin/env bash
# Install, then run the demo: a private Redis, one broadcast with sample openings, a demo host.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/jobcast serve --demo "$@"
