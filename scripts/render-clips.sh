#!/usr/bin/env bash
# Renders the demo clips of the bundled trained model (models/clips/motion/): for each class of
# the moving-shapes data set, the first clip of the test split that the fixed-point model
# classifies correctly, encoded as lossless H.264 (libx264rgb, qp 0) so that decoding gives
# back the data set's pixels exactly; and manifest.json with the true labels. Needs the ffmpeg
# command-line tool (apt-get install ffmpeg); the committed clips make it unnecessary to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v ffmpeg >/dev/null || { echo "render-clips: needs ffmpeg (apt-get install ffmpeg)" >&2; exit 1; }
cargo build --quiet --release --bin c3d-models --bin c3dc
bin=target/release
dir=models/clips/motion
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$dir"
"$bin/c3dc" --quiet compile models/motion/c3d-motion.onnx -o "$tmp/plan" >/dev/null
classes=(right left up down grow shrink)
entries=()
for c in "${!classes[@]}"; do
  name=${classes[$c]}
  for tries in $(seq 0 9); do
    i=$((c + 6 * tries))
    label=$("$bin/c3d-models" motion clip --split test --index "$i" -o "$tmp/x.npy" --rgb "$tmp/x.rgb")
    [ "$label" = "$name" ] || { echo "clip $i is $label, expected $name" >&2; exit 1; }
    got=$("$bin/c3dc" --quiet simulate "$tmp/plan" --input "$tmp/x.npy" --top 1 | awk 'NR == 2 { print $2 }')
    if [ "$got" = "$name" ]; then
      ffmpeg -hide_banner -loglevel error -y -f rawvideo -pix_fmt rgb24 -s 16x16 -r 8 \
        -i "$tmp/x.rgb" -c:v libx264rgb -qp 0 -preset veryslow "$dir/$name.mp4"
      entries+=("    {\"file\": \"$name.mp4\", \"label\": \"$name\", \"split\": \"test\", \"index\": $i, \"skipped\": $tries}")
      echo "$name: test clip $i ($tries earlier clips of the class misclassified)"
      break
    fi
  done
done
{
  echo "{"
  echo "  \"model\": \"models/motion/c3d-motion.onnx\","
  echo "  \"about\": \"For each class, the first clip of the moving-shapes test split (seed 2) that the fixed-point model classifies correctly; 'skipped' counts the earlier clips of that class it misclassifies. Lossless H.264 (libx264rgb, qp 0), 8 frames of 16x16 at 8 fps: decoding gives the data set's pixels exactly. Rendered by scripts/render-clips.sh.\","
  echo "  \"clips\": ["
  (IFS=$'\n'; echo "${entries[*]}" | sed '$!s/$/,/')
  echo "  ]"
  echo "}"
} > "$dir/manifest.json"
echo "wrote $dir/manifest.json"
