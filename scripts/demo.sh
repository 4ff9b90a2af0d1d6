#!/usr/bin/env bash
# Main job on bundled defaults: compile the bundled trained model c3d-motion (6 motion classes,
# names in the plan), start the server (model owner) and, as the client (video owner), classify
# each bundled H.264 clip of its test split (models/clips/motion/, true labels in manifest.json)
# over loopback. For each clip: the true label, the secure top-3 and the plaintext fixed-point
# simulation's top-3, and whether they are equal; then time and bytes per phase. Last, one clip
# through the c3d-run client itself, with its JSON report and plots.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
out=${OUT_DIR:-out/demo}
addr=${ADDR:-127.0.0.1:7878}
manifest=models/clips/motion/manifest.json
mkdir -p "$out"
cargo build --quiet --bins
bin=target/debug
plan="$out/c3d-motion.plan"
"$bin/c3dc" --quiet compile models/motion/c3d-motion.onnx -o "$plan"
clips=$(grep -c '"file"' "$manifest")
"$bin/c3d-run" --role server "$plan" --listen "$addr" --sessions $((clips + 1)) --quiet \
  --report "$out/server-report.json" 2>"$out/server.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
status=0
"$bin/c3d-demo" --plan "$plan" --manifest "$manifest" --connect "$addr" --top 3 || status=$?
echo
echo "the c3d-run client on models/clips/motion/grow.mp4:"
"$bin/c3d-run" --role client "$plan" models/clips/motion/grow.mp4 --connect "$addr" --top 3 \
  --report "$out/client-report.json"
wait $server
trap - EXIT
"$bin/c3dc" --quiet inspect "$plan" --svg "$out/plan-cost.svg" >/dev/null
"$bin/c3d-bench" --render-report "$out/client-report.json" --svg "$out/client-report.svg" >/dev/null
echo
echo "reports: $out/client-report.json, $out/server-report-*.json (per phase and per layer);"
echo "plots: $out/plan-cost.svg (cost model per layer), $out/client-report.svg (measured)"
exit $status
