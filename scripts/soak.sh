#!/usr/bin/env bash
# The soak run: a c3d-run server process under honest load (twice --max-clients) and every
# kind of hostile connection, several rounds; checks every honest result against the
# plaintext simulation and the server's peak memory against its ceiling; writes docs/soak.md.
# Extra arguments go to c3d-soak (--rounds N, --max-clients N, --model NAME, --memory-limit MB).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
cargo build --release -p c3d-runtime -p c3d-tests --bins
target/release/c3d-soak --date "$(date -u +%F)" "$@"
