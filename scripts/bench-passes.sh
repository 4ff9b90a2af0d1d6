#!/usr/bin/env bash
# The compiler passes measured by the cost model: each model compiled without and with the
# e-graph rewrites, and with --prune 0.5 / 0.9 / 0.95; prints a markdown table of
# comparisons, AND gates, HE products and bytes (from `c3dc inspect --json`).
# Usage: scripts/bench-passes.sh [MODEL[:FRAMES]...]   (default: c3d-tiny c3d-small i3d-tiny)
set -euo pipefail
cd "$(dirname "$0")/.."
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(c3d-tiny c3d-small i3d-tiny)
out=${OUT_DIR:-out/bench-passes}
mkdir -p "$out"
cargo build --release --quiet -p c3d-compiler -p c3d-models
bin=target/release
echo "| model | variant | comparisons | AND gates | HE products | offline MB | online MB | online MACs |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for spec in "${models[@]}"; do
  name=${spec%%:*}
  frames=()
  m=$name
  if [ "$spec" != "$name" ]; then frames=(--frames "${spec#*:}"); m="$name-${spec#*:}f"; fi
  "$bin/c3d-models" export "$name" "${frames[@]}" -o "$out/$m.onnx" --seed 1 >/dev/null 2>&1
  for variant in "no-rewrite:--no-rewrite" "rewrite:" "prune-0.5:--prune 0.5" "prune-0.9:--prune 0.9" "prune-0.95:--prune 0.95"; do
    v=${variant%%:*}
    # shellcheck disable=SC2086
    "$bin/c3dc" -q compile "$out/$m.onnx" -o "$out/$m.$v.plan" ${variant#*:} >/dev/null
    "$bin/c3dc" -q inspect "$out/$m.$v.plan" --json > "$out/$m.$v.json"
    python3 - "$m" "$v" "$out/$m.$v.json" <<'PY'
import json, sys
m, v, f = sys.argv[1:]
t = json.load(open(f))["total_cost"]
off = t["he_bytes"] + t["gc_bytes_offline"] + t["beaver_bytes_offline"]
on = t["gc_bytes_online"] + t["beaver_bytes_online"] + t["input_bytes_online"]
print(f"| {m} | {v} | {t['comparisons']:,} | {t['and_gates']:,} | {t['he_products']:,} / {t['he_products_dense']:,} | {off/1e6:,.1f} | {on/1e6:,.1f} | {t['online_macs']:,} |")
PY
  done
done
