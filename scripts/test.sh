#!/usr/bin/env bash
# The test command: system packages if missing, then every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
cargo test --workspace "$@"
bash scripts/test-python.sh
