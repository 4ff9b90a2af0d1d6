#!/usr/bin/env bash
# Main job on bundled defaults: export the small C3D (c3d-tiny), compile it into a plan, start
# the server (model owner) and run the client (video owner) on the bundled H.264 clip, both
# over loopback. Prints the secure top-5, the plaintext fixed-point simulation's top-5 of the
# same preprocessed clip, and time and bytes per phase.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
out=${OUT_DIR:-out/demo}
addr=${ADDR:-127.0.0.1:7878}
mkdir -p "$out"
cargo build --quiet --bins
bin=target/debug
"$bin/c3d-models" export c3d-tiny -o "$out/c3d-tiny.onnx" --seed 1
"$bin/c3dc" compile "$out/c3d-tiny.onnx" -o "$out/c3d-tiny.plan"
"$bin/c3d-run" --role server "$out/c3d-tiny.plan" --listen "$addr" --sessions 1 \
  --report "$out/server-report.json" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
"$bin/c3d-run" --role client "$out/c3d-tiny.plan" models/clips/demo.mp4 --connect "$addr" \
  --top 5 --output "$out/secure-probs.npy" --save-input "$out/clip.npy" \
  --report "$out/client-report.json"
wait $server
trap - EXIT
echo
"$bin/c3dc" simulate "$out/c3d-tiny.plan" --input "$out/clip.npy" --output "$out/sim-probs.npy" 2>/dev/null
echo
echo "reports: $out/client-report.json, $out/server-report.json (per phase and per layer)"
