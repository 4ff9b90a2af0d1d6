#!/usr/bin/env bash
# Secure end-to-end runs (server and client as two processes over loopback, release build)
# with the plaintext float inference (tract) of the same model in the same run. Writes one
# markdown row per model to stdout; reports under $OUT_DIR.
# Usage: bash scripts/bench-runtime.sh [MODEL...]   (default: c3d-tiny i3d-tiny c3d-small)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
out=${OUT_DIR:-out/bench-runtime}
mkdir -p "$out"
cargo build --release --quiet --bins
bin=target/release
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(c3d-tiny i3d-tiny c3d-small)
echo "| model | offline s | online s | client sent MB (off/on) | client received MB (off/on) | peak MB client/server | tract float s | secure/float |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for m in "${models[@]}"; do
  "$bin/c3d-models" export "$m" -o "$out/$m.onnx" --seed 1 >/dev/null
  "$bin/c3dc" compile "$out/$m.onnx" -o "$out/$m.plan" 2>/dev/null >/dev/null
  "$bin/c3d-run" --role server "$out/$m.plan" --listen 127.0.0.1:7979 --sessions 1 \
    --report "$out/$m-server.json" 2>/dev/null &
  "$bin/c3d-run" --role client "$out/$m.plan" models/clips/demo.mp4 --connect 127.0.0.1:7979 \
    --report "$out/$m-client.json" --save-input "$out/$m-clip.npy" >/dev/null
  wait
  "$bin/c3dc" simulate "$out/$m.plan" --input "$out/$m-clip.npy" --reference "$out/$m.onnx" \
    --report "$out/$m-sim.json" -q >/dev/null 2>&1
  python3 - "$out/$m-client.json" "$out/$m-server-1.json" "$out/$m-sim.json" "$m" <<'PY'
import json, sys
c, s, sim, m = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), json.load(open(sys.argv[3])), sys.argv[4]
off, on = c["phases"][0], c["phases"][1]
tract = next(p["seconds"] for p in sim["phases"] if p["name"] == "tract float reference")
total = c["setup_seconds"] + off["seconds"] + on["seconds"]
mb = lambda b: b / 1e6
print(f"| {m} | {off['seconds']:.2f} | {on['seconds']:.2f} | {mb(off['bytes_sent']):.1f} / {mb(on['bytes_sent']):.1f} | "
      f"{mb(off['bytes_received']):.1f} / {mb(on['bytes_received']):.1f} | {mb(c['peak_memory']):.0f} / {mb(s['peak_memory']):.0f} | "
      f"{tract:.3f} | {total / tract:.0f}x |")
PY
done
