#!/usr/bin/env bash
# Main job on bundled defaults: export the small C3D (c3d-tiny), compile it into a plan,
# draw a preprocessed clip, run the plaintext fixed-point simulation next to tract's float
# inference of the same ONNX, and show the plan. The secure runtime is not built yet; when it
# is, this script runs both parties over loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT_DIR:-out/demo}
mkdir -p "$out"
cargo build --quiet --bins
bin=target/debug
"$bin/c3d-models" export c3d-tiny -o "$out/c3d-tiny.onnx" --seed 1
"$bin/c3dc" compile "$out/c3d-tiny.onnx" -o "$out/c3d-tiny.plan"
"$bin/c3dc" random-input "$out/c3d-tiny.plan" -o "$out/clip.npy" --seed 7
"$bin/c3dc" inspect "$out/c3d-tiny.plan" | tail -n 4
"$bin/c3dc" simulate "$out/c3d-tiny.plan" --input "$out/clip.npy" --reference "$out/c3d-tiny.onnx" --output "$out/probs.npy"
