#!/usr/bin/env bash
# Trains the bundled model c3d-motion from scratch and regenerates its accuracy table, all
# deterministic (fixed seeds; the data set is generated): dense and fc6-squared models by SGD,
# the packing of the dense model's plan (compiled as the table compiles it, with training clips
# in the calibration), SLR pruning at 0.5, 0.9 and 0.95 aligned with it, then motion-table
# (float, fixed-point and secure accuracy with the compiled cost of each row).
# Writes models/motion/*.onnx, their *.json training logs, accuracy.json and accuracy.md.
# Usage: scripts/train-motion.sh [SECURE_CLIPS]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
cargo build --release -p c3d-models -p c3d-compiler -p c3d-tests
out=models/motion
mkdir -p "$out"
m=target/release/c3d-models
$m motion train -o "$out/c3d-motion.onnx"
$m motion train --square-fc6 -o "$out/c3d-motion-sq.onnx"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
calib=()
for i in $(seq 0 31); do
  $m motion clip --split train --index "$i" -o "$tmp/calib$i.npy" >/dev/null
  calib+=(--calib "$tmp/calib$i.npy")
done
target/release/c3dc compile -q "$out/c3d-motion.onnx" "${calib[@]}" -o "$tmp/dense.plan"
for s in 50 90 95; do
  $m motion prune "$out/c3d-motion.onnx" --plan "$tmp/dense.plan" --sparsity "0.$s" \
    -o "$out/c3d-motion-slr$s.onnx"
done
target/release/motion-table "${1:-10}"
